package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// H1 is a lean HTTP/1.1 round tripper for the common case: a request without a body to a
// plain-HTTP endpoint. It does on the caller's goroutine what http.Transport spreads over three
// (the caller, a read loop and a write loop, talking through channels): take a pooled keep-alive
// connection, write the request head, read the response head (net/http's own ReadResponse, so
// the response framing is exactly net/http's), and hand the connection back once the body has
// been read to its end.
//
// Anything else goes to http.Transport (see Transports.For): request bodies (which http.Transport
// writes while it already reads the response, for upstreams that answer early), upgrades,
// Expect, trailers, a Connection field, non-ASCII or zoned hosts.
//
// What keeps a pooled connection honest: a connection goes back to the pool only after its
// response body was read to its end, with nothing more buffered, from an HTTP/1.1 response that
// did not ask to close and whose length was known (Content-Length or chunked); before reuse a
// non-blocking peek makes sure the upstream has neither closed it nor sent anything unasked
// (either discards it, so a stray response can never answer the next request); and a request
// that fails on a reused connection before any byte of a response arrived is sent again on
// another connection when it is replayable (http.Transport's rule: GET, HEAD, OPTIONS, TRACE or an
// Idempotency-Key, and no body). Cancelling the request's context aborts the exchange at once
// (connection deadline), and that connection is closed.
type H1 struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	maxIdle     int
	maxHeader   int64

	pools      sync.Map // endpoint "host:port" → *h1Pool
	sweepArmed atomic.Bool
}

// NewH1 returns a lean round tripper dialing with dial; see TransportOptions for the limits.
func NewH1(dial func(ctx context.Context, network, addr string) (net.Conn, error), idleTimeout time.Duration, maxIdlePerEndpoint int, maxResponseHeaderBytes int64) *H1 {
	return &H1{dial: dial, idleTimeout: idleTimeout, maxIdle: maxIdlePerEndpoint, maxHeader: maxResponseHeaderBytes}
}

type h1Pool struct {
	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

type h1Conn struct {
	t      *H1
	pool   *h1Pool
	conn   net.Conn
	raw    syscall.RawConn // nil when the connection has no file descriptor
	cr     countingReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// peek state (a method value stored once, so that the liveness check allocates nothing)
	peekFn  func(fd uintptr) bool
	peekBuf [1]byte
	dead    bool
}

// countingReader reads the connection, counting bytes, and bounds what a response head may take.
type countingReader struct {
	c         net.Conn
	n         int64 // bytes read since the last reset
	remaining int64
	limit     int64
}

var errHeadTooLarge = errors.New("upstream response headers exceed the limit")

func (r *countingReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, fmt.Errorf("%w of %d bytes", errHeadTooLarge, r.limit)
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.c.Read(p)
	r.n += int64(n)
	r.remaining -= int64(n)
	return n, err
}

// Eligible reports whether a request can take the lean path.
func (t *H1) Eligible(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.URL.Opaque != "" ||
		(req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 ||
		len(req.TransferEncoding) != 0 || len(req.Trailer) != 0 || req.Close || req.Method == http.MethodConnect {
		return false
	}
	h := req.Header
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Connection"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 0x80 || c == '%' {
			return false // punycode and zone identifiers: http.Transport's business
		}
	}
	return true
}

// RoundTrip sends one request; callers check Eligible first (Transports.For does).
func (t *H1) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	addr := req.URL.Host
	for {
		pc, reused, err := t.get(ctx, addr)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				// Cancelled (client gone, or a timeout) while dialing: not the endpoint's fault,
				// so not a DialError that would eject it (http.Transport answers the same).
				return nil, cerr
			}
			return nil, err
		}
		resp, nothingRead, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		if reused && nothingRead && ctx.Err() == nil && replayable(req) {
			continue // the upstream closed a pooled connection as we used it; try another
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
}

func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// validateRequest refuses what http.Transport refuses before writing anything.
func validateRequest(req *http.Request) error {
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	if req.Method != "" && !validMethod(req.Method) {
		return fmt.Errorf("net/http: invalid method %q", req.Method)
	}
	return nil
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

func (t *H1) pool(addr string) *h1Pool {
	if p, ok := t.pools.Load(addr); ok {
		return p.(*h1Pool)
	}
	p, _ := t.pools.LoadOrStore(addr, &h1Pool{})
	return p.(*h1Pool)
}

// get returns a live pooled connection to addr, or a new one.
func (t *H1) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	p := t.pool(addr)
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(pc.idleAt) > t.idleTimeout || !pc.alive() {
			_ = pc.conn.Close()
			continue
		}
		return pc, true, nil
	}
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	pc := &h1Conn{t: t, pool: p, conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
		}
	}
	pc.peekFn = pc.peek
	if !canPeek {
		pc.raw = nil
	}
	pc.cr = countingReader{c: c, remaining: math.MaxInt64, limit: t.maxHeader}
	pc.br = bufio.NewReaderSize(&pc.cr, 16<<10)
	pc.bw = bufio.NewWriterSize(c, 4<<10)
	return pc, false, nil
}

