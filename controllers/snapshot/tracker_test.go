package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func TestTrackerReplicasEventsAndMetrics(t *testing.T) {
	tr := NewTracker()
	epEvents := tr.EdgeProxyEvents()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = tr.Run(ctx) }()
	go func() { // route events are not under test here
		for range tr.Events() {
		}
	}()
	next := func(what string) {
		t.Helper()
		select {
		case e := <-epEvents:
			if e.Object.GetName() != "ep-metrics" {
				t.Fatalf("%s: event for %q", what, e.Object.GetName())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no EdgeProxy event", what)
		}
	}
	key := types.NamespacedName{Namespace: "shop", Name: "a"}
	pushes := func() int { return testutil.CollectAndCount(pushSeconds, "portico_operator_snapshot_push_seconds") }
	before := pushes()

	r2 := tr.Connected("ep-metrics", "pod-b")
	next("connect")
	r1 := tr.Connected("ep-metrics", "pod-a")
	next("second connect")
	if got := testutil.ToFloat64(connectedProxies.WithLabelValues("ep-metrics")); got != 2 {
		t.Fatalf("connected gauge = %v, want 2", got)
	}
	tr.Published(&Snapshot{EdgeProxy: "ep-metrics", Version: "v1", Routes: map[types.NamespacedName]RouteRevision{key: rev(1)}})
	tr.Acked("ep-metrics", r1, "v1")
	next("ack")
	if pushes() == before {
		t.Fatal("no portico_operator_snapshot_push_seconds series after an ACK")
	}
	tr.Nacked("ep-metrics", r2, "v1", "bad")
	next("nack")

	rs := tr.Replicas("ep-metrics")
	if len(rs) != 2 || rs[0].Pod != "pod-a" || rs[0].AckedVersion != "v1" || rs[1].NackedVersion != "v1" || rs[0].ConnectedSince.IsZero() {
		t.Fatalf("replicas = %+v", rs)
	}
	tr.Disconnected("ep-metrics", r1)
	next("disconnect")
	if got := testutil.ToFloat64(connectedProxies.WithLabelValues("ep-metrics")); got != 1 {
		t.Fatalf("connected gauge = %v, want 1", got)
	}
}

// A version sent to a replica stays known until its answer, however many versions are published
// meanwhile: its ACK must not read as "the route is not in it" (Programmed flapping to False and
// programmedVersion moving on every burst).
func TestTrackerKeepsVersionsInFlight(t *testing.T) {
	tr := NewTracker()
	a := types.NamespacedName{Namespace: "shop", Name: "a"}
	b := types.NamespacedName{Namespace: "shop", Name: "b"}
	publish := func(v string, routes ...types.NamespacedName) {
		m := map[types.NamespacedName]RouteRevision{}
		for _, r := range routes {
			m[r] = rev(1)
		}
		tr.Published(&Snapshot{EdgeProxy: "acme", Version: v, Routes: m})
	}
	publish("v0", a)
	r := tr.Connected("acme", "p1")
	tr.Sent("acme", r, "v0")
	tr.Acked("acme", r, "v0")
	if st := tr.RouteState("acme", a, rev(1)); st.Status != metav1.ConditionTrue || st.Version != "v0" {
		t.Fatalf("a after v0: %+v", st)
	}
	publish("v1", a, b)
	tr.Sent("acme", r, "v1")
	publish("v2", a, b)
	publish("v3", a, b)
	tr.Sent("acme", r, "v3")
	tr.Acked("acme", r, "v1")
	if st := tr.RouteState("acme", a, rev(1)); st.Status != metav1.ConditionTrue || st.Version != "v0" {
		t.Fatalf("a after an ACK of v1, published before v2 and v3: %+v", st)
	}
	if st := tr.RouteState("acme", b, rev(1)); st.Status != metav1.ConditionTrue || st.Version != "v1" {
		t.Fatalf("b after an ACK of v1: %+v", st)
	}
	tr.Acked("acme", r, "v3")
	if st := tr.RouteState("acme", b, rev(1)); st.Status != metav1.ConditionTrue || st.Version != "v1" {
		t.Fatalf("b after v3: %+v", st)
	}
	tr.mu.Lock()
	n := len(tr.eps["acme"].versions)
	tr.mu.Unlock()
	if n != 1 {
		t.Errorf("%d versions kept once every one sent was answered, want 1 (v3)", n)
	}
}

// rev is generation g of the test's route object.
func rev(g int64) RouteRevision { return RouteRevision{UID: "route-uid", Generation: g} }

// A route deleted and created again under the same name starts at generation 1 again: the
// versions the proxies acknowledged hold the old object, so the new one is not Programmed until a
// version with it is acknowledged.
func TestTrackerTellsRecreatedRoutesApart(t *testing.T) {
	tr := NewTracker()
	a := types.NamespacedName{Namespace: "shop", Name: "a"}
	old, recreated := RouteRevision{UID: "old", Generation: 1}, RouteRevision{UID: "new", Generation: 1}
	r := tr.Connected("acme", "p1")
	tr.Published(&Snapshot{EdgeProxy: "acme", Version: "v1", Routes: map[types.NamespacedName]RouteRevision{a: old}})
	tr.Sent("acme", r, "v1")
	tr.Acked("acme", r, "v1")
	if st := tr.RouteState("acme", a, old); st.Status != metav1.ConditionTrue {
		t.Fatalf("old route after its ACK: %+v", st)
	}
	if st := tr.RouteState("acme", a, recreated); st.Status != metav1.ConditionFalse || st.Reason != edgev1alpha1.RouteReasonPending {
		t.Fatalf("re-created route before any version holds it: %+v, want Pending", st)
	}
	tr.Published(&Snapshot{EdgeProxy: "acme", Version: "v2", Routes: map[types.NamespacedName]RouteRevision{a: recreated}})
	tr.Sent("acme", r, "v2")
	tr.Acked("acme", r, "v2")
	if st := tr.RouteState("acme", a, recreated); st.Status != metav1.ConditionTrue || st.Version != "v2" {
		t.Fatalf("re-created route after v2's ACK: %+v", st)
	}
}

// A new leader settles: Settling until the window ends, then the routes of EdgeProxies that still
// have no proxy connected are sent on Events again, so that they go Pending.
func TestTrackerSettlesAfterTakingOver(t *testing.T) {
	defer func(w time.Duration) { settleWindow = w }(settleWindow)
	settleWindow = 300 * time.Millisecond
	tr := NewTracker()
	a := types.NamespacedName{Namespace: "shop", Name: "a"}
	tr.Published(&Snapshot{EdgeProxy: "acme", Version: "v1", Routes: map[types.NamespacedName]RouteRevision{a: rev(1)}})
	if !tr.Settling() {
		t.Fatal("not settling before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = tr.Run(ctx) }()
	start := time.Now()
	var last time.Time
	for deadline := time.After(5 * time.Second); last.IsZero() || time.Since(start) < settleWindow; {
		select {
		case e := <-tr.Events():
			if e.Object.GetName() == "a" {
				last = time.Now()
			}
		case <-deadline:
			t.Fatalf("no event for the route after the settle window (last %v)", last)
		}
	}
	if last.Sub(start) < settleWindow {
		t.Fatalf("last event %v after Run, before the settle window", last.Sub(start))
	}
	if tr.Settling() {
		t.Error("still settling after the window")
	}
}
