package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/upstream"
)

var (
	errRequestTimeout    = errors.New("request timeout")
	errBackendTimeout    = errors.New("backend timeout")
	errNoEndpoints       = errors.New("no ready endpoints")
	errUnexpectedUpgrade = errors.New("upstream switched protocols unasked")
)

// roundTripper picks an endpoint per attempt: affinity cookie first, then the rule's backends by
// weight, then the backend's endpoints by the load-balancing policy, skipping ejected ones.
// Failures to connect eject the endpoint and, for idempotent requests with a replayable body,
// are retried on another endpoint (nothing was sent, so nothing can be applied twice).
type roundTripper struct{ p *Proxy }

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	p, c := t.p, callFrom(req.Context())
	retries := 0
	if idempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) {
		retries = c.rule.RetryAttempts
	}
	var triedBuf [4]netip.AddrPort
	tried := triedBuf[:0]
	var lastErr error
	start := time.Now()
	defer func() { c.ex.UpstreamLatency = time.Since(start) }()
	for attempt := 0; ; attempt++ {
		set, i, ok := p.pick(c, tried, attempt)
		if !ok {
			if lastErr != nil {
				return nil, lastErr // every endpoint was tried
			}
			return nil, errNoEndpoints
		}
		ep := set.Endpoints[i]
		c.ex.Backend, c.ex.Endpoint, c.ex.Attempts = set.Key, ep.Addr, attempt+1
		if c.affinity != nil {
			c.setToken = set.Token(i)
		}
		req.URL.Host = set.HostPort(i)
		resp, err := p.send(c, req, ep, attempt)
		if err == nil {
			p.opts.Endpoints.Health.Succeeded(ep.Addr)
			return resp, nil
		}
		var de *upstream.DialError
		if !errors.As(err, &de) {
			return nil, err
		}
		if !p.opts.Endpoints.Health.Ejected(ep.Addr) {
			c.ex.Ejections++
		}
		p.opts.Endpoints.Health.ConnectFailed(ep.Addr)
		lastErr = err
		if attempt >= retries {
			return nil, err
		}
		tried = append(tried, ep.Addr)
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// pick chooses the endpoint of this attempt.
func (p *Proxy) pick(c *call, tried []netip.AddrPort, attempt int) (*upstream.Set, int, bool) {
	store, health := p.opts.Endpoints, p.opts.Endpoints.Health
	backends := c.rule.Backends
	if attempt == 0 && c.cookie != "" {
		for bi, b := range backends {
			if b.Weight <= 0 {
				continue
			}
			if set := store.Get(b.Key); set != nil {
				if i, ok := set.ByToken(c.cookie); ok && !health.Ejected(set.Endpoints[i].Addr) {
					c.backend = bi
					return set, i, true
				}
			}
		}
	}
	if c.backend < 0 {
		c.backend = c.live.pickBackend(c.rule)
		if c.backend < 0 {
			return nil, 0, false
		}
	}
	set := store.Get(backends[c.backend].Key)
	if set == nil {
		c.ex.Backend = backends[c.backend].Key
		return nil, 0, false
	}
	i, ok := set.Pick(health, p.opts.LoadBalancing, tried)
	return set, i, ok
}

// send makes one attempt, in a client span when the request is traced.
func (p *Proxy) send(c *call, req *http.Request, ep upstream.Endpoint, attempt int) (*http.Response, error) {
	t := p.opts.Tracer
	if t == nil {
		return p.sendOnce(c, req, ep)
	}
	ctx, end := t.StartClient(req.Context(), req, c.ex, attempt)
	if end == nil {
		return p.sendOnce(c, req, ep)
	}
	resp, err := p.sendOnce(c, req.WithContext(ctx), ep)
	switch {
	case err != nil:
		end(0, err)
	case resp.StatusCode == http.StatusSwitchingProtocols:
		end(resp.StatusCode, nil) // ReverseProxy needs the body's io.Writer
	default:
		resp.Body = &endOnClose{ReadCloser: resp.Body, end: end, status: resp.StatusCode}
	}
	return resp, err
}

// endOnClose ends a client span once the response body is done with.
type endOnClose struct {
	io.ReadCloser
	end    func(int, error)
	status int
	err    error // first read error other than EOF
	done   atomic.Bool
}

func (b *endOnClose) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *endOnClose) Close() error {
	err := b.ReadCloser.Close()
	if b.done.CompareAndSwap(false, true) {
		b.end(b.status, b.err)
	}
	return err
}

