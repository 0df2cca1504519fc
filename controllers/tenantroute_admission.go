package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// Admission at scale. A route's Accepted verdict depends on its own checks (routing.Compile among
// them) and on hostname ownership among every route of its EdgeProxy. Re-running both for every
// route of the EdgeProxy on every reconcile is quadratic in the number of routes, so:
//
//   - check verdicts are cached per route UID, keyed by the route's generation, the EdgeProxy's UID
//     and generation and (when the EdgeProxy selects namespaces by label) the namespace's labels;
//     admission.Check is pure, so a hit is exactly what a recomputation would return;
//   - ownership (admission.Resolve) is computed once per EdgeProxy and reused by every reconcile
//     until something it depends on changes: a route of the EdgeProxy is created, deleted or changes
//     spec, a route's Accepted standing changes in a way the last result did not predict, the
//     EdgeProxy's generation changes, or a namespace's labels change (revision counters bumped by
//     event handlers, read before the cache is listed, so a change racing a computation only makes
//     the result stale, never wrong);
//   - when a new ownership result changes the verdict of routes other than the one being
//     reconciled, exactly those are re-queued (cascades), and a route's spec change or deletion
//     re-queues only the routes sharing one of its hostnames (indexRouteHostname), not every
//     sibling;
//   - a reconcile triggered only by config delivery's ACK tracker updates Programmed from the
//     route's last admission (its status) without re-running admission; every other trigger marks
//     the route for full admission (admitting).

// indexRouteHostname indexes TenantRoutes by "<edgeProxy>|<hostname>" (lower-cased; "" for the
// catch-all) and "<edgeProxy>|under:<wildcard>" for every exact hostname a one-label wildcard covers.
const indexRouteHostname = "portico.hostnames"

// maxCheckEntries bounds the check cache; it is cleared when full (entries of deleted routes are
// dropped on their delete events, so it only fills with more live routes than this).
const maxCheckEntries = 50000

type admissionState struct {
	mu     sync.Mutex
	checks map[types.UID]checkEntry
	eps    map[string]*epAdmission
	// epoch is bumped when a namespace's labels change: every ownership result is then stale.
	epoch uint64
	// dirty routes need full admission; the others were only poked by the ACK tracker.
	dirty map[types.NamespacedName]struct{}
}

type checkKey struct {
	gen      int64
	epUID    types.UID
	epGen    int64
	nsLabels string
}

type checkEntry struct {
	key     checkKey
	verdict admission.Verdict
}

type epAdmission struct {
	rev  uint64
	memo *ownership
}

// ownership is the result of one admission.Resolve over an EdgeProxy's routes.
type ownership struct {
	rev, epoch uint64
	epUID      types.UID
	epGen      int64
	routes     map[types.NamespacedName]memoRoute
	refused    map[types.NamespacedName]admission.Conflict
}

// memoRoute is one route as the ownership result saw it.
type memoRoute struct {
	gen int64
	// claim: it passed its own checks and took part in Resolve; admitted: it won its hostnames.
	claim, admitted bool
}

func newAdmissionState() *admissionState {
	return &admissionState{checks: map[types.UID]checkEntry{}, eps: map[string]*epAdmission{},
		dirty: map[types.NamespacedName]struct{}{}}
}

// state returns the reconciler's admission state (created on first use).
func (r *TenantRouteReconciler) state() *admissionState {
	r.stateOnce.Do(func() { r.adm = newAdmissionState() })
	return r.adm
}

func (a *admissionState) ep(name string) *epAdmission {
	e := a.eps[name]
	if e == nil {
		e = &epAdmission{}
		a.eps[name] = e
	}
	return e
}

// bump makes the ownership result of these EdgeProxies stale.
func (a *admissionState) bump(eps ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ep := range eps {
		a.ep(ep).rev++
	}
}

func (a *admissionState) markDirty(k types.NamespacedName) {
	a.mu.Lock()
	a.dirty[k] = struct{}{}
	a.mu.Unlock()
}

// takeDirty reports whether the route needs full admission and clears the mark.
func (a *admissionState) takeDirty(k types.NamespacedName) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.dirty[k]
	delete(a.dirty, k)
	return ok
}

