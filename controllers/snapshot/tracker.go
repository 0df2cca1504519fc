package snapshot

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// RouteState is what the Tracker says about one route generation: the Programmed condition.
type RouteState struct {
	Status  metav1.ConditionStatus
	Reason  edgev1alpha1.ConditionReason
	Message string
	// Version that first made this generation live on every ready replica (Programmed only).
	Version string
	// NoReplica: Pending because no proxy replica of the EdgeProxy is connected (yet).
	NoReplica bool
}

// ReplicaStatus is one connected proxy replica.
type ReplicaStatus struct {
	Pod           string
	AckedVersion  string
	NackedVersion string
	NackError     string
	// ConnectedSince is when its stream was accepted.
	ConnectedSince time.Time
}

// Tracker records, per EdgeProxy, which snapshot version each connected proxy replica acknowledged,
// and derives every route's Programmed state from it: Programmed=True when every ready replica (one
// that has applied at least one snapshot) acknowledged a version containing the route's current
// generation. A replica that has not applied anything yet is not serving, so it does not hold
// routes back (a restarting proxy does not flip every route to False). When a route's state
// changes, its key is sent on Events (drained by Run, on the leader only) so that the TenantRoute
// reconciler, the one writer of route status, writes it.
//
// Only the leader serves streams (Server, snapshotv1.NotLeaderMessage), so the leader's tracker,
// whose routes the leader's reconciler writes, sees every connected proxy.
type Tracker struct {
	mu      sync.Mutex
	eps     map[string]*epTrack
	nextID  uint64
	pending map[types.NamespacedName]struct{}
	poke    chan struct{}
	events  chan event.GenericEvent
	// pendingEPs are EdgeProxies whose connected replicas or their versions changed, sent on
	// epEvents (when someone subscribed with EdgeProxyEvents) for the EdgeProxy status writer.
	pendingEPs map[string]struct{}
	epEvents   chan event.GenericEvent
	// OnNack, when set, is told about every NACK (Events on the EdgeProxy, metrics).
	OnNack func(ep, pod, version, reason string)
	// leading is when Run started: when this replica took over as leader (unix nanoseconds).
	leading atomic.Int64
}

// settleWindow is how long after taking over the tracker's "no proxy replica connected" is not
// news: the proxies were streaming from the previous leader and are still redialling (a var for
// tests).
var settleWindow = 30 * time.Second

// Settling reports whether this replica took over less than settleWindow ago (or has not yet).
func (t *Tracker) Settling() bool {
	l := t.leading.Load()
	return l == 0 || time.Since(time.Unix(0, l)) < settleWindow
}

type epTrack struct {
	current  string
	versions map[string]map[types.NamespacedName]RouteRevision
	// published is when each version was first published (portico_operator_snapshot_push_seconds).
	published map[string]time.Time
	replicas  map[uint64]*replica
	states    map[types.NamespacedName]routeStatus
}

type routeStatus struct {
	rev RouteRevision
	RouteState
}

type replica struct {
	pod                    string
	acked, nacked, nackErr string
	since                  time.Time
	// inflight are the versions sent to the replica and not answered yet, oldest first: they
	// stay known until its ACK or NACK arrives, however many newer versions are published
	// meanwhile (a version forgotten before its ACK would read as "does not contain the route").
	inflight []string
}

// answered drops the in-flight versions up to version: a proxy answers in the order it was sent.
func (r *replica) answered(version string) {
	if i := slices.Index(r.inflight, version); i >= 0 {
		r.inflight = slices.Delete(r.inflight, 0, i+1)
	}
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{eps: map[string]*epTrack{}, pending: map[types.NamespacedName]struct{}{},
		pendingEPs: map[string]struct{}{},
		poke:       make(chan struct{}, 1), events: make(chan event.GenericEvent)}
}

// Events carries the routes whose Programmed state changed (for a source.Channel).
func (t *Tracker) Events() <-chan event.GenericEvent { return t.events }

// EdgeProxyEvents carries (as EdgeProxy objects with only a name) the EdgeProxies whose connected
// replicas or their versions changed, for a source.Channel of the EdgeProxy status writer. Events
// are sent by Run only once this was called (before Run), so nothing blocks without a reader.
func (t *Tracker) EdgeProxyEvents() <-chan event.GenericEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epEvents == nil {
		t.epEvents = make(chan event.GenericEvent)
	}
	return t.epEvents
}

