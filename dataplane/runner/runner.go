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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Config of a proxy process.
type Config struct {
	// Files is the directory of the standalone mode. It is required until the operator's snapshot
	// stream is available.
	Files string
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
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, c Config) error {
	if c.Files == "" {
		return errors.New("--files is required: cluster mode needs the operator's snapshot stream, which is not available in this build yet")
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
		Logger:      log.With("component", "server"),
		Registry:    obs.registry,
		OnReject:    obs.rejected,
		OnConnState: obs.metrics.ConnState,
		OnHandshake: obs.metrics.Handshake,
	}, p, certs)
	dp := &server.Dataplane{Proxy: p, TLS: certs, Endpoints: endpoints, OnRoutes: obs.routesApplied}
	src := files.NewSource(files.Options{Dir: c.Files, Settings: proxy.Settings{TrustedHops: c.TrustedHops, Tenant: c.Tenant},
		Logger: log.With("component", "files"), OnReload: func(r files.Reload) { obs.metrics.Built(r.Applied, r.Took) }}, dp)
	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	if err := src.Start(srcCtx); err != nil {
		return fmt.Errorf("reading %s: %w", c.Files, err)
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	return srv.Serve(ctx)
}
