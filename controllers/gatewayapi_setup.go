package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

// Names of the Gateway API reconcilers and of the field indexes they share.
const (
	gatewayClassControllerName = "gatewayclass"
	gatewayControllerName      = "gateway"
	httpRouteControllerName    = "httproute"

	// indexHTTPRouteParent indexes HTTPRoutes by "namespace/name" of every Gateway in parentRefs.
	indexHTTPRouteParent = "portico.httproute.parentGateways"
	// indexHTTPRouteBackend indexes HTTPRoutes by "namespace/name" of every Service in backendRefs.
	indexHTTPRouteBackend = "portico.httproute.backendServices"
	// indexGatewaySecret indexes Gateways by "namespace/name" of every listener certificateRef.
	indexGatewaySecret = "portico.gateway.certificateSecrets"

	// gatewayFinalizer holds a Gateway until the EdgeProxy generated for it is deleted: the
	// cluster-scoped EdgeProxy cannot carry an ownerReference to the namespaced Gateway.
	gatewayFinalizer = "edge.portico.dev/generated-edgeproxy"
)

// setupGatewayAPI registers the GatewayClass, Gateway and HTTPRoute reconcilers and their indexes,
// when the cluster serves the Gateway API (its CRDs are optional).
func setupGatewayAPI(ctx context.Context, mgr ctrl.Manager) error {
	gk := schema.GroupKind{Group: gwapiv1.GroupName, Kind: "Gateway"}
	if _, err := mgr.GetRESTMapper().RESTMapping(gk, gwapiv1.GroupVersion.Version); err != nil {
		if meta.IsNoMatchError(err) {
			ctrl.Log.WithName(gatewayControllerName).Info("the cluster does not serve the Gateway API; Gateways and HTTPRoutes are ignored")
			return nil
		}
		return fmt.Errorf("look up the Gateway API: %w", err)
	}
	if err := registerGatewayIndexes(ctx, mgr); err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder(ReporterName)
	grants := referenceGrantsServed(mgr)
	if err := (&GatewayClassReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the GatewayClass reconciler: %w", err)
	}
	if err := (&GatewayReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, ReferenceGrants: grants,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Gateway reconciler: %w", err)
	}
	if err := (&HTTPRouteReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, ReferenceGrants: grants,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the HTTPRoute reconciler: %w", err)
	}
	return nil
}

func registerGatewayIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &gwapiv1.HTTPRoute{}, indexHTTPRouteParent, func(o client.Object) []string {
		r, ok := o.(*gwapiv1.HTTPRoute)
		if !ok {
			return nil
		}
		var keys []string
		for _, k := range routeGateways(r) {
			keys = append(keys, k.String())
		}
		return keys
	}); err != nil {
		return fmt.Errorf("index HTTPRoutes by parent: %w", err)
	}
	if err := idx.IndexField(ctx, &gwapiv1.HTTPRoute{}, indexHTTPRouteBackend, func(o client.Object) []string {
		r, ok := o.(*gwapiv1.HTTPRoute)
		if !ok {
			return nil
		}
		var keys []string
		for _, k := range routeServices(r) {
			keys = append(keys, k.String())
		}
		return keys
	}); err != nil {
		return fmt.Errorf("index HTTPRoutes by backend: %w", err)
	}
	if err := idx.IndexField(ctx, &gwapiv1.Gateway{}, indexGatewaySecret, func(o client.Object) []string {
		gw, ok := o.(*gwapiv1.Gateway)
		if !ok {
			return nil
		}
		var keys []string
		for _, k := range gatewaySecrets(gw) {
			keys = append(keys, k.String())
		}
		return keys
	}); err != nil {
		return fmt.Errorf("index Gateways by certificate: %w", err)
	}
	return nil
}

// routeGateways are the Gateways an HTTPRoute's parentRefs name, without duplicates.
func routeGateways(r *gwapiv1.HTTPRoute) []types.NamespacedName {
	var out []types.NamespacedName
	for _, p := range r.Spec.ParentRefs {
		if p.Group != nil && *p.Group != gwapiv1.GroupName || p.Kind != nil && *p.Kind != "Gateway" {
			continue
		}
		k := types.NamespacedName{Namespace: r.Namespace, Name: string(p.Name)}
		if p.Namespace != nil && *p.Namespace != "" {
			k.Namespace = string(*p.Namespace)
		}
		if !containsKey(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// routeServices are the Services an HTTPRoute's backendRefs name, without duplicates.
func routeServices(r *gwapiv1.HTTPRoute) []types.NamespacedName {
	var out []types.NamespacedName
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if b.Group != nil && *b.Group != "" || b.Kind != nil && *b.Kind != "Service" {
				continue
			}
			k := types.NamespacedName{Namespace: r.Namespace, Name: string(b.Name)}
			if b.Namespace != nil && *b.Namespace != "" {
				k.Namespace = string(*b.Namespace)
			}
			if !containsKey(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// gatewaySecrets are the Secrets a Gateway's listeners name in certificateRefs.
func gatewaySecrets(gw *gwapiv1.Gateway) []types.NamespacedName {
	var out []types.NamespacedName
	for _, l := range gw.Spec.Listeners {
		if l.TLS == nil {
			continue
		}
		for _, c := range l.TLS.CertificateRefs {
			if c.Group != nil && *c.Group != "" || c.Kind != nil && *c.Kind != "Secret" {
				continue
			}
			k := types.NamespacedName{Namespace: gw.Namespace, Name: string(c.Name)}
			if c.Namespace != nil && *c.Namespace != "" {
				k.Namespace = string(*c.Namespace)
			}
			if !containsKey(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func containsKey(list []types.NamespacedName, k types.NamespacedName) bool {
	for _, v := range list {
		if v == k {
			return true
		}
	}
	return false
}

// applyObject server-side applies a typed object (TypeMeta set) with the operator's field owner.
func applyObject(ctx context.Context, c client.Client, obj render.Object) error {
	u, err := render.ToUnstructured(obj)
	if err != nil {
		return err
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(edgev1alpha1.FieldOwner), client.ForceOwnership)
}

// specOrDeletionChanged passes creations, deletions, spec changes (generation) and the start of a
// deletion: the events a reconciler writing only status and children needs.
var specOrDeletionChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return true
		}
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// gatewayStatusChanged passes Gateway updates whose status changed. A status write reaches the
// cache after the reconcile that made it; a reconcile that ran in between compared its result with
// the stale cached status, found nothing to write and left the status the slower write set (for
// example Programmed=False from an EdgeProxy read just before it became Ready) until the next
// resync. Reconciling once the write is visible corrects it, and writes nothing when it is right.
var gatewayStatusChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*gwapiv1.Gateway)
		cur, okNew := e.ObjectNew.(*gwapiv1.Gateway)
		return okOld && okNew && !equality.Semantic.DeepEqual(old.Status, cur.Status)
	},
}
