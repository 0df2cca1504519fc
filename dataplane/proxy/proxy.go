// Package proxy is Portico's HTTP handler: one routing-table load per request, the route's
// policies and filters, then httputil.ReverseProxy (with Rewrite) over load-balanced, pooled
// upstream connections. Every answer it makes itself is short, names its reason and never carries
// a Go error string or an internal address.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
	"github.com/portico-dev/portico/dataplane/urlpath"
)

// Options configure a Proxy. Endpoints and Transports are required.
type Options struct {
	Endpoints  *upstream.Store
	Transports *upstream.Transports
	// LoadBalancing over a backend's endpoints; round robin by default.
	LoadBalancing upstream.Policy
	// HTTPSPort is the port written into HTTP→HTTPS redirects (443 when zero).
	HTTPSPort int
	// BufferBodyBytes is how much of a body of unknown length (chunked, or HTTP/2 without
	// content-length) is read before the upstream is contacted; 1 MiB when zero. See body.go.
	BufferBodyBytes int64
	// Observer is told about every finished exchange (access log, metrics).
	Observer Observer
	// Tracer, when set, traces requests (see Tracer).
	Tracer Tracer
	Logger *slog.Logger
}

// Settings are the EdgeProxy-level switches that change with the configuration.
type Settings struct {
	// TrustedHops is the number of proxies in front whose X-Forwarded-For entries are believed.
	TrustedHops int
	// RedirectHTTPToHTTPS answers plain-HTTP requests for hosts with TLS with a 308 to https.
	RedirectHTTPToHTTPS bool
	// ListenerDefaultTLS: the key pairs hold a listener default (tlsstore.DefaultKeypair), the
	// certificate of a Gateway HTTPS listener without hostname, served for every name no route's TLS
	// covers; requests for such names on a connection that negotiated it are not misdirected.
	ListenerDefaultTLS bool
	// Tenant is the EdgeProxy's name: the tenant of metrics, access log lines and traces.
	Tenant string
	// Observability is the EdgeProxy's spec.observability (nil when it says nothing). The handler
	// does not read it; the process applies it to its access log and tracer.
	Observability *edgev1alpha1.Observability
}

// live is what one request loads: the table and the settings that came with it, plus the
// round-robin state of the table's rules (which dies with the table).
type live struct {
	table    *routing.Table
	settings Settings
	backends sync.Map // *routing.Rule → *backendPicker
}

// Proxy is the data-plane handler.
type Proxy struct {
	opts     Options
	state    atomic.Pointer[live]
	rp       *httputil.ReverseProxy
	log      *slog.Logger
	inflight [2]atomic.Int64 // HTTP/1, HTTP/2
}

// New returns a Proxy that answers 503 until the first SetTable.
func New(o Options) *Proxy {
	if o.HTTPSPort == 0 {
		o.HTTPSPort = 443
	}
	if o.BufferBodyBytes <= 0 {
		o.BufferBodyBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: o, log: o.Logger}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return p
}

// SetTable swaps in a new routing table and settings. Requests in flight finish with the table
// they loaded; the next request sees the new one.
func (p *Proxy) SetTable(t *routing.Table, s Settings) {
	p.state.Store(&live{table: t, settings: s})
}

// Table returns the table in use (nil before the first SetTable).
func (p *Proxy) Table() *routing.Table {
	if l := p.state.Load(); l != nil {
		return l.table
	}
	return nil
}

// InFlight is the number of requests being served, upgraded connections included.
func (p *Proxy) InFlight() int64 { return p.inflight[0].Load() + p.inflight[1].Load() }

// InFlightByProtocol is InFlight split into HTTP/1.x and HTTP/2 requests.
func (p *Proxy) InFlightByProtocol() (http1, http2 int64) {
	return p.inflight[0].Load(), p.inflight[1].Load()
}

