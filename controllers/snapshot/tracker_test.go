package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
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
	tr.Published(&Snapshot{EdgeProxy: "ep-metrics", Version: "v1", Routes: map[types.NamespacedName]int64{key: 1}})
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
