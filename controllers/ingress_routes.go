package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/translate"
)

// syncOutcome is what applying one translation did.
type syncOutcome struct {
	// served: the Ingress has TenantRoutes (new or last good), or is a canary served through others.
	served bool
	// problems are the errors to report on the Ingress, each a Warning Event.
	problems []problem
}

type problem struct {
	reason edgev1alpha1.ConditionReason
	// subject is the annotation or field the problem is about.
	subject string
	msg     string
}

// applyRoutes applies the translated TenantRoutes, each with its translation record, then deletes the
// Ingress's routes the translation no longer produces. A route name already taken by a TenantRoute
// that is not this Ingress's (a hand-written one, say) is never taken over: the Ingress is then
// treated as untranslatable.
func (r *IngressReconciler) applyRoutes(ctx context.Context, ing *networkingv1.Ingress, res translate.Result) (syncOutcome, error) {
	var taken field.ErrorList
	for _, tr := range res.Routes {
		live := &edgev1alpha1.TenantRoute{}
		err := r.Get(ctx, client.ObjectKeyFromObject(tr), live)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return syncOutcome{}, fmt.Errorf("get tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		case !generatedFrom(live, ing.Name):
			taken = append(taken, field.Duplicate(field.NewPath("metadata", "name"), fmt.Sprintf(
				"the TenantRoute %s/%s this Ingress translates to already exists and was not generated from it; Portico does not take it over (rename or delete one of them)",
				tr.Namespace, tr.Name)))
		}
	}
	if len(taken) > 0 {
		out, err := r.keepLastGood(ctx, ing, taken)
		for i := range out.problems {
			out.problems[i].reason = eventReasonRouteConflict
		}
		return out, err
	}

	record := translationRecord{SourceGeneration: ing.Generation, Notices: res.Notices}.encode()
	keep := map[string]bool{}
	for _, tr := range res.Routes {
		keep[tr.Name] = true
		tr = tr.DeepCopy()
		if tr.Annotations == nil {
			tr.Annotations = map[string]string{}
		}
		tr.Annotations[edgev1alpha1.AnnotationTranslation] = record
		if err := r.applyRoute(ctx, tr); err != nil {
			return syncOutcome{}, err
		}
	}
	if err := r.pruneRoutes(ctx, ing.Namespace, ing.Name, keep); err != nil {
		return syncOutcome{}, err
	}
	return syncOutcome{served: len(res.Routes) > 0}, nil
}

// applyRoute server-side applies one TenantRoute, unless the cache shows the very object our last
// apply of the same document returned.
func (r *IngressReconciler) applyRoute(ctx context.Context, tr *edgev1alpha1.TenantRoute) error {
	key := client.ObjectKeyFromObject(tr)
	u, err := render.ToUnstructured(tr)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(u.Object) // map keys are sorted: deterministic
	if err != nil {
		return fmt.Errorf("encode tenantroute %s: %w", key, err)
	}
	hash := sha256.Sum256(doc)
	live := &edgev1alpha1.TenantRoute{}
	if err := r.Get(ctx, key, live); err == nil && r.applied.upToDate(key, hash, live.ResourceVersion) {
		return nil
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(edgev1alpha1.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply tenantroute %s: %w", key, err)
	}
	r.applied.remember(key, hash, u.GetResourceVersion())
	return nil
}

// keepLastGood leaves the Ingress's TenantRoutes as they are, marks them as no longer the
// translation of the current Ingress (their Translated condition turns False), and returns each
// error as a problem to report.
func (r *IngressReconciler) keepLastGood(ctx context.Context, ing *networkingv1.Ingress, errs field.ErrorList) (syncOutcome, error) {
	msgs := make([]string, len(errs))
	out := syncOutcome{problems: make([]problem, len(errs))}
	for i, e := range errs {
		msgs[i] = e.Error()
		out.problems[i] = problem{reason: eventReasonTranslationFailed, subject: e.Field, msg: msgs[i]}
	}
	routes, err := r.routesOf(ctx, ing.Namespace, ing.Name)
	if err != nil {
		return out, err
	}
	msgs = truncateAll(msgs)
	for i := range routes {
		tr := &routes[i]
		rec, _ := readTranslation(tr)
		if slices.Equal(rec.Errors, msgs) {
			out.served = true
			continue
		}
		orig := tr.DeepCopy()
		rec.Errors = msgs
		if tr.Annotations == nil {
			tr.Annotations = map[string]string{}
		}
		tr.Annotations[edgev1alpha1.AnnotationTranslation] = rec.encode()
		if err := r.Patch(ctx, tr, client.MergeFrom(orig)); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return out, fmt.Errorf("mark tenantroute %s/%s as the last good translation: %w", tr.Namespace, tr.Name, err)
		}
		out.served = true
	}
	return out, nil
}

