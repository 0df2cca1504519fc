package snapshot_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// Only the elected operator replica serves snapshot streams (it is the one that writes status, so
// Programmed counts every proxy's ACK). A proxy that reaches a replica not (yet) elected is refused
// with NotLeaderMessage, dials again without the failure backoff, serves nothing new meanwhile, and
// is served as soon as that replica leads.
func TestOnlyTheLeaderServesSnapshots(t *testing.T) {
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	must(t, e.c.Create(ctx, hello("follower", redirectRule())))

	// A second replica of the same operator (same CA, hub and tracker), not elected yet.
	elected := make(chan struct{})
	follower := snapshot.NewServer(snapshot.ServerOptions{
		BindAddress: "127.0.0.1:0",
		CASecret:    types.NamespacedName{Namespace: "portico-system", Name: snapshot.CASecretName},
		IPs:         []net.IP{net.IPv4(127, 0, 0, 1)},
		Reader:      e.c, Writer: e.c,
		Auth: &snapshot.Authenticator{Client: e.c, Audience: render.TokenAudience},
		Hub:  e.delivery.Hub, Tracker: e.delivery.Tracker,
		Log: logr.Discard(), Elected: elected,
	})
	go func() {
		if err := follower.Start(ctx); err != nil {
			t.Errorf("follower server: %v", err)
		}
	}()
	addr, err := follower.Addr(ctx)
	must(t, err)
	e.bind = addr
	p := e.startProxy(ctx, "proxy-of-follower")

	eventually(t, "the follower refuses the proxy three times", 30*time.Second, func() error {
		if n := p.Snapshots.Stats().NotLeader; n < 3 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	if v := p.Snapshots.Version(); v != "" {
		t.Fatalf("a replica that is not the leader delivered snapshot %s", v)
	}
	if code, err := get(p, "follower.example.com", "/redirect"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("before any snapshot: %d %v, want 503 (no table yet)", code, err)
	}

	close(elected)
	eventually(t, "served once the replica leads", 30*time.Second, func() error {
		if code, err := get(p, "follower.example.com", "/redirect"); err != nil || code != http.StatusFound {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	e.waitProgrammed("follower", 30*time.Second) // the tracker counts the proxy's ACK
	t.Logf("proxy refused %d times before the replica led; snapshot %s", p.Snapshots.Stats().NotLeader, p.Snapshots.Version())
}