// epChanged queues an EdgeProxy for EdgeProxyEvents and updates the connected-proxies gauge.
// Called with t.mu held.
func (t *Tracker) epChanged(name string, e *epTrack) {
	connectedProxies.WithLabelValues(name).Set(float64(len(e.replicas)))
	t.pendingEPs[name] = struct{}{}
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

// Run delivers changed routes on Events until ctx ends; it needs the leader (status writer).
func (t *Tracker) Run(ctx context.Context) error {
	t.leading.Store(time.Now().UnixNano())
	settled := time.NewTimer(settleWindow)
	defer settled.Stop()
	for {
		t.mu.Lock()
		batch := make([]types.NamespacedName, 0, len(t.pending))
		for k := range t.pending {
			batch = append(batch, k)
		}
		clear(t.pending)
		var eps []string
		epEvents := t.epEvents
		if epEvents != nil {
			for name := range t.pendingEPs {
				eps = append(eps, name)
			}
		}
		clear(t.pendingEPs)
		t.mu.Unlock()
		for _, name := range eps {
			obj := &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: name}}
			select {
			case epEvents <- event.GenericEvent{Object: obj}:
			case <-ctx.Done():
				return nil
			}
		}
		for _, k := range batch {
			obj := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
			select {
			case t.events <- event.GenericEvent{Object: obj}:
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-t.poke:
		case <-settled.C:
			// Routes kept Programmed while settling are decided now, whatever the EdgeProxy's
			// replicas do at this moment (one may have connected and not answered yet): a route
			// whose state did not change is not written again.
			t.mu.Lock()
			for _, e := range t.eps {
				for nn := range e.versions[e.current] {
					t.pending[nn] = struct{}{}
				}
			}
			t.mu.Unlock()
		case <-ctx.Done():
			return nil
		}
	}
}

// NeedLeaderElection: only the leader writes status.
func (t *Tracker) NeedLeaderElection() bool { return true }

func (t *Tracker) ep(name string) *epTrack {
	e := t.eps[name]
	if e == nil {
		e = &epTrack{versions: map[string]map[types.NamespacedName]RouteRevision{}, replicas: map[uint64]*replica{},
			states: map[types.NamespacedName]routeStatus{}, published: map[string]time.Time{}}
		t.eps[name] = e
	}
	return e
}

// Published records a new version of an EdgeProxy's snapshot.
func (t *Tracker) Published(s *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.ep(s.EdgeProxy)
	e.current = s.Version
	e.versions[s.Version] = s.Routes
	if _, ok := e.published[s.Version]; !ok {
		e.published[s.Version] = time.Now()
	}
	t.recompute(e)
}

// Connected registers a replica and returns its id.
func (t *Tracker) Connected(ep, pod string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	e := t.ep(ep)
	e.replicas[t.nextID] = &replica{pod: pod, since: time.Now()}
	t.epChanged(ep, e)
	return t.nextID
}

// Disconnected forgets a replica.
func (t *Tracker) Disconnected(ep string, id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.ep(ep)
	delete(e.replicas, id)
	t.epChanged(ep, e)
	t.recompute(e)
}

// Sent records that a full snapshot of version is on its way to a replica.
func (t *Tracker) Sent(ep string, id uint64, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.ep(ep).replicas[id]; r != nil && !slices.Contains(r.inflight, version) {
		if len(r.inflight) == maxInflight { // a replica that stopped answering: keep the newest
			r.inflight = slices.Delete(r.inflight, 0, 1)
		}
		r.inflight = append(r.inflight, version)
	}
}

// maxInflight bounds the versions remembered per replica while it has not answered them.
const maxInflight = 64

// Acked records that a replica serves version.
func (t *Tracker) Acked(ep string, id uint64, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.ep(ep)
	if r := e.replicas[id]; r != nil {
		r.answered(version)
		if r.acked != version {
			if at, ok := e.published[version]; ok {
				pushSeconds.WithLabelValues(ep).Observe(time.Since(at).Seconds())
			}
			t.epChanged(ep, e)
		}
		r.acked = version
		// Serving the refused version, or the latest one, the replica no longer refuses anything
		// the operator wants it to serve.
		if r.nacked != "" && (r.nacked == version || version == e.current) {
			r.nacked, r.nackErr = "", ""
			t.epChanged(ep, e)
		}
		t.recompute(e)
	}
}

