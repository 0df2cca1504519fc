package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// SetupWithManager watches what a Gateway's EdgeProxy and status depend on:
//
//   - the Gateway's spec and deletion; its GatewayClass (spec and annotations);
//   - EdgeProxies, status included (Ready and addresses make the Gateway Programmed): the Gateways
//     they serve;
//   - HTTPRoutes naming the Gateway (attachedRoutes), before and after a change;
//   - namespace labels (allowedRoutes selectors, and a generated EdgeProxy's tenant namespaces);
//   - TenantRoutes of a generated EdgeProxy (their hostnames are allowed when a listener names none);
//   - ReferenceGrants from Gateways, and Secrets (metadata) the listeners name.
func (r *GatewayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named(gatewayControllerName).
		For(&gwapiv1.Gateway{}, builder.WithPredicates(predicate.Or[client.Object](specOrDeletionChanged, gatewayStatusChanged))).
		Watches(&gwapiv1.GatewayClass{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysOfClass),
			// Annotations too: allow-unmanaged-endpointslices reaches the generated EdgeProxies.
			builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&edgev1alpha1.EdgeProxy{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysOfEdgeProxy),
			builder.WithPredicates(edgeProxyServingChanged)).
		Watches(&gwapiv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(gatewaysOfRoute),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allGateways),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&edgev1alpha1.TenantRoute{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysOfTenantRoute),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysOfSecret), builder.OnlyMetadata)
	if r.ReferenceGrants {
		b.Watches(&gwapiv1beta1.ReferenceGrant{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysGrantedBy))
	}
	return b.Complete(r)
}

// edgeProxyServingChanged passes EdgeProxy events that can change a Gateway's status: spec,
// readiness and addresses, not the route counts its status also carries.
var edgeProxyServingChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*edgev1alpha1.EdgeProxy)
		cur, okNew := e.ObjectNew.(*edgev1alpha1.EdgeProxy)
		if !okOld || !okNew {
			return true
		}
		return old.Generation != cur.Generation || edgeProxyReady(old) != edgeProxyReady(cur) ||
			!equality.Semantic.DeepEqual(old.Status.Addresses, cur.Status.Addresses) ||
			!equality.Semantic.DeepEqual(old.Labels, cur.Labels)
	},
}

func (r *GatewayReconciler) listGateways(ctx context.Context, opts ...client.ListOption) []gwapiv1.Gateway {
	var list gwapiv1.GatewayList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list gateways")
		return nil
	}
	return list.Items
}

func requestsFor(gws []gwapiv1.Gateway, keep func(*gwapiv1.Gateway) bool) []reconcile.Request {
	var reqs []reconcile.Request
	for i := range gws {
		if keep == nil || keep(&gws[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&gws[i])})
		}
	}
	return reqs
}

func (r *GatewayReconciler) allGateways(ctx context.Context, _ client.Object) []reconcile.Request {
	return requestsFor(r.listGateways(ctx), nil)
}

func (r *GatewayReconciler) gatewaysOfClass(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFor(r.listGateways(ctx), func(gw *gwapiv1.Gateway) bool { return string(gw.Spec.GatewayClassName) == o.GetName() })
}

// gatewaysOfEdgeProxy: the Gateway it was generated for, and every Gateway naming it (directly or
// through its class).
func (r *GatewayReconciler) gatewaysOfEdgeProxy(ctx context.Context, o client.Object) []reconcile.Request {
	var classes gwapiv1.GatewayClassList
	if err := r.List(ctx, &classes); err != nil {
		log.FromContext(ctx).Error(err, "list gatewayclasses")
		return nil
	}
	eps := []edgev1alpha1.EdgeProxy{{ObjectMeta: metav1.ObjectMeta{Name: o.GetName()}}}
	return requestsFor(r.listGateways(ctx), func(gw *gwapiv1.Gateway) bool {
		p, _ := translate.ResolveGatewayProxy(gw, classes.Items, eps)
		return p != nil && p.Name == o.GetName()
	})
}

func gatewaysOfRoute(_ context.Context, o client.Object) []reconcile.Request {
	rt, ok := o.(*gwapiv1.HTTPRoute)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, k := range routeGateways(rt) {
		reqs = append(reqs, reconcile.Request{NamespacedName: k})
	}
	return reqs
}

func (r *GatewayReconciler) gatewaysOfTenantRoute(ctx context.Context, o client.Object) []reconcile.Request {
	tr, ok := o.(*edgev1alpha1.TenantRoute)
	ns := o.GetLabels()[translate.LabelGatewayNamespace]
	if !ok || ns == "" {
		return nil
	}
	return requestsFor(r.listGateways(ctx, client.InNamespace(ns)), func(gw *gwapiv1.Gateway) bool {
		return translate.GatewayEdgeProxyName(gw) == tr.Spec.EdgeProxy
	})
}

func (r *GatewayReconciler) gatewaysOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	key := types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
	return requestsFor(r.listGateways(ctx, client.MatchingFields{indexGatewaySecret: key.String()}), nil)
}

func (r *GatewayReconciler) gatewaysGrantedBy(ctx context.Context, o client.Object) []reconcile.Request {
	g, ok := o.(*gwapiv1beta1.ReferenceGrant)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, f := range g.Spec.From {
		if string(f.Group) == gwapiv1.GroupName && f.Kind == "Gateway" {
			reqs = append(reqs, requestsFor(r.listGateways(ctx, client.InNamespace(string(f.Namespace))), nil)...)
		}
	}
	return reqs
}
