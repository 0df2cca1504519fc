package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// RBAC of this reconciler; `make manifests` turns these markers into config/rbac/role.yaml.
// ingresses/finalizers lets generated TenantRoutes carry blockOwnerDeletion where the
// OwnerReferencesPermissionEnforcement admission plugin is on.
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;ingressclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=edge.portico.dev,resources=tenantroutes,verbs=get;list;watch;create;update;patch;delete

// IngressReconciler lowers every Ingress of a Portico IngressClass into TenantRoutes
// (controllers/translate decides; this file gathers objects, applies, reports), and writes the
// Ingress's status.loadBalancer from its EdgeProxy's addresses. Ingresses of other classes are never
// written to.
//
// When the latest version of an Ingress cannot be translated (a refused annotation, a port name no
// Service has), nothing new is served: the TenantRoutes of its last good version keep serving, with
// Translated=False saying why, and each field error becomes a Warning Event on the Ingress. Deleting
// them instead would turn a typo into an outage; an Ingress that never translated has no routes.
type IngressReconciler struct {
	client.Client
	Recorder events.EventRecorder

	applied  appliedRoutes
	reported reportedEvents
}

// Reconcile translates one Ingress, applies its TenantRoutes, deletes those it no longer produces,
// reports what was not translated exactly, and writes the Ingress's address.
func (r *IngressReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ing := &networkingv1.Ingress{}
	err := r.Get(ctx, req.NamespacedName, ing)
	if apierrors.IsNotFound(err) {
		// The garbage collector deletes the routes of a deleted Ingress through their
		// ownerReferences; deleting them here too serves clusters (and tests) without one.
		r.reported.forget(req.NamespacedName)
		return ctrl.Result{}, r.pruneRoutes(ctx, req.Namespace, req.Name, nil)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get ingress %s: %w", req.NamespacedName, err)
	}
	if !ing.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.pruneRoutes(ctx, ing.Namespace, ing.Name, nil)
	}

	in, err := r.gather(ctx, ing)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := translate.Ingress(in)
	if res.Class == nil {
		// Not Portico's, or no longer: take back what we made and leave the rest alone.
		r.reported.forget(req.NamespacedName)
		if err := r.pruneRoutes(ctx, ing.Namespace, ing.Name, nil); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.writeAddresses(ctx, ing, nil)
	}

	var out syncOutcome
	switch {
	case res.Canary:
		// A canary has no routes of its own: its main Ingresses carry its backends.
		out.served = true
		err = r.pruneRoutes(ctx, ing.Namespace, ing.Name, nil)
	case len(res.Errors) > 0:
		out, err = r.keepLastGood(ctx, ing, res.Errors)
	default:
		out, err = r.applyRoutes(ctx, ing, res)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.report(ing, res.Notices, out.problems)

	var addrs []networkingv1.IngressLoadBalancerIngress
	if out.served && in.EdgeProxy != nil {
		addrs = loadBalancerIngress(in.EdgeProxy.Status.Addresses)
	}
	return ctrl.Result{}, r.writeAddresses(ctx, ing, addrs)
}

// gather lists what the translation reads, from the cache: every IngressClass, the EdgeProxy the
// class leads to, the Services and the canary Ingresses of the namespace.
func (r *IngressReconciler) gather(ctx context.Context, ing *networkingv1.Ingress) (translate.Input, error) {
	in := translate.Input{Ingress: ing}
	var classes networkingv1.IngressClassList
	if err := r.List(ctx, &classes); err != nil {
		return in, fmt.Errorf("list ingressclasses: %w", err)
	}
	in.IngressClasses = classes.Items
	class, _ := translate.SelectClass(ing, classes.Items)
	if class == nil {
		return in, nil
	}
	if class.EdgeProxy != "" {
		ep := &edgev1alpha1.EdgeProxy{}
		switch err := r.Get(ctx, types.NamespacedName{Name: class.EdgeProxy}, ep); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return in, fmt.Errorf("get edgeproxy %s: %w", class.EdgeProxy, err)
		case ep.DeletionTimestamp.IsZero():
			in.EdgeProxy = ep
		}
	}
	var services corev1.ServiceList
	if err := r.List(ctx, &services, client.InNamespace(ing.Namespace)); err != nil {
		return in, fmt.Errorf("list services in %s: %w", ing.Namespace, err)
	}
	in.Services = services.Items
	var ingresses networkingv1.IngressList
	if err := r.List(ctx, &ingresses, client.InNamespace(ing.Namespace)); err != nil {
		return in, fmt.Errorf("list ingresses in %s: %w", ing.Namespace, err)
	}
	for _, other := range ingresses.Items {
		if other.Name != ing.Name && translate.IsCanary(&other) {
			in.Canaries = append(in.Canaries, other)
		}
	}
	return in, nil
}

// loadBalancerIngress turns an EdgeProxy's addresses into Ingress load-balancer entries.
func loadBalancerIngress(addrs []edgev1alpha1.EdgeProxyAddress) []networkingv1.IngressLoadBalancerIngress {
	var out []networkingv1.IngressLoadBalancerIngress
	for _, a := range addrs {
		switch a.Type {
		case "IPAddress":
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: a.Value})
		case "Hostname":
			out = append(out, networkingv1.IngressLoadBalancerIngress{Hostname: a.Value})
		}
	}
	return out
}
