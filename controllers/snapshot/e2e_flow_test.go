package snapshot_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/runner"
)

// TestConfigDelivery is the "done when", against a real apiserver with real TokenReview.
func TestConfigDelivery(t *testing.T) {
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.proxies = []runner.Started{e.startProxy(ctx, "proxy-1"), e.startProxy(ctx, "proxy-2")}
	bg := context.Background()

	// Not ready before the first snapshot is live; ready after (an EdgeProxy with no routes
	// still gets an empty snapshot).
	for i, p := range e.proxies {
		eventually(t, fmt.Sprintf("proxy %d ready", i), 30*time.Second, func() error {
			if !p.Server.Ready() {
				return fmt.Errorf("not ready")
			}
			return nil
		})
	}

	t.Run("route applied is served by both and Programmed", func(t *testing.T) {
		must(t, e.c.Create(bg, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}))
		must(t, e.c.Create(bg, slice("198.51.100.1")))
		must(t, e.c.Create(bg, hello("hello", redirectRule(), backendRule())))
		version := e.waitProgrammed("hello", 30*time.Second)
		for i, p := range e.proxies {
			code, err := get(p, "hello.example.com", "/redirect")
			if err != nil || code != http.StatusFound {
				t.Fatalf("proxy %d: GET hello.example.com/redirect = %d, %v; want 302", i, code, err)
			}
			if v := p.Snapshots.Version(); v != version {
				t.Errorf("proxy %d serves %s, route programmed at %s", i, v, version)
			}
		}
		e.waitEndpoints("198.51.100.1:8080")
	})

	t.Run("endpoints added and removed reach both without a table rebuild", func(t *testing.T) {
		type mark struct {
			table  *routing.Table
			builds int64
			deltas int64
		}
		before := make([]mark, len(e.proxies))
		for i, p := range e.proxies {
			before[i] = mark{p.Dataplane.Proxy.Table(), p.Snapshots.Stats().TableBuilds, p.Snapshots.Stats().Deltas}
		}
		s := slice("198.51.100.1", "198.51.100.2")
		s.ResourceVersion = ""
		cur := &discoveryv1.EndpointSlice{}
		must(t, e.c.Get(bg, client.ObjectKeyFromObject(s), cur))
		cur.Endpoints = s.Endpoints
		must(t, e.c.Update(bg, cur))
		e.waitEndpoints("198.51.100.1:8080", "198.51.100.2:8080")
		cur.Endpoints = cur.Endpoints[1:]
		must(t, e.c.Update(bg, cur))
		e.waitEndpoints("198.51.100.2:8080")
		for i, p := range e.proxies {
			st := p.Snapshots.Stats()
			if p.Dataplane.Proxy.Table() != before[i].table || st.TableBuilds != before[i].builds {
				t.Errorf("proxy %d rebuilt its table for an endpoint change (builds %d → %d)", i, before[i].builds, st.TableBuilds)
			}
			if st.Deltas < before[i].deltas+2 {
				t.Errorf("proxy %d got %d deltas, want ≥ 2", i, st.Deltas-before[i].deltas)
			}
		}
	})

	t.Run("wrong or foreign token refused", func(t *testing.T) {
		sa := render.ObjectName(&edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: epName}})
		must(t, e.c.Create(bg, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: proxyNS, Name: "intruder"}}))
		cases := []struct {
			name, token string
			want        codes.Code
		}{
			{"garbage", "not-a-token", codes.Unauthenticated},
			{"wrong audience", e.token(proxyNS, sa, "kubernetes"), codes.Unauthenticated},
			{"foreign ServiceAccount", e.token(proxyNS, "intruder", render.TokenAudience), codes.PermissionDenied},
			{"no token", "", codes.Unauthenticated},
		}
		for _, c := range cases {
			err := grpcCall(e.bind, e.ca, c.token)
			if status.Code(err) != c.want {
				t.Errorf("%s: %v, want %s", c.name, err, c.want)
			}
		}
	})

	t.Run("bad snapshot is NACKed and surfaced; the previous table keeps serving", func(t *testing.T) {
		must(t, e.c.Create(bg, hello(poisonTag, redirectRule())))
		eventually(t, "poison RejectedByProxy", 30*time.Second, func() error {
			c, _, err := e.programmed(poisonTag)
			if err != nil {
				return err
			}
			if c.Reason != string(edgev1alpha1.RouteReasonRejected) {
				return fmt.Errorf("Programmed %s/%s", c.Status, c.Reason)
			}
			return nil
		})
		eventually(t, "Warning Event RejectedByProxy on the EdgeProxy", 20*time.Second, func() error {
			var evs eventsv1.EventList
			if err := e.c.List(bg, &evs); err != nil {
				return err
			}
			for _, ev := range evs.Items {
				if ev.Regarding.Kind == "EdgeProxy" && ev.Reason == string(edgev1alpha1.RouteReasonRejected) {
					return nil
				}
			}
			return fmt.Errorf("no event among %d", len(evs.Items))
		})
		for i, p := range e.proxies {
			if code, _ := get(p, "hello.example.com", "/redirect"); code != http.StatusFound {
				t.Errorf("proxy %d: hello no longer served (%d)", i, code)
			}
			if code, _ := get(p, poisonTag+".example.com", "/redirect"); code != http.StatusNotFound {
				t.Errorf("proxy %d: refused route served (%d)", i, code)
			}
			if p.Snapshots.Stats().Nacks == 0 {
				t.Errorf("proxy %d sent no NACK", i)
			}
		}
		eventually(t, "EdgeProxy SnapshotRejected=True names the proxies, the version and why", 20*time.Second, func() error {
			c, err := e.edgeProxyCondition(controllers.EdgeProxyConditionSnapshotRejected)
			if err != nil {
				return err
			}
			if c.Status != metav1.ConditionTrue || c.Reason != string(controllers.EdgeProxyReasonRejectedByProxy) ||
				!strings.Contains(c.Message, "proxy proxy-1 refused snapshot v1-") || !strings.Contains(c.Message, "proxy proxy-2") ||
				!strings.Contains(c.Message, "is poison") {
				return fmt.Errorf("SnapshotRejected %s/%s: %s", c.Status, c.Reason, c.Message)
			}
			return nil
		})
		must(t, e.c.Delete(bg, hello(poisonTag)))
		eventually(t, "EdgeProxy SnapshotRejected=False once the proxies serve the latest version", 20*time.Second, func() error {
			c, err := e.edgeProxyCondition(controllers.EdgeProxyConditionSnapshotRejected)
			if err != nil {
				return err
			}
			if c.Status != metav1.ConditionFalse {
				return fmt.Errorf("SnapshotRejected %s/%s: %s", c.Status, c.Reason, c.Message)
			}
			return nil
		})
	})

	t.Run("operator stopped: proxies keep serving; restarted: they resync", func(t *testing.T) {
		e.waitProgrammed("hello", 30*time.Second)
		connects := []int64{e.proxies[0].Snapshots.Stats().Connects, e.proxies[1].Snapshots.Stats().Connects}
		e.stopOperator()
		must(t, e.c.Create(bg, hello("late", redirectRule())))
		for range 5 {
			for i, p := range e.proxies {
				if code, err := get(p, "hello.example.com", "/redirect"); code != http.StatusFound {
					t.Fatalf("proxy %d with the operator gone: %d, %v", i, code, err)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		e.startOperator() // same address: the proxies reconnect with backoff
		// Programmed counts the replicas connected to this operator: right after a restart that
		// may be one of the two, so each proxy is checked on its own.
		e.waitProgrammed("late", 60*time.Second)
		for i, p := range e.proxies {
			eventually(t, fmt.Sprintf("proxy %d reconnected and serving late", i), 30*time.Second, func() error {
				if p.Snapshots.Stats().Connects <= connects[i] {
					return fmt.Errorf("not reconnected")
				}
				if code, err := get(p, "late.example.com", "/redirect"); code != http.StatusFound {
					return fmt.Errorf("late = %d, %v", code, err)
				}
				return nil
			})
		}
		e.waitProgrammed("late", 10*time.Second)
	})
	e.stopOperator()
}