// consistent reports whether a status-only change of tr (its Accepted standing) is what the current
// ownership result predicted: an admitted claim now Incumbent, or a refused one now a Challenger,
// or a route that is no claim at all. Such a change cannot change Resolve's result (admitted claims
// are pairwise compatible and each refused one conflicts with an admitted one ranked before it, an
// order that promoting the admitted and demoting the refused preserves), so it leaves the result valid.
func (a *admissionState) consistent(tr *edgev1alpha1.TenantRoute) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.eps[tr.Spec.EdgeProxy]
	if e == nil || e.memo == nil || e.memo.rev != e.rev || e.memo.epoch != a.epoch {
		return true // no valid result to disturb: the next reconcile recomputes anyway
	}
	m, ok := e.memo.routes[types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}]
	if !ok || m.gen != tr.Generation {
		return false
	}
	if !m.claim {
		return true
	}
	standing := admission.ClaimOf(tr).Standing
	if m.admitted {
		return standing == admission.Incumbent
	}
	return standing == admission.Challenger
}

func (a *admissionState) lookupCheck(uid types.UID, k checkKey) (admission.Verdict, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.checks[uid]
	if !ok || e.key != k {
		return admission.Verdict{}, false
	}
	return e.verdict, true
}

func (a *admissionState) storeCheck(uid types.UID, k checkKey, v admission.Verdict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.checks[uid]; !ok && len(a.checks) >= maxCheckEntries {
		clear(a.checks)
	}
	a.checks[uid] = checkEntry{key: k, verdict: v}
}

func (a *admissionState) forget(uid types.UID) {
	a.mu.Lock()
	delete(a.checks, uid)
	a.mu.Unlock()
}

// nsLabeler returns the labels of a namespace (nil when it does not exist).
type nsLabeler func(ctx context.Context, name string) (map[string]string, error)

func (r *TenantRouteReconciler) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// check runs the per-route checks (admission.Check), from the cache when the route, its EdgeProxy
// and (for a selector) its namespace's labels are those of the cached verdict.
func (r *TenantRouteReconciler) check(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy, labelsOf nsLabeler) (admission.Verdict, error) {
	if ep == nil {
		return admission.Check(admission.Input{Route: tr}).Verdict, nil
	}
	in := admission.Input{Route: tr, EdgeProxy: ep}
	key := checkKey{gen: tr.Generation, epUID: ep.UID, epGen: ep.Generation}
	if ep.Spec.TenantNamespaces.Selector != nil {
		l, err := labelsOf(ctx, tr.Namespace)
		if err != nil {
			return admission.Verdict{}, err
		}
		in.NamespaceLabels = l
		key.nsLabels = labels.Set(l).String()
	}
	a := r.state()
	if tr.UID != "" {
		if v, ok := a.lookupCheck(tr.UID, key); ok {
			return v, nil
		}
	}
	v := admission.Check(in).Verdict
	if tr.UID != "" {
		a.storeCheck(tr.UID, key, v)
	}
	return v, nil
}

// ownership returns hostname ownership among the routes of ep: the last result when it is still
// valid and covers tr's current generation, else a new one (re-queueing the other routes whose
// verdict it changed).
func (r *TenantRouteReconciler) ownership(ctx context.Context, ep *edgev1alpha1.EdgeProxy, tr *edgev1alpha1.TenantRoute) (*ownership, error) {
	a := r.state()
	key := types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}
	a.mu.Lock()
	e := a.ep(ep.Name)
	if m := e.memo; m != nil && m.rev == e.rev && m.epoch == a.epoch && m.epUID == ep.UID && m.epGen == ep.Generation {
		if mr, ok := m.routes[key]; ok && mr.gen == tr.Generation && mr.claim {
			a.mu.Unlock()
			return m, nil
		}
	}
	rev, epoch, prev := e.rev, a.epoch, e.memo
	a.mu.Unlock()

	m, err := r.resolveHostnames(ctx, ep)
	if err != nil {
		return nil, err
	}
	m.rev, m.epoch = rev, epoch
	a.mu.Lock()
	e.memo = m
	a.mu.Unlock()
	r.requeueChanged(ctx, prev, m, key)
	return m, nil
}

