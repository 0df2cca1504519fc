package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

const (
	ingressControllerName = "ingress"

	// indexIngressClass indexes Ingresses by the class they name (spec.ingressClassName, else the
	// legacy annotation), or ingressNoClass.
	indexIngressClass = "portico.ingress.class"
	// indexIngressBackend indexes Ingresses by "namespace/name" of every Service they send traffic to.
	indexIngressBackend = "portico.ingress.backendServices"
	// ingressNoClass is the class index value of Ingresses naming no class (not a valid class name).
	ingressNoClass = "*"

	// legacyIngressClassAnnotation names the class of Ingresses written before spec.ingressClassName.
	legacyIngressClassAnnotation = "kubernetes.io/ingress.class"

	eventActionTranslate = "Translate"
)

// SetupWithManager watches what an Ingress's translation reads. Status writes (ours included) never
// retrigger it:
//
//   - the Ingress's spec and annotations (ingress-nginx annotations are its configuration), and its
//     TenantRoutes (edited or deleted by someone: repaired);
//   - a canary Ingress changing re-translates the main Ingresses of its namespace;
//   - an IngressClass: the Ingresses naming it, and those naming none when it is (or was) the default;
//   - an EdgeProxy's spec (body size, redirect) or addresses: the Ingresses of its classes;
//   - a Service: the Ingresses sending traffic to it (port names resolve through it).
func (r *IngressReconciler) SetupWithManager(mgr ctrl.Manager) error {
	specOrAnnotations := predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		Named(ingressControllerName).
		For(&networkingv1.Ingress{}, builder.WithPredicates(specOrAnnotations)).
		Owns(&edgev1alpha1.TenantRoute{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(r.mainsOfCanary),
			builder.WithPredicates(specOrAnnotations)).
		Watches(&networkingv1.IngressClass{}, handler.EnqueueRequestsFromMapFunc(r.ingressesOfClassObject)).
		Watches(&edgev1alpha1.EdgeProxy{}, handler.EnqueueRequestsFromMapFunc(r.ingressesOfEdgeProxy),
			builder.WithPredicates(edgeProxySpecOrAddressesChanged)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.ingressesOfService)).
		Complete(r)
}

// edgeProxySpecOrAddressesChanged passes an EdgeProxy's spec changes and address changes, not its
// other status updates (route counts, replicas).
var edgeProxySpecOrAddressesChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*edgev1alpha1.EdgeProxy)
		cur, okNew := e.ObjectNew.(*edgev1alpha1.EdgeProxy)
		if !okOld || !okNew {
			return true
		}
		return old.Generation != cur.Generation || !reflect.DeepEqual(old.Status.Addresses, cur.Status.Addresses)
	},
}

func registerIngressIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &networkingv1.Ingress{}, indexIngressClass, func(o client.Object) []string {
		if ing, ok := o.(*networkingv1.Ingress); ok {
			return []string{ingressClassKey(ing)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index Ingresses by class: %w", err)
	}
	if err := idx.IndexField(ctx, &networkingv1.Ingress{}, indexIngressBackend, func(o client.Object) []string {
		if ing, ok := o.(*networkingv1.Ingress); ok {
			return ingressServices(ing)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index Ingresses by backend: %w", err)
	}
	return nil
}

func ingressClassKey(ing *networkingv1.Ingress) string {
	switch {
	case ing.Spec.IngressClassName != nil:
		return *ing.Spec.IngressClassName
	case ing.Annotations[legacyIngressClassAnnotation] != "":
		return ing.Annotations[legacyIngressClassAnnotation]
	}
	return ingressNoClass
}

// ingressServices are "namespace/name" of the Services an Ingress's backends name.
func ingressServices(ing *networkingv1.Ingress) []string {
	seen := map[string]bool{}
	var out []string
	add := func(b *networkingv1.IngressBackend) {
		if b == nil || b.Service == nil {
			return
		}
		k := types.NamespacedName{Namespace: ing.Namespace, Name: b.Service.Name}.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	add(ing.Spec.DefaultBackend)
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for i := range rule.HTTP.Paths {
			add(&rule.HTTP.Paths[i].Backend)
		}
	}
	return out
}

func (r *IngressReconciler) listIngresses(ctx context.Context, opts ...client.ListOption) []networkingv1.Ingress {
	var list networkingv1.IngressList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list ingresses to translate again")
		return nil
	}
	return list.Items
}

// requests turns Ingresses into requests; a canary among them brings the main Ingresses of its
// namespace, which carry its backends.
func (r *IngressReconciler) requests(ctx context.Context, ingresses []networkingv1.Ingress) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var reqs []reconcile.Request
	add := func(ing *networkingv1.Ingress) {
		k := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
		if !seen[k] {
			seen[k] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: k})
		}
	}
	canaryNamespaces := map[string]bool{}
	for i := range ingresses {
		add(&ingresses[i])
		if translate.IsCanary(&ingresses[i]) {
			canaryNamespaces[ingresses[i].Namespace] = true
		}
	}
	for ns := range canaryNamespaces {
		for _, ing := range r.listIngresses(ctx, client.InNamespace(ns)) {
			if !translate.IsCanary(&ing) {
				add(&ing)
			}
		}
	}
	return reqs
}

// mainsOfCanary maps a canary Ingress (before or after a change) to the main Ingresses of its namespace.
func (r *IngressReconciler) mainsOfCanary(ctx context.Context, o client.Object) []reconcile.Request {
	ing, ok := o.(*networkingv1.Ingress)
	if !ok || !translate.IsCanary(ing) {
		return nil
	}
	return r.requests(ctx, []networkingv1.Ingress{*ing})
}

func (r *IngressReconciler) ingressesOfService(ctx context.Context, o client.Object) []reconcile.Request {
	key := client.ObjectKeyFromObject(o).String()
	return r.requests(ctx, r.listIngresses(ctx, client.MatchingFields{indexIngressBackend: key}))
}

func (r *IngressReconciler) ingressesOfClassObject(ctx context.Context, o client.Object) []reconcile.Request {
	class, ok := o.(*networkingv1.IngressClass)
	if !ok {
		return nil
	}
	return r.requests(ctx, r.ingressesOfClass(ctx, class))
}

// ingressesOfClass lists the Ingresses naming the class, and those naming none when it is marked
// as the default.
func (r *IngressReconciler) ingressesOfClass(ctx context.Context, class *networkingv1.IngressClass) []networkingv1.Ingress {
	out := r.listIngresses(ctx, client.MatchingFields{indexIngressClass: class.Name})
	if strings.EqualFold(class.Annotations[networkingv1.AnnotationIsDefaultIngressClass], "true") {
		out = append(out, r.listIngresses(ctx, client.MatchingFields{indexIngressClass: ingressNoClass})...)
	}
	return out
}

// ingressesOfEdgeProxy lists the Ingresses of every class that leads to the EdgeProxy, as
// translate.SelectClass decides it.
func (r *IngressReconciler) ingressesOfEdgeProxy(ctx context.Context, o client.Object) []reconcile.Request {
	var classes networkingv1.IngressClassList
	if err := r.List(ctx, &classes); err != nil {
		log.FromContext(ctx).Error(err, "list ingressclasses")
		return nil
	}
	var ingresses []networkingv1.Ingress
	for i := range classes.Items {
		c := &classes.Items[i]
		probe := &networkingv1.Ingress{Spec: networkingv1.IngressSpec{IngressClassName: &c.Name}}
		if sel, _ := translate.SelectClass(probe, classes.Items); sel != nil && sel.EdgeProxy == o.GetName() {
			ingresses = append(ingresses, r.ingressesOfClass(ctx, c)...)
		}
	}
	return r.requests(ctx, ingresses)
}