// alive reports whether an idle connection can carry a request: the upstream has not closed it
// and has sent nothing (a response nobody asked for must not answer the next request).
func (pc *h1Conn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true
	}
	pc.dead = false
	if err := pc.raw.Read(pc.peekFn); err != nil {
		return false
	}
	return !pc.dead
}

// put returns a connection to its pool.
func (t *H1) put(pc *h1Conn) {
	p := pc.pool
	now := time.Now()
	p.mu.Lock()
	pc.idleAt = now
	if len(p.idle) >= t.maxIdle {
		p.mu.Unlock()
		_ = pc.conn.Close()
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
	if t.sweepArmed.CompareAndSwap(false, true) {
		time.AfterFunc(t.idleTimeout/2, t.sweep)
	}
}

// sweep closes connections idle for longer than the idle timeout, and runs again while any
// connection is idle.
func (t *H1) sweep() {
	left := t.closeIdle(time.Now().Add(-t.idleTimeout))
	t.sweepArmed.Store(false)
	if left > 0 && t.sweepArmed.CompareAndSwap(false, true) {
		time.AfterFunc(t.idleTimeout/2, t.sweep)
	}
}

// closeIdle closes idle connections that went idle before cutoff (all of them for the zero time
// in the future) and returns how many remain.
func (t *H1) closeIdle(cutoff time.Time) int {
	left := 0
	t.pools.Range(func(k, v any) bool {
		p := v.(*h1Pool)
		p.mu.Lock()
		keep := p.idle[:0]
		var drop []*h1Conn
		for _, pc := range p.idle {
			if pc.idleAt.Before(cutoff) {
				drop = append(drop, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		left += len(keep)
		p.mu.Unlock()
		for _, pc := range drop {
			_ = pc.conn.Close()
		}
		return true
	})
	return left
}

// CloseIdleConnections closes every idle connection.
func (t *H1) CloseIdleConnections() {
	t.closeIdle(time.Now().Add(time.Hour))
}

var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes the request and reads the response head. nothingRead says that no byte of a
// response arrived, for the retry decision.
func (pc *h1Conn) roundTrip(req *http.Request) (_ *http.Response, nothingRead bool, _ error) {
	ctx := req.Context()
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		_ = pc.conn.Close()
		return nil, pc.cr.n == 0, err
	}
	pc.cr.n = 0
	if err := pc.writeHead(req); err != nil {
		return fail(err)
	}
	trace := httptrace.ContextClientTrace(ctx)
	var resp *http.Response
	for informational := 0; ; informational++ {
		pc.cr.remaining = pc.t.maxHeader
		r, err := http.ReadResponse(pc.br, req)
		pc.cr.remaining = math.MaxInt64
		if err != nil {
			return fail(err)
		}
		if r.StatusCode >= 200 || r.StatusCode == http.StatusSwitchingProtocols || r.StatusCode < 100 {
			resp = r
			break
		}
		// 100 Continue (not asked for) and 103 Early Hints: passed to the trace, as http.Transport does.
		if informational >= 5 {
			return fail(errors.New("upstream sent too many informational responses"))
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(r.StatusCode, textproto.MIMEHeader(r.Header)); err != nil {
				return fail(err)
			}
		}
	}
	reusable := resp.ProtoAtLeast(1, 1) && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols &&
		(resp.Body == http.NoBody || resp.ContentLength >= 0 || isChunked(resp.TransferEncoding))
	if resp.Body == http.NoBody {
		pc.release(reusable, stop)
		return resp, false, nil
	}
	resp.Body = &h1Body{ctx: ctx, pc: pc, body: resp.Body, reusable: reusable, stop: stop}
	return resp, false, nil
}

func isChunked(te []string) bool { return len(te) > 0 && te[0] == "chunked" }

// release returns the connection to the pool when the exchange left it clean, and closes it
// otherwise.
func (pc *h1Conn) release(reusable bool, stop func() bool) {
	if stop() && reusable && pc.br.Buffered() == 0 {
		pc.t.put(pc)
		return
	}
	_ = pc.conn.Close()
}

// writeHead writes the request line and header fields as http.Request.Write does for a request
// without a body (field order aside).
func (pc *h1Conn) writeHead(req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as net/http: an altered Host would be a smuggling vector, an empty one is valid
	}
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if b := ruri[i]; b < ' ' || b == 0x7f {
			return errors.New("net/http: can't write control character in Request.URL")
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w := pc.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		writeField(w, "User-Agent", ua)
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			writeField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	return w.Flush()
}

func writeField(w *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	v = strings.Trim(v, " \t")
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// h1Body hands the connection back once the response body has been read to its end; closed
// before that, the connection is closed (never drained: the client may have gone away from a
// large download).
type h1Body struct {
	ctx      context.Context
	pc       *h1Conn
	body     io.ReadCloser
	reusable bool
	stop     func() bool
	eof      bool
	closed   bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr // the read was cut by the request's context (connection deadline)
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.pc.release(b.eof && b.reusable, b.stop)
	return nil
}
