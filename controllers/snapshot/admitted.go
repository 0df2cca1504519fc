package snapshot

import (
	"sync"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// lastAdmitted remembers, per EdgeProxy and route, the last generation of each route that admission
// accepted. A spec change bumps a route's generation before admission has judged it; without this,
// a snapshot built in that window would leave the route out and its host would answer 404 for a
// moment on every update. With it, a route keeps being served as last admitted until its new
// generation is accepted (then served) or refused (then dropped): zero downtime across updates.
type lastAdmitted struct {
	mu   sync.Mutex
	byEP map[string]map[types.NamespacedName]*edgev1alpha1.TenantRoute
}

// resolve returns the routes a snapshot of ep is built from: every admitted route as it is, and for
// every route whose current generation is still being admitted, its last admitted generation. It
// forgets routes that are gone or refused. routes are not modified (they may be the cache's objects).
func (l *lastAdmitted) resolve(ep string, routes []edgev1alpha1.TenantRoute) []edgev1alpha1.TenantRoute {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byEP == nil {
		l.byEP = map[string]map[types.NamespacedName]*edgev1alpha1.TenantRoute{}
	}
	prev := l.byEP[ep]
	next := make(map[types.NamespacedName]*edgev1alpha1.TenantRoute, len(routes))
	out := make([]edgev1alpha1.TenantRoute, 0, len(routes))
	for i := range routes {
		tr := &routes[i]
		key := types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}
		switch {
		case Admitted(tr):
			kept := prev[key]
			if kept == nil || kept.Generation != tr.Generation || kept.ResourceVersion != tr.ResourceVersion {
				kept = tr.DeepCopy()
			}
			next[key] = kept
			out = append(out, *tr)
		case awaitingAdmission(tr) && prev[key] != nil:
			next[key] = prev[key]
			out = append(out, *prev[key])
		}
	}
	if len(next) == 0 {
		delete(l.byEP, ep)
	} else {
		l.byEP[ep] = next
	}
	return out
}

// forget drops what is remembered for an EdgeProxy that is gone.
func (l *lastAdmitted) forget(ep string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byEP, ep)
}

// awaitingAdmission: the route is not being deleted and admission has not yet said anything about
// its current generation.
func awaitingAdmission(tr *edgev1alpha1.TenantRoute) bool {
	if !tr.DeletionTimestamp.IsZero() {
		return false
	}
	c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted))
	return c == nil || c.ObservedGeneration < tr.Generation || c.Status == metav1.ConditionUnknown
}