// resolveHostnames decides hostname ownership among every route of the EdgeProxy that passes its
// own checks. The routes are read from the cache without copies: nothing here modifies them.
func (r *TenantRouteReconciler) resolveHostnames(ctx context.Context, ep *edgev1alpha1.EdgeProxy) (*ownership, error) {
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, client.MatchingFields{indexRouteEdgeProxy: ep.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	nsLabels := map[string]map[string]string{}
	labelsOf := func(ctx context.Context, name string) (map[string]string, error) {
		if l, ok := nsLabels[name]; ok {
			return l, nil
		}
		l, err := r.namespaceLabels(ctx, name)
		if err != nil {
			return nil, err
		}
		nsLabels[name] = l
		return l, nil
	}
	m := &ownership{epUID: ep.UID, epGen: ep.Generation, routes: make(map[types.NamespacedName]memoRoute, len(routes.Items))}
	claims := make([]admission.Claim, 0, len(routes.Items))
	for i := range routes.Items {
		tr := &routes.Items[i]
		if !tr.DeletionTimestamp.IsZero() {
			continue
		}
		v, err := r.check(ctx, tr, ep, labelsOf)
		if err != nil {
			return nil, err
		}
		m.routes[types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}] = memoRoute{gen: tr.Generation, claim: v.OK}
		if v.OK {
			claims = append(claims, admission.ClaimOf(tr))
		}
	}
	m.refused = admission.Resolve(claims)
	for k, mr := range m.routes {
		if mr.claim {
			_, lost := m.refused[k]
			mr.admitted = !lost
			m.routes[k] = mr
		}
	}
	return m, nil
}

