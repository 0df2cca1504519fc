package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// RBAC of this reconciler; `make manifests` turns these markers into config/rbac/role.yaml.
// +kubebuilder:rbac:groups="",resources=serviceaccounts;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies;ingressclasses,verbs=get;list;watch;create;update;patch;delete

// EdgeProxyReconciler provisions each EdgeProxy's proxy fleet with server-side apply and reports
// its state with kstatus conditions (Ready, Reconciling, Stalled).
type EdgeProxyReconciler struct {
	client.Client
	Scheme   *k8sruntime.Scheme
	Recorder events.EventRecorder
	Params   render.Params
	// Proxies, when config delivery runs, lists the connected proxy replicas (status.proxies).
	Proxies ProxyReplicas

	// applied remembers, per EdgeProxy, what the last successful apply produced, so that a
	// reconcile triggered by a route's status (route counts) does not re-apply an unchanged fleet.
	applied appliedRecords
}

// SetupWithManager watches EdgeProxies (spec changes only: status writes do not retrigger), every
// kind the fleet is made of (so edits and deletions are repaired), IngressClasses by name (a foreign
// class in the way may go away), namespaces (a missing proxy namespace may appear) and TenantRoutes
// (route counts).
func (r *EdgeProxyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named(edgeProxyControllerName).
		For(&edgev1alpha1.EdgeProxy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ServiceAccount{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&networkingv1.IngressClass{}).
		Watches(&networkingv1.IngressClass{}, handler.EnqueueRequestsFromMapFunc(r.edgeProxiesOfIngressClass)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.edgeProxiesInNamespace)).
		Watches(&edgev1alpha1.TenantRoute{}, enqueueAfter(statusBatch, routeEdgeProxy),
			builder.WithPredicates(routeCountChanged))
	if r.Proxies != nil {
		// Connected proxy replicas, their versions and NACKs (status.proxies, SnapshotRejected).
		b.WatchesRawSource(source.Channel(r.Proxies.EdgeProxyEvents(), enqueueAfter(statusBatch,
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
			})))
	}
	return b.Complete(r)
}

// statusBatch is how long an EdgeProxy reconcile caused by its routes' or proxies' status waits
// for more of them: under a burst of routes (and of snapshot versions) the EdgeProxy's status is
// written about once per batch instead of once per route and per ACK. Spec changes of the
// EdgeProxy and of its fleet are not delayed.
const statusBatch = time.Second

// enqueueAfter enqueues what m maps an object to (the old and the new one on updates) after d;
// the delaying queue never pushes an item already waiting further out, so nothing waits longer.
func enqueueAfter(d time.Duration, m handler.MapFunc) handler.EventHandler {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			if o == nil {
				continue
			}
			for _, req := range m(ctx, o) {
				q.AddAfter(req, d)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
	}
}

func (r *EdgeProxyReconciler) edgeProxiesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list edgev1alpha1.EdgeProxyList
	if err := r.List(ctx, &list, client.MatchingFields{indexProxyNamespace: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list edgeproxies by proxy namespace", "namespace", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, ep := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: ep.Name}})
	}
	return reqs
}

func (r *EdgeProxyReconciler) edgeProxiesOfIngressClass(ctx context.Context, o client.Object) []reconcile.Request {
	var list edgev1alpha1.EdgeProxyList
	if err := r.List(ctx, &list, client.MatchingFields{indexIngressClassName: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list edgeproxies by ingress class", "ingressClass", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, ep := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: ep.Name}})
	}
	return reqs
}

// routeCountChanged passes the TenantRoute events that can change what an EdgeProxy reconcile
// reads of its routes: creations, deletions, a route moving to another EdgeProxy, and its Accepted
// condition changing status (the accepted and rejected counts). Every other status write of a
// route (Programmed after each snapshot, ResolvedRefs, CertificateReady) and its spec edits do
// not requeue the EdgeProxy: under a burst of routes that was a fleet render per status write.
var routeCountChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*edgev1alpha1.TenantRoute)
		cur, okNew := e.ObjectNew.(*edgev1alpha1.TenantRoute)
		if !okOld || !okNew {
			return true
		}
		return old.Spec.EdgeProxy != cur.Spec.EdgeProxy || acceptedStatus(old) != acceptedStatus(cur)
	},
}

