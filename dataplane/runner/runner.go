// Package runner assembles a complete proxy process (egress-guarded transports, endpoint store,
// certificate store, proxy handler, listeners, configuration source) and runs it until its
// context ends. cmd/portico only parses flags into a Config.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
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
	H2C    bool
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
		Logger: log.With("component", "proxy")})
	srv := server.New(server.Config{
		HTTPAddr: c.HTTPAddr, HTTPSAddr: c.HTTPSAddr, AdminAddr: c.AdminAddr, H2C: c.H2C,
		ShutdownGrace: c.ShutdownGrace, DrainTimeout: c.DrainTimeout,
		Logger: log.With("component", "server"),
		OnReject: func(r *requestcheck.Rejection, _ net.Addr) {
			log.Debug("request rejected", "status", r.Status, "detail", r.Detail)
		},
	}, p, certs)
	dp := &server.Dataplane{Proxy: p, TLS: certs, Endpoints: endpoints}
	src := files.NewSource(files.Options{Dir: c.Files, Settings: proxy.Settings{TrustedHops: c.TrustedHops},
		Logger: log.With("component", "files")}, dp)
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
