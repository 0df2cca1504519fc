// Package server runs the proxy's listeners: plain HTTP (optionally h2c), HTTPS (HTTP/1.1 and h2
// by ALPN), and the admin port, with the http.Server settings of security-defaults.md, and the
// graceful shutdown sequence: not ready → keep serving for a grace period → drain → exit.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/tlsstore"
)

// Config of the listeners. Addresses accept "host:port"; an empty address disables a listener.
type Config struct {
	HTTPAddr, HTTPSAddr, AdminAddr string
	// H2C serves prior-knowledge cleartext HTTP/2 on the HTTP listener.
	H2C bool
	// ShutdownGrace is how long the proxy keeps serving after it stopped being ready; 10 s.
	ShutdownGrace time.Duration
	// DrainTimeout bounds the drain of open connections after the grace period; 60 s.
	DrainTimeout time.Duration
	// ReadHeaderTimeout (10 s), IdleTimeout (60 s), TLSHandshakeTimeout (10 s).
	ReadHeaderTimeout, IdleTimeout, TLSHandshakeTimeout time.Duration
	// BodyReadTimeout cuts a request body that makes no progress for that long (30 s): 408 and
	// close when no response has started. ResponseWriteTimeout cuts a client that reads none of
	// its response for that long (60 s). Negative disables; WebSocket upgrades are exempt.
	BodyReadTimeout, ResponseWriteTimeout time.Duration
	// MaxConnsPerListener (10,000) and MaxConnsPerIP (256) cap the open client connections of the
	// HTTP and HTTPS listeners; a connection over a cap is closed on accept. Negative disables.
	MaxConnsPerListener, MaxConnsPerIP int
	// OnConnLimit, when set, is told about every connection closed on accept by those caps.
	OnConnLimit func(listener string, remote net.Addr)
	// DisableLeanHTTP1 serves every HTTP/1.1 connection with net/http's server instead of the
	// lean loop (lean.go), which is on by default.
	DisableLeanHTTP1 bool
	// Limits of the raw request checks.
	Limits requestcheck.Limits
	// OnReject is told about every request the raw checks refused.
	OnReject func(*requestcheck.Rejection, net.Addr)
	// OnConnState, when set, follows the client connections of the "http" and "https" listeners
	// (http.Server.ConnState).
	OnConnState func(listener string, state http.ConnState)
	// OnHandshake, when set, is told the outcome of every TLS handshake: the version, or the error.
	OnHandshake func(version uint16, err error)
	// Registry serves /metrics; a fresh registry with Go and process collectors when nil.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ShutdownGrace, 10*time.Second)
	def(&c.DrainTimeout, 60*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.TLSHandshakeTimeout, 10*time.Second)
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = 30 * time.Second
	}
	if c.ResponseWriteTimeout == 0 {
		c.ResponseWriteTimeout = 60 * time.Second
	}
	if c.MaxConnsPerListener == 0 {
		c.MaxConnsPerListener = 10000
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
}

// Server owns the listeners.
type Server struct {
	cfg      Config
	proxy    *proxy.Proxy
	tls      *tlsstore.Store
	log      *slog.Logger
	draining atomic.Bool

	httpLn, httpsLn, adminLn net.Listener
	httpSrv, httpsSrv        *http.Server
	adminSrv                 *http.Server
	leans                    []*leanServer
	errs                     chan error
}

// New prepares a server for p; certificates come from certs.
func New(cfg Config, p *proxy.Proxy, certs *tlsstore.Store) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, proxy: p, tls: certs, log: cfg.Logger, errs: make(chan error, 3)}
}

// Ready reports whether the proxy should receive traffic: a table is live and it is not draining.
func (s *Server) Ready() bool { return s.proxy.Table() != nil && !s.draining.Load() }

// HTTPAddr, HTTPSAddr and AdminAddr return the bound addresses (after Listen).
func (s *Server) HTTPAddr() string  { return addrOf(s.httpLn) }
func (s *Server) HTTPSAddr() string { return addrOf(s.httpsLn) }
func (s *Server) AdminAddr() string { return addrOf(s.adminLn) }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// SelfPorts are the ports the proxy listens on, for the egress guard (bound ports when port 0
// was asked for).
func (s *Server) SelfPorts() []uint16 {
	var out []uint16
	for _, l := range []net.Listener{s.httpLn, s.httpsLn, s.adminLn} {
		if l == nil {
			continue
		}
		if ta, ok := l.Addr().(*net.TCPAddr); ok {
			out = append(out, uint16(ta.Port))
		}
	}
	return out
}

