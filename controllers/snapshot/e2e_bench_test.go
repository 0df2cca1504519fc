package snapshot_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/runner"
)

// TestProgrammedLatency measures TenantRoute create → Programmed=True (both proxies ACKed) for
// bursts of 1, 100 and 1,000 routes created back to back, against the real apiserver, and reports
// p50/p99/max. Latency runs from each route's create call returning to the first List that shows
// it Programmed (lists every 50 ms, so figures carry up to 50 ms of polling). Opt in:
// PORTICO_BENCH_PROGRAMMED=1 (it takes a minute or two on a loaded 2-core machine).
func TestProgrammedLatency(t *testing.T) {
	if os.Getenv("PORTICO_BENCH_PROGRAMMED") == "" {
		t.Skip("set PORTICO_BENCH_PROGRAMMED=1 to run the create → Programmed benchmark")
	}
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.proxies = []runner.Started{e.startProxy(ctx, "proxy-1"), e.startProxy(ctx, "proxy-2")}
	for _, n := range []int{1, 100, 1000} {
		created := map[string]time.Time{}
		for i := range n {
			name := fmt.Sprintf("b%d-%d", n, i)
			must(t, e.c.Create(ctx, hello(name, redirectRule())))
			created[name] = time.Now()
		}
		var lat, acc []time.Duration
		done, accepted := map[string]bool{}, map[string]bool{}
		deadline := time.Now().Add(5 * time.Minute)
		for len(done) < n && time.Now().Before(deadline) {
			var list edgev1alpha1.TenantRouteList
			must(t, e.c.List(ctx, &list, client.InNamespace(tenantNS)))
			now := time.Now()
			for _, tr := range list.Items {
				at, ours := created[tr.Name]
				if !ours || done[tr.Name] {
					continue
				}
				for _, c := range tr.Status.Conditions {
					if c.Type == string(edgev1alpha1.RouteConditionAccepted) && c.Status == metav1.ConditionTrue && !accepted[tr.Name] {
						accepted[tr.Name] = true
						acc = append(acc, now.Sub(at))
					}
					if c.Type == string(edgev1alpha1.RouteConditionProgrammed) && c.Status == metav1.ConditionTrue && c.ObservedGeneration == tr.Generation {
						done[tr.Name] = true
						lat = append(lat, now.Sub(at))
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(done) < n {
			t.Fatalf("%d routes: only %d Programmed within 5 minutes", n, len(done))
		}
		slices.Sort(lat)
		slices.Sort(acc)
		pct := func(l []time.Duration, p float64) time.Duration {
			return l[min(len(l)-1, int(float64(len(l))*p))].Round(time.Millisecond)
		}
		// Accepted is admission alone (TenantRoute reconciler); Programmed adds the snapshot build,
		// delivery, both proxies' ACKs and the second status write.
		t.Logf("routes=%d create→Accepted p50=%v p99=%v; create→Programmed p50=%v p99=%v max=%v", n,
			pct(acc, 0.50), pct(acc, 0.99), pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1))
		must(t, e.c.DeleteAllOf(ctx, &edgev1alpha1.TenantRoute{}, client.InNamespace(tenantNS)))
		eventually(t, "routes deleted", 2*time.Minute, func() error {
			var list edgev1alpha1.TenantRouteList
			if err := e.c.List(ctx, &list, client.InNamespace(tenantNS)); err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("%d left", len(list.Items))
			}
			return nil
		})
	}
	e.stopOperator()
}
