package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses/status,verbs=get;update;patch

// GatewayClassReconciler writes the status of Portico's GatewayClasses (controllerName
// edge.portico.dev/gateway-controller): Accepted, or InvalidParameters when the parametersRef is
// not an existing EdgeProxy, and the supported features. Classes of other controllers are never read
// past their controllerName.
type GatewayClassReconciler struct {
	client.Client
}

// isPorticoClass selects the GatewayClasses this reconciler owns.
func isPorticoClass(o client.Object) bool {
	gc, ok := o.(*gwapiv1.GatewayClass)
	return ok && gc.Spec.ControllerName == edgev1alpha1.GatewayControllerName
}

// SetupWithManager watches Portico's GatewayClasses (spec and annotation changes) and EdgeProxies appearing or
// going away (a parametersRef may name one).
func (r *GatewayClassReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(gatewayClassControllerName).
		For(&gwapiv1.GatewayClass{}, builder.WithPredicates(
			predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}), // the EndpointSlice opt-in
			predicate.NewPredicateFuncs(isPorticoClass))).
		Watches(&edgev1alpha1.EdgeProxy{}, handler.EnqueueRequestsFromMapFunc(r.allPorticoClasses),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Complete(r)
}

func (r *GatewayClassReconciler) allPorticoClasses(ctx context.Context, _ client.Object) []reconcile.Request {
	var list gwapiv1.GatewayClassList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list gatewayclasses")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if isPorticoClass(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return reqs
}

// Reconcile computes the class's status and writes it when it changed.
func (r *GatewayClassReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gc := &gwapiv1.GatewayClass{}
	if err := r.Get(ctx, req.NamespacedName, gc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !isPorticoClass(gc) || !gc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var eps edgev1alpha1.EdgeProxyList
	if err := r.List(ctx, &eps); err != nil {
		return ctrl.Result{}, fmt.Errorf("list edgeproxies: %w", err)
	}
	want := translate.GatewayClassStatus(gc, eps.Items)
	if want == nil {
		return ctrl.Result{}, nil
	}
	orig := gc.DeepCopy()
	for _, c := range want.Conditions {
		meta.SetStatusCondition(&gc.Status.Conditions, c)
	}
	gc.Status.SupportedFeatures = want.SupportedFeatures
	if equality.Semantic.DeepEqual(orig.Status, gc.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, gc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}