// requeueChanged re-admits the routes (other than self) whose ownership verdict differs between
// two results: the cascade of one change. Routes new in m are queued by their own events.
func (r *TenantRouteReconciler) requeueChanged(ctx context.Context, prev, m *ownership, self types.NamespacedName) {
	if prev == nil || r.requeue == nil {
		return
	}
	for k, now := range m.routes {
		was, ok := prev.routes[k]
		if !ok || k == self || !now.claim || !was.claim {
			continue
		}
		if was.admitted == now.admitted && prev.refused[k] == m.refused[k] {
			continue
		}
		obj := &edgev1alpha1.TenantRoute{}
		obj.Namespace, obj.Name = k.Namespace, k.Name
		select {
		case r.requeue <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// hostnameKeys are a route's indexRouteHostname values.
func hostnameKeys(tr *edgev1alpha1.TenantRoute) []string {
	var keys []string
	for _, h := range routeHosts(tr) {
		keys = append(keys, tr.Spec.EdgeProxy+"|"+h)
		if w := coveringWildcard(h); w != "" {
			keys = append(keys, tr.Spec.EdgeProxy+"|under:"+w)
		}
	}
	return keys
}

// hostnameNeighbourKeys are the indexRouteHostname values of the routes whose ownership can
// depend on tr's hostnames: the same names, the wildcard covering each exact name, and the exact
// names under each wildcard.
func hostnameNeighbourKeys(tr *edgev1alpha1.TenantRoute) []string {
	var keys []string
	for _, h := range routeHosts(tr) {
		keys = append(keys, tr.Spec.EdgeProxy+"|"+h)
		if w := coveringWildcard(h); w != "" {
			keys = append(keys, tr.Spec.EdgeProxy+"|"+w)
		}
		if strings.HasPrefix(h, "*.") {
			keys = append(keys, tr.Spec.EdgeProxy+"|under:"+h)
		}
	}
	return keys
}

// routeHosts are the ownership keys of a route (admission.Resolve's): lower-cased hostnames, or ""
// for the catch-all.
func routeHosts(tr *edgev1alpha1.TenantRoute) []string {
	if len(tr.Spec.Hostnames) == 0 {
		return []string{""}
	}
	out := make([]string, 0, len(tr.Spec.Hostnames))
	for _, h := range tr.Spec.Hostnames {
		out = append(out, strings.ToLower(string(h)))
	}
	return out
}

// coveringWildcard is "*.example.com" for "www.example.com", "" for a wildcard or a single label
// (admission's ownership rule).
func coveringWildcard(h string) string {
	if strings.HasPrefix(h, "*.") {
		return ""
	}
	i := strings.IndexByte(h, '.')
	if i < 0 || i == len(h)-1 {
		return ""
	}
	return "*" + h[i:]
}

// routesSharingHostnames maps a route to the routes of its EdgeProxy whose hostname ownership its
// hostnames take part in.
func (r *TenantRouteReconciler) routesSharingHostnames(ctx context.Context, o client.Object) []reconcile.Request {
	tr, ok := o.(*edgev1alpha1.TenantRoute)
	if !ok {
		return nil
	}
	// Stale first: the routes queued here must not reuse the result computed before this change
	// (ownershipInputs sees the same event, but in its own goroutine).
	r.state().bump(tr.Spec.EdgeProxy)
	seen := map[types.NamespacedName]bool{}
	var reqs []reconcile.Request
	for _, k := range hostnameNeighbourKeys(tr) {
		var routes edgev1alpha1.TenantRouteList
		if err := r.List(ctx, &routes, client.MatchingFields{indexRouteHostname: k}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "list tenantroutes sharing a hostname", "key", k)
			return nil
		}
		for i := range routes.Items {
			nn := types.NamespacedName{Namespace: routes.Items[i].Namespace, Name: routes.Items[i].Name}
			if !seen[nn] {
				seen[nn] = true
				reqs = append(reqs, reconcile.Request{NamespacedName: nn})
			}
		}
	}
	return reqs
}

// ownershipInputs keeps the ownership results honest: it queues nothing, it only marks the
// EdgeProxies whose result a route event makes stale.
func (r *TenantRouteReconciler) ownershipInputs() handler.EventHandler {
	a := r.state()
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, _ queue) {
			if tr, ok := e.Object.(*edgev1alpha1.TenantRoute); ok {
				a.bump(tr.Spec.EdgeProxy)
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, _ queue) {
			old, ok1 := e.ObjectOld.(*edgev1alpha1.TenantRoute)
			tr, ok2 := e.ObjectNew.(*edgev1alpha1.TenantRoute)
			switch {
			case !ok1 || !ok2:
			case old.Generation != tr.Generation || old.Spec.EdgeProxy != tr.Spec.EdgeProxy ||
				old.DeletionTimestamp.IsZero() != tr.DeletionTimestamp.IsZero():
				a.bump(old.Spec.EdgeProxy, tr.Spec.EdgeProxy)
			case admission.ClaimOf(old).Standing != admission.ClaimOf(tr).Standing && !a.consistent(tr):
				a.bump(tr.Spec.EdgeProxy)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ queue) {
			if tr, ok := e.Object.(*edgev1alpha1.TenantRoute); ok {
				a.bump(tr.Spec.EdgeProxy)
				a.forget(tr.UID)
				a.mu.Lock()
				delete(a.dirty, types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name})
				a.mu.Unlock()
			}
		},
	}
}

// namespaceLabelsChanged makes every ownership result stale (selectors of tenantNamespaces).
func (r *TenantRouteReconciler) namespaceLabelsChanged() {
	a := r.state()
	a.mu.Lock()
	a.epoch++
	a.mu.Unlock()
}

// admitting wraps a handler so that every route it queues is marked for full admission.
func (r *TenantRouteReconciler) admitting(h handler.EventHandler) handler.EventHandler {
	a := r.state()
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	wrap := func(q queue) queue { return markingQueue{TypedRateLimitingInterface: q, a: a} }
	return handler.Funcs{
		CreateFunc:  func(ctx context.Context, e event.CreateEvent, q queue) { h.Create(ctx, e, wrap(q)) },
		UpdateFunc:  func(ctx context.Context, e event.UpdateEvent, q queue) { h.Update(ctx, e, wrap(q)) },
		DeleteFunc:  func(ctx context.Context, e event.DeleteEvent, q queue) { h.Delete(ctx, e, wrap(q)) },
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q queue) { h.Generic(ctx, e, wrap(q)) },
	}
}

// markingQueue marks every request added through it dirty before queueing it.
type markingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	a *admissionState
}

func (q markingQueue) Add(item reconcile.Request) {
	q.a.markDirty(item.NamespacedName)
	q.TypedRateLimitingInterface.Add(item)
}

func (q markingQueue) AddAfter(item reconcile.Request, d time.Duration) {
	q.a.markDirty(item.NamespacedName)
	q.TypedRateLimitingInterface.AddAfter(item, d)
}

func (q markingQueue) AddRateLimited(item reconcile.Request) {
	q.a.markDirty(item.NamespacedName)
	q.TypedRateLimitingInterface.AddRateLimited(item)
}
