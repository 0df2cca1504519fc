// Package dataplanetest starts a complete data plane (proxy, listeners, admin port) on 127.0.0.1
// for tests, with echo backends, routes written as TenantRoute YAML and in-test certificates.
package dataplanetest

import (
	"context"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Options tune a harness; zero values are fine.
type Options struct {
	Proxy  proxy.Options
	Server server.Config
	// StrictEgress keeps the egress guard's loopback ban (the harness allows loopback otherwise,
	// since every test backend lives there).
	StrictEgress bool
}

// Harness is a running data plane.
type Harness struct {
	Proxy     *proxy.Proxy
	TLS       *tlsstore.Store
	Endpoints *upstream.Store
	Dataplane *server.Dataplane
	Server    *server.Server
	// HTTP, HTTPS and Admin are "127.0.0.1:port".
	HTTP, HTTPS, Admin string

	cancel context.CancelFunc
	done   chan error
}

// Logger is the test logger: quiet unless PORTICO_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PORTICO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Start runs a data plane until the test ends.
func Start(t testing.TB, o Options) *Harness {
	t.Helper()
	h := &Harness{Endpoints: upstream.NewStore(), TLS: tlsstore.New()}
	o.Proxy.Endpoints = h.Endpoints
	if o.Proxy.Transports == nil {
		d := upstream.NewDialer(upstream.Guard{AllowLoopback: !o.StrictEgress}, 2*time.Second)
		o.Proxy.Transports = upstream.NewTransports(d, upstream.TransportOptions{})
	}
	if o.Proxy.Logger == nil {
		o.Proxy.Logger = Logger()
	}
	h.Proxy = proxy.New(o.Proxy)
	h.Dataplane = &server.Dataplane{Proxy: h.Proxy, TLS: h.TLS, Endpoints: h.Endpoints}

	cfg := o.Server
	for _, a := range []*string{&cfg.HTTPAddr, &cfg.HTTPSAddr, &cfg.AdminAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Millisecond
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	h.Server = server.New(cfg, h.Proxy, h.TLS)
	if err := h.Server.Listen(); err != nil {
		t.Fatal(err)
	}
	h.HTTP, h.HTTPS, h.Admin = h.Server.HTTPAddr(), h.Server.HTTPSAddr(), h.Server.AdminAddr()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.Server.Serve(ctx) }()
	t.Cleanup(func() {
		if err := h.Stop(30 * time.Second); err != nil {
			t.Errorf("server: %v", err)
		}
		o.Proxy.Transports.CloseIdleConnections()
	})
	return h
}

// Stop begins the graceful shutdown and waits for it, at most timeout.
func (h *Harness) Stop(timeout time.Duration) error {
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok {
			close(h.done)
		}
		return err
	case <-time.After(timeout):
		return context.DeadlineExceeded
	}
}

// Begin starts the graceful shutdown without waiting; Wait waits for it.
func (h *Harness) Begin() { h.cancel() }

// Wait waits for a shutdown started with Begin.
func (h *Harness) Wait(timeout time.Duration) error { return h.Stop(timeout) }

// Routes parses TenantRoute YAML documents (one per argument).
func Routes(t testing.TB, docs ...string) []edgev1alpha1.TenantRoute {
	t.Helper()
	out := make([]edgev1alpha1.TenantRoute, 0, len(docs))
	for _, d := range docs {
		var tr edgev1alpha1.TenantRoute
		if err := yaml.UnmarshalStrict([]byte(d), &tr); err != nil {
			t.Fatalf("route YAML: %v\n%s", err, d)
		}
		if tr.Namespace == "" {
			tr.Namespace = "team"
		}
		if tr.Spec.EdgeProxy == "" {
			tr.Spec.EdgeProxy = "edge"
		}
		out = append(out, tr)
	}
	return out
}

// Build compiles routes into a table and fails the test on any route error.
func Build(t testing.TB, version string, routes []edgev1alpha1.TenantRoute) *routing.Table {
	t.Helper()
	table, errs := routing.Build(routing.Snapshot{Version: version, Routes: routes})
	for _, e := range errs {
		t.Fatalf("route %s/%s: %v", e.Namespace, e.Name, e.Errors.ToAggregate())
	}
	return table
}

// Apply builds the routes and makes them live, with keypairs and settings.
func (h *Harness) Apply(t testing.TB, routes []edgev1alpha1.TenantRoute, kp tlsstore.Keypairs, s proxy.Settings) *routing.Table {
	t.Helper()
	table := Build(t, "test", routes)
	h.Dataplane.SetRoutes(table, kp, s)
	return table
}

// Key is the BackendKey of Service name, port 80, in namespace "team".
func Key(name string) routing.BackendKey {
	return routing.BackendKey{Namespace: "team", Name: name, Port: 80}
}

// EndpointOf turns a backend URL ("http://127.0.0.1:1234") into an endpoint.
func EndpointOf(t testing.TB, rawURL string) upstream.Endpoint {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	return upstream.Endpoint{Addr: ap}
}