// routesOf lists the TenantRoutes generated from the named Ingress.
func (r *IngressReconciler) routesOf(ctx context.Context, namespace, name string) ([]edgev1alpha1.TenantRoute, error) {
	var list edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels(translate.SourceLabels(name))); err != nil {
		return nil, fmt.Errorf("list tenantroutes of ingress %s/%s: %w", namespace, name, err)
	}
	out := list.Items[:0]
	for _, tr := range list.Items {
		if generatedFrom(&tr, name) {
			out = append(out, tr)
		}
	}
	return out, nil
}

// pruneRoutes deletes the TenantRoutes generated from the named Ingress whose names are not in keep.
func (r *IngressReconciler) pruneRoutes(ctx context.Context, namespace, name string, keep map[string]bool) error {
	routes, err := r.routesOf(ctx, namespace, name)
	if err != nil {
		return err
	}
	for i := range routes {
		tr := &routes[i]
		if keep[tr.Name] {
			continue
		}
		if err := r.Delete(ctx, tr, client.Preconditions{UID: ptrUID(tr.UID)}); client.IgnoreNotFound(err) != nil {
			if apierrors.IsConflict(err) {
				continue // a new route of the same name replaced it already
			}
			return fmt.Errorf("delete tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		}
		key := client.ObjectKeyFromObject(tr)
		r.applied.forget(key)
		log.FromContext(ctx).Info("deleted tenantroute no longer produced", "tenantRoute", key.String())
	}
	return nil
}

// generatedFrom reports whether a TenantRoute is controlled by an Ingress of this name. The UID is
// not compared: a route left by a deleted Ingress of the same name is taken over (its ownerReference
// is replaced by the next apply) rather than refused.
func generatedFrom(tr *edgev1alpha1.TenantRoute, ingress string) bool {
	owner := metav1.GetControllerOf(tr)
	return owner != nil && owner.Kind == "Ingress" && owner.Name == ingress &&
		owner.APIVersion == networkingv1.SchemeGroupVersion.String()
}

// appliedRoutes remembers, per TenantRoute, the hash of the document last applied and the
// resourceVersion the API server answered with. A route whose cached resourceVersion and desired
// document both match is not applied again; any write by anyone (status included) makes the next
// reconcile apply once more, which the API server answers without writing when nothing changed.
type appliedRoutes struct {
	mu sync.Mutex
	m  map[types.NamespacedName]appliedRoute
}

type appliedRoute struct {
	hash            [sha256.Size]byte
	resourceVersion string
}

func (a *appliedRoutes) upToDate(key types.NamespacedName, hash [sha256.Size]byte, rv string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	got, ok := a.m[key]
	return ok && got.hash == hash && got.resourceVersion == rv
}

func (a *appliedRoutes) remember(key types.NamespacedName, hash [sha256.Size]byte, rv string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[types.NamespacedName]appliedRoute{}
	}
	a.m[key] = appliedRoute{hash: hash, resourceVersion: rv}
}

func (a *appliedRoutes) forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, key)
}
