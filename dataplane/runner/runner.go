// Package runner assembles a complete proxy process (egress-guarded transports, endpoint store,
// certificate store, proxy handler, listeners, configuration source) and runs it until its
// context ends. cmd/portico only parses flags into a Config.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/snapshotclient"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Config of a proxy process.
type Config struct {
	// Files is the directory of the standalone mode. It is required until the operator's snapshot
	// stream is available.
	Files string
	// FilesHooks translate Ingresses and admit routes in files mode as the operator does
	// (cmd/portico injects internal/filesmode; dataplane may not import controllers).
	FilesHooks files.Hooks
	// HTTPAddr, HTTPSAddr, AdminAddr: listener addresses.
	HTTPAddr, HTTPSAddr, AdminAddr string
	ShutdownGrace, DrainTimeout    time.Duration
	// TrustedHops in front of the proxy; an EdgeProxy in the files directory may override it.
	TrustedHops int
	// UnsafeAllowLoopbackBackends lets cluster mode reach 127.0.0.0/8 and ::1 backends (local
	// platforms only). Files mode always allows them: that is where local backends live.
	UnsafeAllowLoopbackBackends bool
	// H2C serves prior-knowledge cleartext HTTP/2 on the HTTP listener.
	H2C bool
	// DisableLeanHTTP1 serves HTTP/1.1 with net/http's server only, without the lean loop
	// (server.Config.DisableLeanHTTP1). The environment variable PORTICO_LEAN_HTTP1=off does the
	// same, for a process whose flags cannot change.
	DisableLeanHTTP1 bool
	// Tenant is the EdgeProxy's name for metrics, access logs and traces when the files directory
	// holds no EdgeProxy (whose name wins).
	Tenant string

	// AccessLog switches the access log on; AccessLogFormat is "json" (default) or "text";
	// AccessLogFile is where lines go ("" or "-": stdout). An EdgeProxy in the files directory
	// may switch the log and its format (spec.observability.accessLog).
	AccessLog                      bool
	AccessLogFormat, AccessLogFile string
	// AccessLogWriter, when set, replaces AccessLogFile (tests).
	AccessLogWriter io.Writer
	// TracingEndpoint is the OTLP/HTTP collector ("host:port" or a URL; empty: no tracing) and
	// TracingSamplingPercent the share of new traces sampled. spec.observability.tracing of an
	// EdgeProxy in the files directory replaces both.
	TracingEndpoint        string
	TracingSamplingPercent float64
	// TracingBatchTimeout is how long spans wait to be exported together; 5 s when zero.
	TracingBatchTimeout time.Duration
	// Registry serves /metrics; a fresh one with Go and process collectors when nil (tests pass
	// their own).
	Registry *prometheus.Registry

	Logger *slog.Logger

	// Operator is cluster mode: the operator's snapshot stream (used when Files is empty).
	Operator snapshotclient.Options
	// Started, when set, is handed the running pieces once the listeners are bound (tests).
	Started func(Started)
}

// Started are the pieces of a running proxy (tests look inside).
type Started struct {
	Server    *server.Server
	Dataplane *server.Dataplane
	// Snapshots is the operator stream client (nil in files mode).
	Snapshots *snapshotclient.Client
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, c Config) error {
	if c.Files == "" && c.Operator.Address == "" {
		return errors.New("--files or --operator-address is required")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	filesMode := c.Files != ""
	guard := upstream.Guard{AllowLoopback: filesMode || c.UnsafeAllowLoopbackBackends}
	for _, a := range []string{c.HTTPAddr, c.HTTPSAddr, c.AdminAddr} {
		if p := server.PortOf(a); p != 0 {
			guard.SelfPorts = append(guard.SelfPorts, p)
		}
	}
	obs, err := newObservability(c, log)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		obs.close(ctx)
	}()
	transports := upstream.NewTransports(upstream.NewDialer(guard, 5*time.Second), upstream.TransportOptions{})
	defer transports.CloseIdleConnections()
	endpoints := upstream.NewStore()
	certs := tlsstore.New()
	httpsPort := 443 // behind a Service, clients see the Service's port
	if p := server.PortOf(c.HTTPSAddr); filesMode && p != 0 {
		// Standalone users reach the HTTPS listener directly, so redirects point at its port.
		httpsPort = int(p)
	}
	p := proxy.New(proxy.Options{Endpoints: endpoints, Transports: transports, HTTPSPort: httpsPort,
		Observer: obs.observer(), Tracer: obs.tracer, Logger: log.With("component", "proxy")})
	obs.wire(p, endpoints)
	srv := server.New(server.Config{
		HTTPAddr: c.HTTPAddr, HTTPSAddr: c.HTTPSAddr, AdminAddr: c.AdminAddr, H2C: c.H2C,
		ShutdownGrace: c.ShutdownGrace, DrainTimeout: c.DrainTimeout,
		DisableLeanHTTP1: c.DisableLeanHTTP1 || os.Getenv("PORTICO_LEAN_HTTP1") == "off",
		Logger:           log.With("component", "server"),
		Registry:         obs.registry,
		OnReject:         obs.rejected,
		OnConnState:      obs.metrics.ConnState,
		OnHandshake:      obs.metrics.Handshake,
	}, p, certs)
	dp := &server.Dataplane{Proxy: p, TLS: certs, Endpoints: endpoints, OnRoutes: obs.routesApplied}
	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	started := Started{Server: srv, Dataplane: dp}
	if filesMode {
		src := files.NewSource(files.Options{Dir: c.Files, Settings: proxy.Settings{TrustedHops: c.TrustedHops, Tenant: c.Tenant},
			Logger: log.With("component", "files"), Hooks: c.FilesHooks, OnReload: func(r files.Reload) { obs.metrics.Built(r.Applied, r.Took) }}, dp)
		if err := src.Start(srcCtx); err != nil {
			return fmt.Errorf("reading %s: %w", c.Files, err)
		}
	} else {
		// Cluster mode: /readyz stays false until the first full snapshot is live (no table before).
		o := c.Operator
		o.Settings = proxy.Settings{TrustedHops: c.TrustedHops, Tenant: c.Tenant}
		o.Logger = log.With("component", "snapshots")
		o.OnApply = chainApply(o.OnApply, func(a snapshotclient.Apply) {
			if a.Full {
				obs.metrics.Built(a.Err == nil, a.Took)
			}
		})
		started.Snapshots = snapshotclient.New(o, dp)
		go func() { _ = started.Snapshots.Run(srcCtx) }()
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if c.Started != nil {
		c.Started(started)
	}
	return srv.Serve(ctx)
}

func chainApply(a, b func(snapshotclient.Apply)) func(snapshotclient.Apply) {
	if a == nil {
		return b
	}
	return func(x snapshotclient.Apply) { a(x); b(x) }
}