func acceptedStatus(tr *edgev1alpha1.TenantRoute) metav1.ConditionStatus {
	if c := meta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted)); c != nil {
		return c.Status
	}
	return ""
}

func routeEdgeProxy(_ context.Context, o client.Object) []reconcile.Request {
	tr, ok := o.(*edgev1alpha1.TenantRoute)
	if !ok || tr.Spec.EdgeProxy == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: tr.Spec.EdgeProxy}}}
}

// conflictRecheck is how often an EdgeProxy blocked by a foreign object looks again.
const conflictRecheck = time.Minute

// stall is a problem only a human can fix; the EdgeProxy reports Stalled=True until its spec or
// the world changes.
type stall struct {
	reason  edgev1alpha1.ConditionReason
	message string
}

func (s *stall) Error() string { return string(s.reason) + ": " + s.message }

// Reconcile applies the rendered fleet, prunes what is no longer wanted and writes status once.
func (r *EdgeProxyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	if err := r.Get(ctx, req.NamespacedName, ep); err != nil {
		if apierrors.IsNotFound(err) {
			r.applied.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ep.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // ownerReferences let the garbage collector remove the fleet
	}
	obs, err := r.provision(ctx, ep)
	var st *stall
	switch {
	case errors.As(err, &st):
		obs.stall = st
	case err != nil:
		obs.transient = err
	}
	if err := r.observeRoutes(ctx, ep, &obs); err != nil && obs.transient == nil {
		obs.transient = err
	}
	if r.Proxies != nil {
		rs := r.Proxies.Replicas(ep.Name)
		obs.proxies = &rs
	}
	if werr := r.writeStatus(ctx, ep, obs); werr != nil {
		return ctrl.Result{}, errors.Join(obs.transient, werr)
	}
	if st != nil && st.reason == edgev1alpha1.EdgeProxyReasonResourceConflict {
		// Watches catch a foreign IngressClass going away; other foreign objects are polled.
		return ctrl.Result{RequeueAfter: conflictRecheck}, nil
	}
	return ctrl.Result{}, obs.transient
}

// observed is what one reconcile learnt about the fleet.
type observed struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	accepted   int32
	rejected   int32
	// proxies are the connected proxy replicas; nil without config delivery.
	proxies   *[]snapshot.ReplicaStatus
	stall     *stall
	transient error
}

// observeRoutes counts the TenantRoutes naming this EdgeProxy by their Accepted condition.
func (r *EdgeProxyReconciler) observeRoutes(ctx context.Context, ep *edgev1alpha1.EdgeProxy, obs *observed) error {
	var routes edgev1alpha1.TenantRouteList
	// Read-only counting: no copies of every route on every route status change.
	if err := r.List(ctx, &routes, client.MatchingFields{indexRouteEdgeProxy: ep.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list tenantroutes of %s: %w", ep.Name, err)
	}
	for _, tr := range routes.Items {
		c := meta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted))
		switch {
		case c == nil:
		case c.Status == "True":
			obs.accepted++
		case c.Status == "False":
			obs.rejected++
		}
	}
	return nil
}

// writeStatus computes the status and writes it only when it changed.
func (r *EdgeProxyReconciler) writeStatus(ctx context.Context, ep *edgev1alpha1.EdgeProxy, obs observed) error {
	orig := ep.DeepCopy()
	before := findCondition(ep.Status.Conditions, edgev1alpha1.EdgeProxyConditionStalled)
	computeEdgeProxyStatus(ep, obs)
	if equality.Semantic.DeepEqual(orig.Status, ep.Status) {
		return nil
	}
	if after := findCondition(ep.Status.Conditions, edgev1alpha1.EdgeProxyConditionStalled); after.Status == "True" && !sameCondition(before, after) {
		r.Recorder.Eventf(ep, nil, corev1.EventTypeWarning, after.Reason, eventActionProvision, "%s", eventNote(after.Message))
	}
	if err := r.Status().Patch(ctx, ep, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("write status of edgeproxy %s: %w", ep.Name, err)
	}
	return nil
}