// call is the per-request state shared by the handler, Rewrite, the round tripper and
// ModifyResponse through the request context.
type call struct {
	ex       *Exchange
	live     *live
	rule     *routing.Rule
	match    routing.Match
	path     string // normalized request path
	outPath  string // path to forward (after rewrites)
	outHost  string // Host to forward
	fwd      forwarding
	tls      bool
	upgrade  bool // a WebSocket upgrade on a route that allows it
	body     *bodyGuard
	affinity *routing.SessionAffinity
	cookie   string // affinity token the request carried
	setToken string // affinity token of the endpoint that served
	backend  int    // index into rule.Backends, -1 until chosen
	// The direct path's 1xx forwarding (see serveDirect), allocated with the call.
	info  informational
	trace httptrace.ClientTrace
}

type callKey struct{}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &Exchange{Start: time.Now(), Method: r.Method, Host: r.Host, Proto: r.Proto, TLS: r.TLS != nil, Request: r}
	if r.ProtoMajor >= 2 {
		ex.proto = 1
	}
	p.inflight[ex.proto].Add(1)
	rec := &recorder{ResponseWriter: w, ex: ex}
	if t := p.opts.Tracer; t != nil {
		if ctx := t.StartServer(r.Context(), r, ex); ctx != r.Context() {
			r = r.WithContext(ctx)
		}
	}
	defer p.finish(ex, r)

	ex.RequestID = requestID(r.Header.Get("X-Request-Id"))
	l := p.state.Load()
	if l == nil {
		answer(rec, ex, http.StatusServiceUnavailable, ReasonNotReady)
		return
	}
	ex.Tenant = l.settings.Tenant
	c := &call{ex: ex, live: l, tls: r.TLS != nil, backend: -1}
	c.fwd = forwardingFor(r, l.settings.TrustedHops)
	ex.ClientIP = c.fwd.client

	if status, detail := checkRequest(r); status != 0 {
		ex.Detail = detail
		answer(rec, ex, status, ReasonRejectedRequest)
		return
	}
	path, err := requestPath(r)
	if err != nil {
		var pe *urlpath.Error
		if errors.As(err, &pe) {
			ex.Detail = pe.Reason
		}
		answer(rec, ex, http.StatusBadRequest, ReasonRejectedRequest)
		return
	}
	c.path, c.outPath, c.outHost, ex.Path = path, path, r.Host, path

	table := l.table
	if c.tls && tlsstore.Misdirected(table, r.TLS.ServerName, r.Host, l.settings.ListenerDefaultTLS) {
		answer(rec, ex, http.StatusMisdirectedRequest, ReasonMisdirected)
		return
	}
	if !c.tls && l.settings.RedirectHTTPToHTTPS && !strings.HasPrefix(path, "/.well-known/acme-challenge/") {
		if _, ok := table.TLSSecretFor(r.Host); ok {
			p.redirectToHTTPS(rec, r, c)
			return
		}
	}
	m, res := table.Lookup(&routing.Request{Host: r.Host, Path: path, Method: r.Method, Header: r.Header, RawQuery: r.URL.RawQuery})
	if res != routing.Matched {
		answer(rec, ex, http.StatusNotFound, ReasonNoRoute)
		return
	}
	c.match, c.rule, ex.Rule = m, m.Rule, m.Rule
	pol := &m.Rule.Route.Policy
	if len(pol.SourceRanges) > 0 && !inRanges(c.fwd.client, pol.SourceRanges) {
		answer(rec, ex, http.StatusForbidden, ReasonForbiddenSource)
		return
	}
	if pol.CORS != nil && handleCORS(rec, r, pol.CORS) {
		ex.Reason = ReasonCORSPreflight
		return
	}
	if rd := c.rule.Redirect; rd != nil {
		p.redirect(rec, r, c, rd)
		return
	}
	if len(c.rule.Backends) == 0 {
		answer(rec, ex, http.StatusInternalServerError, ReasonNoBackend)
		return
	}
	if rw := c.rule.Rewrite; rw != nil {
		c.outPath = rw.RewritePath(path, m.MatchedPrefix)
		if rw.Hostname != "" {
			c.outHost = rw.Hostname
		}
	}
	c.upgrade = p.prepareUpgrade(r, pol)
	if pol.SessionAffinity != nil {
		c.affinity = pol.SessionAffinity
		if ck, err := r.Cookie(pol.SessionAffinity.CookieName); err == nil {
			c.cookie = ck.Value
		}
	}
	if status, reason := p.prepareBody(r, c, bodyLimit(pol)); status != 0 {
		if status == statusClientGone {
			ex.Reason, ex.Status = reason, 499
			return
		}
		if status == http.StatusRequestEntityTooLarge {
			rec.Header().Set("Connection", "close") // the body is not read; do not reuse
		}
		answer(rec, ex, status, reason)
		return
	}
	ctx := context.WithValue(r.Context(), callKey{}, c)
	if d := c.rule.Timeouts.Request; d > 0 && !c.upgrade {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errRequestTimeout)
		defer cancel()
	}
	if direct(r, c) {
		p.serveDirect(rec, r, c, ctx)
		return
	}
	p.rp.ServeHTTP(rec, r.WithContext(ctx))
}

