package controllers

import (
	"context"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// SetupWithManager: a Secret's Certificate is recomputed when a route using it changes (spec or
// status: admission decides which hosts count), when a Certificate targeting it changes, when the
// EdgeProxy of such a route changes (allow-list, default issuer), and when the source Ingress of
// such a route changes (cert-manager annotations). Updates enqueue the old and the new Secrets.
func (r *CertificateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(certificateControllerName).
		Watches(&edgev1alpha1.TenantRoute{}, oldAndNew(func(_ context.Context, o client.Object) []reconcile.Request {
			tr, _ := o.(*edgev1alpha1.TenantRoute)
			return secretRequests(tr)
		})).
		Watches(&cmv1.Certificate{}, oldAndNew(func(_ context.Context, o client.Object) []reconcile.Request {
			c, ok := o.(*cmv1.Certificate)
			if !ok || c.Spec.SecretName == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.SecretName}}}
		})).
		Watches(&edgev1alpha1.EdgeProxy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var routes edgev1alpha1.TenantRouteList
			// Read-only; EdgeProxy status writes land here too, so no deep copy of every route.
			if err := r.List(ctx, &routes, client.MatchingFields{indexRouteEdgeProxy: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
				return nil
			}
			return secretRequests(refsOf(routes.Items)...)
		})).
		Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return secretRequests(refsOf(routesOfSource(ctx, r.Client, o))...)
		})).
		Complete(r)
}

// registerCertificateIndex indexes Certificates by spec.secretName.
func registerCertificateIndex(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &cmv1.Certificate{}, indexCertificateSecret, func(o client.Object) []string {
		if c, ok := o.(*cmv1.Certificate); ok && c.Spec.SecretName != "" {
			return []string{c.Spec.SecretName}
		}
		return nil
	})
}

// routesOfSource lists the TenantRoutes translated from an Ingress (by their source labels).
func routesOfSource(ctx context.Context, c client.Client, ing client.Object) []edgev1alpha1.TenantRoute {
	var routes edgev1alpha1.TenantRouteList
	if err := c.List(ctx, &routes, client.InNamespace(ing.GetNamespace()), client.MatchingLabels{
		edgev1alpha1.LabelSourceKind: "Ingress", edgev1alpha1.LabelSourceName: ing.GetName(),
	}); err != nil {
		return nil
	}
	return routes.Items
}

func refsOf(routes []edgev1alpha1.TenantRoute) []*edgev1alpha1.TenantRoute {
	out := make([]*edgev1alpha1.TenantRoute, len(routes))
	for i := range routes {
		out[i] = &routes[i]
	}
	return out
}

// secretRequests names the TLS Secrets of routes, once each.
func secretRequests(routes ...*edgev1alpha1.TenantRoute) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	for _, tr := range routes {
		if tr == nil {
			continue
		}
		for _, s := range admission.SecretRefs(tr) {
			if !seen[s.Secret] {
				seen[s.Secret] = true
				out = append(out, reconcile.Request{NamespacedName: s.Secret})
			}
		}
	}
	return out
}

// oldAndNew maps objects to requests like EnqueueRequestsFromMapFunc, but on updates maps the old
// object too, so that a Secret a route or Certificate stopped using is reconciled (and its
// Certificate deleted).
func oldAndNew(f handler.MapFunc) handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	add := func(q queue, reqs []reconcile.Request) {
		for _, r := range reqs {
			q.Add(r)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) { add(q, f(ctx, e.Object)) },
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			add(q, f(ctx, e.ObjectOld))
			add(q, f(ctx, e.ObjectNew))
		},
		DeleteFunc:  func(ctx context.Context, e event.DeleteEvent, q queue) { add(q, f(ctx, e.Object)) },
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q queue) { add(q, f(ctx, e.Object)) },
	}
}
