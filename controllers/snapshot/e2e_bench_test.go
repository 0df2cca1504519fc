package snapshot_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/runner"
)

// TestProgrammedLatency measures TenantRoute create → Accepted and → Programmed=True (both proxies
// ACKed) for bursts of 1, 100 and 1,000 routes created back to back, against the real apiserver,
// and prints p50/p99/max. Latency runs from each route's create call returning to the watch event
// that first shows the condition (a watch, not polling: listing 1,000 routes every few ms would
// load the apiserver more than the operator does). Opt in: PORTICO_BENCH_PROGRAMMED=1;
// PORTICO_BENCH_SIZES=1,100 picks other burst sizes; run with -v to see the figures.
func TestProgrammedLatency(t *testing.T) {
	if os.Getenv("PORTICO_BENCH_PROGRAMMED") == "" {
		t.Skip("set PORTICO_BENCH_PROGRAMMED=1 to run the create → Programmed benchmark")
	}
	sizes := []int{1, 100, 1000}
	if v := os.Getenv("PORTICO_BENCH_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("PORTICO_BENCH_SIZES: %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.proxies = []runner.Started{e.startProxy(ctx, "proxy-1"), e.startProxy(ctx, "proxy-2")}
	wc, err := client.NewWithWatch(e.cfg, client.Options{Scheme: e.c.Scheme()})
	must(t, err)
	for iter, n := range sizes {
		// Each burst starts from a settled operator (no build of the previous burst's deletions
		// or of the proxies' start still batching), as a change in a quiet cluster does.
		time.Sleep(500 * time.Millisecond)
		var list edgev1alpha1.TenantRouteList
		must(t, e.c.List(ctx, &list, client.InNamespace(tenantNS)))
		w, err := wc.Watch(ctx, &edgev1alpha1.TenantRouteList{}, client.InNamespace(tenantNS),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		must(t, err)
		var mu sync.Mutex
		created := map[string]time.Time{}
		seenAcc, seenProg := map[string]time.Time{}, map[string]time.Time{}
		allDone := make(chan struct{})
		go func() {
			for ev := range w.ResultChan() {
				tr, ok := ev.Object.(*edgev1alpha1.TenantRoute)
				if !ok {
					continue
				}
				now := time.Now()
				mu.Lock()
				for _, c := range tr.Status.Conditions {
					if c.Status != metav1.ConditionTrue || c.ObservedGeneration != tr.Generation {
						continue
					}
					if _, ok := seenAcc[tr.Name]; !ok && c.Type == string(edgev1alpha1.RouteConditionAccepted) {
						seenAcc[tr.Name] = now
					}
					if _, ok := seenProg[tr.Name]; !ok && c.Type == string(edgev1alpha1.RouteConditionProgrammed) {
						seenProg[tr.Name] = now
					}
				}
				if len(seenProg) == n {
					close(allDone)
					mu.Unlock()
					return
				}
				mu.Unlock()
			}
		}()
		start := time.Now()
		for i := range n {
			// Names never repeat: the tracker knows routes by name and generation, so a route
			// re-created under the name of one that was live reads as live at once.
			name := fmt.Sprintf("b%d-%d-%d", n, iter, i)
			must(t, e.c.Create(ctx, hello(name, redirectRule())))
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
		}
		creating := time.Since(start)
		select {
		case <-allDone:
		case <-time.After(5 * time.Minute):
			mu.Lock()
			got := len(seenProg)
			mu.Unlock()
			t.Fatalf("%d routes: only %d Programmed within 5 minutes", n, got)
		}
		w.Stop()
		mu.Lock()
		var lat, acc []time.Duration
		for name, at := range created {
			// A watch event can be seen before the create call returns: count that as 0.
			acc = append(acc, max(0, seenAcc[name].Sub(at)))
			lat = append(lat, max(0, seenProg[name].Sub(at)))
		}
		mu.Unlock()
		slices.Sort(lat)
		slices.Sort(acc)
		pct := func(l []time.Duration, p float64) time.Duration {
			return l[min(len(l)-1, int(float64(len(l))*p))].Round(time.Millisecond)
		}
		// Accepted is admission alone (TenantRoute reconciler); Programmed adds the snapshot build,
		// delivery, both proxies' ACKs and the second status write.
		t.Logf("BENCH routes=%d create→Accepted p50=%v p99=%v; create→Programmed p50=%v p90=%v p99=%v max=%v (creating them took %v)", n,
			pct(acc, 0.50), pct(acc, 0.99), pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 1), creating.Round(time.Millisecond))
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