// finish reports the exchange, also when ReverseProxy aborts the handler (a response body that
// broke mid-way), and lets the abort continue. r is the request as the tracer returned it.
func (p *Proxy) finish(ex *Exchange, r *http.Request) {
	rec := recover()
	if rec != nil && ex.Reason == "" {
		ex.Reason = ReasonUpstreamError
	}
	ex.Duration = time.Since(ex.Start)
	if ex.body != nil {
		ex.BytesRead = ex.body.read.Load()
	}
	if t := p.opts.Tracer; t != nil {
		t.EndServer(r.Context(), ex)
	}
	if p.opts.Observer != nil {
		p.opts.Observer.Observe(ex)
	}
	p.inflight[ex.proto].Add(-1)
	if rec != nil {
		panic(rec)
	}
}

// checkRequest refuses what the raw HTTP/1 checks cannot see on HTTP/2: underscores in header
// names (net/http's HTTP/2 server accepts them), and a query with characters a target may not hold.
func checkRequest(r *http.Request) (int, string) {
	if r.ProtoMajor >= 2 {
		for k := range r.Header {
			if strings.IndexByte(k, '_') >= 0 {
				return http.StatusBadRequest, "underscore in header name"
			}
		}
	}
	if !urlpath.ValidQuery(r.URL.RawQuery) {
		return http.StatusBadRequest, "invalid character in query"
	}
	return 0, ""
}

// requestPath normalizes the path exactly as the client sent it (RequestURI), not Go's decoded
// URL.Path: deciding on a decoded form and forwarding the raw one is the classic bypass.
func requestPath(r *http.Request) (string, error) {
	raw := r.RequestURI
	if raw == "" {
		raw = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if !strings.HasPrefix(raw, "/") {
		// absolute-form ("http://host/p"): the request check already verified it matches Host.
		if i := strings.Index(raw, "://"); i >= 0 {
			rest := raw[i+3:]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				raw = rest[j:]
			} else {
				raw = "/"
			}
		}
	}
	return urlpath.Normalize(raw)
}

// prepareUpgrade keeps a WebSocket upgrade on routes that allow it and strips every other
// Upgrade (h2c included): ReverseProxy would otherwise forward any protocol switch.
func (p *Proxy) prepareUpgrade(r *http.Request, pol *routing.Policy) bool {
	up := r.Header.Get("Upgrade")
	if up == "" {
		return false
	}
	if pol.Websocket && r.ProtoMajor == 1 && r.Method == http.MethodGet &&
		strings.EqualFold(up, "websocket") && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade") {
		return true
	}
	r.Header.Del("Upgrade")
	return false
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// answer writes a proxy-made response: the status and one short line naming the reason (and the
// detail, a constant). It carries the request ID, so a user can quote it. Nothing of an upstream
// response can be in the header map here: ReverseProxy copies those only on success.
func answer(w http.ResponseWriter, ex *Exchange, status int, reason string) {
	ex.Reason = reason
	h := w.Header()
	h.Set("X-Request-Id", ex.RequestID)
	body := itoa(status) + " " + http.StatusText(status) + ": " + reason
	if ex.Detail != "" {
		body += " (" + ex.Detail + ")"
	}
	body += "\n"
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
