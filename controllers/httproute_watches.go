package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// SetupWithManager watches what a route's translation reads. Status writes (ours included) never
// retrigger it:
//
//   - the HTTPRoute's spec, and its TenantRoutes (edited or deleted by someone: repaired);
//   - its Gateways (spec), every route when a GatewayClass or an EdgeProxy changes its spec,
//     appears or goes away (both are few and rarely change);
//   - its namespace's labels (listeners' allowedRoutes selectors);
//   - its backend Services;
//   - ReferenceGrants from HTTPRoutes (backends) or from Gateways (certificates): creating one
//     grants, deleting one revokes;
//   - Secrets (metadata) its Gateways' listeners name.
func (r *HTTPRouteReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named(httpRouteControllerName).
		For(&gwapiv1.HTTPRoute{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&edgev1alpha1.TenantRoute{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&gwapiv1.Gateway{}, handler.EnqueueRequestsFromMapFunc(r.routesOfGatewayObject),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&gwapiv1.GatewayClass{}, handler.EnqueueRequestsFromMapFunc(r.allRoutes),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&edgev1alpha1.EdgeProxy{}, handler.EnqueueRequestsFromMapFunc(r.allRoutes),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.routesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.routesOfService)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.routesOfSecret), builder.OnlyMetadata)
	if r.ReferenceGrants {
		b.Watches(&gwapiv1beta1.ReferenceGrant{}, handler.EnqueueRequestsFromMapFunc(r.routesGrantedBy))
	}
	return b.Complete(r)
}

func (r *HTTPRouteReconciler) listRoutes(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list gwapiv1.HTTPRouteList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list httproutes to translate again")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rt := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rt.Namespace, Name: rt.Name}})
	}
	return reqs
}

func (r *HTTPRouteReconciler) allRoutes(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRoutes(ctx)
}

func (r *HTTPRouteReconciler) routesOfGateway(ctx context.Context, key types.NamespacedName) []reconcile.Request {
	return r.listRoutes(ctx, client.MatchingFields{indexHTTPRouteParent: key.String()})
}

func (r *HTTPRouteReconciler) routesOfGatewayObject(ctx context.Context, o client.Object) []reconcile.Request {
	return r.routesOfGateway(ctx, client.ObjectKeyFromObject(o))
}

func (r *HTTPRouteReconciler) routesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRoutes(ctx, client.InNamespace(o.GetName()))
}

func (r *HTTPRouteReconciler) routesOfService(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRoutes(ctx, client.MatchingFields{indexHTTPRouteBackend: client.ObjectKeyFromObject(o).String()})
}

func (r *HTTPRouteReconciler) routesOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var gws gwapiv1.GatewayList
	if err := r.List(ctx, &gws, client.MatchingFields{indexGatewaySecret: client.ObjectKeyFromObject(o).String()}); err != nil {
		log.FromContext(ctx).Error(err, "list gateways by certificate")
		return nil
	}
	var reqs []reconcile.Request
	for _, gw := range gws.Items {
		reqs = append(reqs, r.routesOfGateway(ctx, client.ObjectKeyFromObject(&gw))...)
	}
	return reqs
}

// routesGrantedBy: a grant from HTTPRoutes of a namespace re-translates that namespace's routes; a
// grant from Gateways of a namespace, the routes of those Gateways.
func (r *HTTPRouteReconciler) routesGrantedBy(ctx context.Context, o client.Object) []reconcile.Request {
	g, ok := o.(*gwapiv1beta1.ReferenceGrant)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, f := range g.Spec.From {
		if string(f.Group) != gwapiv1.GroupName {
			continue
		}
		switch f.Kind {
		case "HTTPRoute":
			reqs = append(reqs, r.listRoutes(ctx, client.InNamespace(string(f.Namespace)))...)
		case "Gateway":
			var gws gwapiv1.GatewayList
			if err := r.List(ctx, &gws, client.InNamespace(string(f.Namespace))); err != nil {
				log.FromContext(ctx).Error(err, "list gateways of namespace", "namespace", f.Namespace)
				continue
			}
			for _, gw := range gws.Items {
				reqs = append(reqs, r.routesOfGateway(ctx, client.ObjectKeyFromObject(&gw))...)
			}
		}
	}
	return reqs
}