// PortOf returns the port of a "host:port" address, or 0.
func PortOf(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

// Listen binds every configured listener.
func (s *Server) Listen() error {
	var err error
	bind := func(addr string) net.Listener {
		if addr == "" || err != nil {
			return nil
		}
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err != nil {
			err = fmt.Errorf("listen on %s: %w", addr, err)
		}
		return l
	}
	s.httpLn, s.httpsLn, s.adminLn = bind(s.cfg.HTTPAddr), bind(s.cfg.HTTPSAddr), bind(s.cfg.AdminAddr)
	if err != nil {
		for _, l := range []net.Listener{s.httpLn, s.httpsLn, s.adminLn} {
			if l != nil {
				_ = l.Close()
			}
		}
	}
	return err
}

func (s *Server) newHTTPServer(tlsOn bool) *http.Server {
	srv := &http.Server{
		Handler:           &progressHandler{next: s.proxy, bodyTimeout: s.cfg.BodyReadTimeout, writeTimeout: s.cfg.ResponseWriteTimeout},
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// The raw checks enforce the real limits (64 KiB header section, 8 KiB target); this is
		// net/http's own cap, also the HTTP/2 header list limit.
		MaxHeaderBytes: 64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			c, _ = unwrapReplay(c) // a connection the lean loop handed over
			return requestcheck.ConnContext(ctx, c)
		},
		ErrorLog:  slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Protocols: new(http.Protocols),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          100,
			MaxReceiveBufferPerConnection: 1 << 20,
			MaxReceiveBufferPerStream:     64 << 10,
			MaxReadFrameSize:              16 << 10,
		},
	}
	srv.Protocols.SetHTTP1(true)
	if tlsOn {
		srv.Protocols.SetHTTP2(true) // used for connections whose ALPN chose h2
	} else if s.cfg.H2C {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	if hook := s.cfg.OnConnState; hook != nil {
		name := "http"
		if tlsOn {
			name = "https"
		}
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			if _, handedOver := unwrapReplay(c); handedOver && st == http.StateNew {
				return // the lean loop reported it when it accepted the connection
			}
			hook(name, st)
		}
	}
	return srv
}

// Serve serves until ctx is done, then shuts down gracefully and returns. Listen must have been
// called.
func (s *Server) Serve(ctx context.Context) error {
	check := requestcheck.Options{Limits: s.cfg.Limits, AllowH2CPreface: s.cfg.H2C, OnReject: s.cfg.OnReject}
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, l net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	lean := func(name string, srv *http.Server, l net.Listener) net.Listener {
		if s.cfg.DisableLeanHTTP1 {
			return l
		}
		ls := newLeanServer(name, l, srv)
		s.leans = append(s.leans, ls)
		return ls
	}
	if s.httpLn != nil {
		s.httpSrv = s.newHTTPServer(false)
		serve("http", s.httpSrv, lean("http", s.httpSrv, requestcheck.NewListener(s.limit("http", s.httpLn), check)))
	}
	if s.httpsLn != nil {
		s.httpsSrv = s.newHTTPServer(true)
		tl := newTLSListener(s.limit("https", s.httpsLn), s.tls.ServerConfig(true), s.cfg.TLSHandshakeTimeout, requestcheck.Options{
			Limits: s.cfg.Limits, OnReject: s.cfg.OnReject}, s.cfg.OnHandshake, s.log)
		serve("https", s.httpsSrv, lean("https", s.httpsSrv, tl))
	}
	if s.adminLn != nil {
		s.adminSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout: 60 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		serve("admin", s.adminSrv, s.adminLn)
	}
	s.log.Info("serving", "http", s.HTTPAddr(), "https", s.HTTPSAddr(), "admin", s.AdminAddr(), "h2c", s.cfg.H2C)

	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errs:
		s.log.Error("listener failed, shutting down", "error", err)
	}
	s.shutdown()
	wg.Wait()
	return err
}

// limit applies the connection caps to a client listener.
func (s *Server) limit(name string, l net.Listener) net.Listener {
	var hook func(net.Addr)
	if f := s.cfg.OnConnLimit; f != nil {
		hook = func(a net.Addr) { f(name, a) }
	}
	return newLimitListener(l, s.cfg.MaxConnsPerListener, s.cfg.MaxConnsPerIP, hook)
}

// shutdown: stop being ready, keep serving for the grace period (load balancers and endpoints
// controllers need that long to stop sending), then drain: HTTP/1 responses get
// "Connection: close", HTTP/2 connections a GOAWAY, idle ones are closed, and in-flight requests
// (upgraded connections included) get until the drain timeout.
func (s *Server) shutdown() {
	s.draining.Store(true)
	s.log.Info("shutting down: not ready, still serving", "grace", s.cfg.ShutdownGrace.String())
	time.Sleep(s.cfg.ShutdownGrace)

	s.log.Info("draining connections", "timeout", s.cfg.DrainTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*http.Server{s.httpSrv, s.httpsSrv} {
		if srv == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				s.log.Warn("drain timed out, closing connections", "error", err)
				_ = srv.Close()
			}
		}()
	}
	for _, ls := range s.leans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ls.drain(ctx); err != nil {
				s.log.Warn("drain timed out, closing connections", "listener", ls.name, "error", err)
				ls.closeAll()
			}
		}()
	}
	wg.Wait()
	// Hijacked (WebSocket) connections are not tracked by http.Server; their handlers are.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.proxy.InFlight() > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("drain timed out with requests in flight", "in_flight", s.proxy.InFlight())
			s.closeAdmin()
			return
		case <-tick.C:
		}
	}
	s.closeAdmin()
	s.log.Info("drained")
}

func (s *Server) closeAdmin() {
	if s.adminSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.adminSrv.Shutdown(ctx)
}