// Nacked records that a replica refused version.
func (t *Tracker) Nacked(ep string, id uint64, version, reason string) {
	t.mu.Lock()
	e := t.ep(ep)
	r := e.replicas[id]
	if r != nil {
		r.answered(version)
		if r.nacked != version {
			t.epChanged(ep, e)
		}
		r.nacked, r.nackErr = version, reason
		t.recompute(e)
	}
	t.mu.Unlock()
	if r != nil && t.OnNack != nil {
		t.OnNack(ep, r.pod, version, reason)
	}
}

// Replicas lists the replicas connected for an EdgeProxy, by pod name.
func (t *Tracker) Replicas(ep string) []ReplicaStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ReplicaStatus
	for _, r := range t.ep(ep).replicas {
		out = append(out, ReplicaStatus{Pod: r.pod, AckedVersion: r.acked, NackedVersion: r.nacked, NackError: r.nackErr,
			ConnectedSince: r.since})
	}
	slices.SortFunc(out, func(a, b ReplicaStatus) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), a.ConnectedSince.Compare(b.ConnectedSince))
	})
	return out
}

// RouteState is the Programmed state of a route generation of an EdgeProxy.
func (t *Tracker) RouteState(ep string, route types.NamespacedName, rev RouteRevision) RouteState {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.ep(ep)
	if st, ok := e.states[route]; ok && st.rev == rev {
		return st.RouteState
	}
	return t.compute(e, sortedIDs(e.replicas), route, rev, RouteState{})
}

const (
	msgProgrammed = "live on every connected proxy replica"
	msgNoReplica  = "no proxy replica of the EdgeProxy is connected to this operator"
	msgWaiting    = "waiting for the EdgeProxy's proxy replicas to apply it"
)

// compute is the state of one route generation; ids are e's replicas, sorted (messages name the
// first refusing replica).
func (t *Tracker) compute(e *epTrack, ids []uint64, route types.NamespacedName, rev RouteRevision, prev RouteState) RouteState {
	contains := func(version string) bool {
		r, ok := e.versions[version][route]
		return ok && r == rev
	}
	ready, live := 0, 0
	var firstVersion string
	for _, id := range ids {
		r := e.replicas[id]
		if r.nacked != "" && contains(r.nacked) && !contains(r.acked) {
			return RouteState{Status: metav1.ConditionFalse, Reason: edgev1alpha1.RouteReasonRejected,
				Message: fmt.Sprintf("proxy %s refused snapshot %s: %s", r.pod, r.nacked, r.nackErr)}
		}
		if r.acked == "" {
			continue
		}
		ready++
		if contains(r.acked) {
			live++
			if firstVersion == "" {
				firstVersion = r.acked
			}
		}
	}
	switch {
	case ready == 0:
		return RouteState{Status: metav1.ConditionFalse, Reason: edgev1alpha1.RouteReasonPending, Message: msgNoReplica, NoReplica: true}
	case live < ready:
		return RouteState{Status: metav1.ConditionFalse, Reason: edgev1alpha1.RouteReasonPending, Message: msgWaiting}
	}
	if prev.Status == metav1.ConditionTrue && prev.Version != "" {
		firstVersion = prev.Version // the version that first made it live stays
	}
	return RouteState{Status: metav1.ConditionTrue, Reason: edgev1alpha1.RouteReasonProgrammed, Message: msgProgrammed, Version: firstVersion}
}

// recompute refreshes the states of the current version's routes and queues the changed ones.
func (t *Tracker) recompute(e *epTrack) {
	routes := e.versions[e.current]
	ids := sortedIDs(e.replicas)
	for nn, rev := range routes {
		prev, had := e.states[nn]
		if had && prev.rev != rev {
			prev = routeStatus{}
		}
		st := t.compute(e, ids, nn, rev, prev.RouteState)
		if !had || st != prev.RouteState || prev.rev != rev {
			e.states[nn] = routeStatus{rev: rev, RouteState: st}
			t.pending[nn] = struct{}{}
		}
	}
	for nn := range e.states {
		if _, ok := routes[nn]; !ok {
			delete(e.states, nn)
		}
	}
	// Keep only the versions someone still refers to (or will: sent, not answered yet).
	for v := range e.versions {
		used := v == e.current
		for _, r := range e.replicas {
			used = used || r.acked == v || r.nacked == v || slices.Contains(r.inflight, v)
		}
		if !used {
			delete(e.versions, v)
			delete(e.published, v)
		}
	}
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

func sortedIDs(m map[uint64]*replica) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
