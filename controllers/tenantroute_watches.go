package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// watches lists everything a route's admission depends on. Status writes (ours included) never
// re-admit anything: only spec changes of routes and EdgeProxies, namespace labels, and the
// Services, Secrets and ReferenceGrants routes refer to. Every handler goes through admitting(),
// which marks what it queues for full admission (the ACK tracker's pokes update Programmed only).
//
//   - another route of the same EdgeProxy is created, deleted or changes its spec: the routes
//     sharing one of its hostnames (old and new ones; indexRouteHostname) are re-admitted, since
//     only their ownership can move; further verdicts a new ownership result changes are re-queued
//     by the reconcile that computes it (tenantroute_admission.go). ownershipInputs only marks the
//     EdgeProxy's ownership result stale;
//   - the EdgeProxy changes its spec, appears or goes away;
//   - a namespace's labels change (selectors of tenantNamespaces): the routes of every EdgeProxy
//     that has routes there;
//   - a Service, Secret (metadata only) or ReferenceGrant that routes refer to;
//   - an EndpointSlice of a backend Service gains its first or loses its last ready endpoint
//     (ResolvedRefs says NoReadyEndpoints): other endpoint churn never re-admits anything.
func (r *TenantRouteReconciler) watches(b *builder.Builder) {
	b.Watches(&edgev1alpha1.TenantRoute{}, r.ownershipInputs()).
		Watches(&edgev1alpha1.TenantRoute{}, r.admitting(oldAndNew(r.routesSharingHostnames)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&edgev1alpha1.EdgeProxy{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesOfEdgeProxyObject)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesAffectedByNamespace)),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.Service{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesByIndex(indexRouteBackend)))).
		Watches(&corev1.Secret{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesByIndex(indexRouteSecret))), builder.OnlyMetadata).
		Watches(&discoveryv1.EndpointSlice{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesOfSliceService)),
			builder.WithPredicates(readinessChanged{}))
	if r.ReferenceGrants {
		b.Watches(&gwapiv1beta1.ReferenceGrant{}, r.admitting(handler.EnqueueRequestsFromMapFunc(r.routesGrantedBy)))
	}
}

// routesOfSliceService re-admits the routes sending traffic to the Service an EndpointSlice belongs to.
func (r *TenantRouteReconciler) routesOfSliceService(ctx context.Context, o client.Object) []reconcile.Request {
	svc := o.GetLabels()[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil
	}
	key := types.NamespacedName{Namespace: o.GetNamespace(), Name: svc}.String()
	return r.listRoutes(ctx, client.MatchingFields{indexRouteBackend: key})
}

// readinessChanged passes EndpointSlice events that can change what ResolvedRefs says about ready
// endpoints: every creation and deletion (a Service's first, still empty slice turns "not counted"
// into NoReadyEndpoints; removing its last one turns it back), and updates that change whether a
// slice has a ready endpoint. Rolling updates and scaling between non-zero sizes pass nothing.
type readinessChanged struct{ predicate.Funcs }

func (readinessChanged) Create(event.CreateEvent) bool   { return true }
func (readinessChanged) Delete(event.DeleteEvent) bool   { return true }
func (readinessChanged) Generic(event.GenericEvent) bool { return false }
func (readinessChanged) Update(e event.UpdateEvent) bool {
	return sliceHasReady(e.ObjectOld) != sliceHasReady(e.ObjectNew)
}

func sliceHasReady(o client.Object) bool {
	s, ok := o.(*discoveryv1.EndpointSlice)
	return ok && readyEndpointCount(s) > 0
}

func (r *TenantRouteReconciler) listRoutes(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list tenantroutes to re-admit")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(routes.Items))
	for _, tr := range routes.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}})
	}
	return reqs
}

func (r *TenantRouteReconciler) routesOfEdgeProxy(ctx context.Context, name string) []reconcile.Request {
	return r.listRoutes(ctx, client.MatchingFields{indexRouteEdgeProxy: name})
}

func (r *TenantRouteReconciler) routesOfEdgeProxyObject(ctx context.Context, o client.Object) []reconcile.Request {
	return r.routesOfEdgeProxy(ctx, o.GetName())
}

func (r *TenantRouteReconciler) routesAffectedByNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	r.namespaceLabelsChanged()
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, client.InNamespace(o.GetName())); err != nil {
		log.FromContext(ctx).Error(err, "list tenantroutes of namespace", "namespace", o.GetName())
		return nil
	}
	seen := map[string]bool{}
	var reqs []reconcile.Request
	for _, tr := range routes.Items {
		if seen[tr.Spec.EdgeProxy] {
			continue
		}
		seen[tr.Spec.EdgeProxy] = true
		reqs = append(reqs, r.routesOfEdgeProxy(ctx, tr.Spec.EdgeProxy)...)
	}
	return reqs
}

func (r *TenantRouteReconciler) routesByIndex(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		key := types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}.String()
		return r.listRoutes(ctx, client.MatchingFields{index: key})
	}
}

// routesGrantedBy re-admits the routes of every namespace a ReferenceGrant names in spec.from, so
// that granting access admits them and removing the grant revokes it.
func (r *TenantRouteReconciler) routesGrantedBy(ctx context.Context, o client.Object) []reconcile.Request {
	g, ok := o.(*gwapiv1beta1.ReferenceGrant)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	seen := map[string]bool{}
	for _, f := range g.Spec.From {
		ns := string(f.Namespace)
		if !admission.IsGrantSubject(string(f.Group), string(f.Kind)) || seen[ns] {
			continue
		}
		seen[ns] = true
		reqs = append(reqs, r.listRoutes(ctx, client.InNamespace(ns))...)
	}
	return reqs
}