// sendOnce makes one attempt, bounded by the rule's backend timeout until the response headers.
func (p *Proxy) sendOnce(c *call, req *http.Request, ep upstream.Endpoint) (*http.Response, error) {
	rt := p.opts.Transports.For(ep.AppProtocol)
	if p.opts.LoadBalancing == upstream.LeastRequest {
		p.opts.Endpoints.Health.Acquire(ep.Addr)
		defer p.opts.Endpoints.Health.Release(ep.Addr)
	}
	d := c.rule.Timeouts.Backend
	if d <= 0 || deadlineFirst(req.Context(), d) {
		// No backend timeout, or the request timeout ends this attempt first anyway (the defaults,
		// 60 s both): no timer, context and request copy per attempt.
		return rt.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(d, func() { cancel(errBackendTimeout) })
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	stopped := timer.Stop()
	if err != nil {
		if context.Cause(ctx) == errBackendTimeout {
			err = errBackendTimeout
		}
		cancel(nil)
		return nil, err
	}
	if !stopped {
		// The timer fired as the headers arrived; the body would fail anyway.
		resp.Body.Close()
		cancel(nil)
		return nil, errBackendTimeout
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	// An upgraded connection's context ends with the request.
	return resp, nil
}

// deadlineFirst reports whether ctx ends no later than d from now, so that a timeout of d
// started now could never fire first.
func deadlineFirst(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && !dl.After(time.Now().Add(d))
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// backendPicker is the weighted round robin over one rule's backends.
type backendPicker struct {
	schedule []uint32
	cursor   atomic.Uint64
}

func (l *live) pickBackend(rule *routing.Rule) int {
	if len(rule.Backends) == 1 {
		if rule.Backends[0].Weight == 0 {
			return -1
		}
		return 0
	}
	v, ok := l.backends.Load(rule)
	if !ok {
		weights := make([]int64, len(rule.Backends))
		for i, b := range rule.Backends {
			weights[i] = int64(b.Weight)
		}
		v, _ = l.backends.LoadOrStore(rule, &backendPicker{schedule: upstream.SmoothSchedule(weights, 10000)})
	}
	bp := v.(*backendPicker)
	if len(bp.schedule) == 0 {
		return -1
	}
	return int(bp.schedule[(bp.cursor.Add(1)-1)%uint64(len(bp.schedule))])
}

// modifyResponse applies the rule's response filters and the affinity cookie, and hands an
// upgraded connection over to the new protocol.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	c := callFrom(resp.Request.Context())
	c.ex.UpstreamStatus = resp.StatusCode
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !c.upgrade {
			return errUnexpectedUpgrade
		}
		c.ex.Upgraded, c.ex.Status = true, http.StatusSwitchingProtocols
		if rc := requestcheck.FromContext(resp.Request.Context()); rc != nil {
			rc.Passthrough()
		}
	}
	if m := c.rule.ResponseHeaders; m != nil {
		applyHeaders(resp.Header, m)
	}
	if c.affinity != nil && c.setToken != "" && c.setToken != c.cookie {
		ck := &http.Cookie{Name: c.affinity.CookieName, Value: c.setToken, Path: "/", HttpOnly: true,
			Secure: c.tls, SameSite: http.SameSiteLaxMode}
		if c.affinity.TTL > 0 {
			ck.MaxAge = int(c.affinity.TTL / time.Second)
		}
		resp.Header.Add("Set-Cookie", ck.String())
	}
	return nil
}

// handleError turns a failed exchange into the proxy's own answer.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	c := callFrom(r.Context())
	ex := c.ex
	var rej *requestcheck.Rejection
	switch {
	case c.body != nil && c.body.tooLarge.Load():
		answer(w, ex, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge)
	case c.body != nil && errors.As(c.body.err(), &rej):
		ex.Detail = rej.Detail
		answer(w, ex, http.StatusBadRequest, ReasonRejectedRequest) // the connection answers it
	case errors.Is(err, errBackendTimeout) || context.Cause(r.Context()) == errRequestTimeout:
		answer(w, ex, http.StatusGatewayTimeout, ReasonUpstreamTimeout)
	case r.Context().Err() != nil || (c.body != nil && c.body.err() != nil):
		ex.Reason, ex.Status = ReasonClientClosed, 499 // nginx's convention; nothing is sent
	case errors.Is(err, errNoEndpoints):
		answer(w, ex, http.StatusServiceUnavailable, ReasonNoEndpoints)
	default:
		var de *upstream.DialError
		if errors.As(err, &de) {
			answer(w, ex, http.StatusBadGateway, ReasonUpstreamConnectFailed)
		} else {
			answer(w, ex, http.StatusBadGateway, ReasonUpstreamError)
		}
		p.log.Debug("upstream exchange failed", "backend", ex.Backend, "endpoint", ex.Endpoint, "error", err)
	}
}
