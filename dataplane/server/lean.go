package server

// The lean HTTP/1.1 downstream loop (docs/performance.md, "What's next" 1).
//
// Every HTTP/1.1 client connection of the HTTP and HTTPS listeners (behind the raw request checks
// and the connection caps, exactly as before) is first served by a loop of our own: one goroutine
// per connection that reads the next request head (through requestcheck, which releases only
// complete, validated heads), parses it with net/http's own parser (http.ReadRequest), and, when
// the request is an ordinary one, calls the same handler chain as net/http's server would
// (progressHandler → proxy.Proxy) with a ResponseWriter that writes what net/http's would
// (leanwriter.go). What this saves per request is net/http's server machinery: the background
// read goroutine started and aborted for every request, the response and chunk writers allocated
// per request, the connection state bookkeeping.
//
// Anything else is handed over, with the bytes already read, to the listener's http.Server, on
// the same connection, for the rest of that connection's life: requests with a body, Expect,
// Upgrade (WebSocket, h2c), HTTP/1.0, CONNECT, absolute-form and asterisk targets, a head the
// parser or net/http's extra checks would refuse, a head longer than the read buffer, prior-
// knowledge h2c, and ALPN-h2 TLS connections (never seen by the loop). The hand-over goes through
// this listener's Accept, so http.Server tracks the connection as its own from then on (drain,
// hooks, timeouts).
//
// What the loop keeps of net/http's server: the read header timeout on a connection's first
// request and the idle timeout between requests, Connection: close from either side, keep-alive
// off while draining, HTTP/1.1 pipelining (one request at a time), ConnState hooks, the
// ServerContextKey/LocalAddrContextKey/requestcheck context values, a per-request context
// cancelled when the handler returns or the client goes away (noticed by a one-byte background
// read started only for requests still running after watchAfter), ErrAbortHandler and panic
// handling, and the close of a connection whose response failed or was cut short.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/dataplane/requestcheck"
)

// watchAfter is how long a request runs before the loop starts watching its connection for the
// client going away (net/http watches from the start, at the price of a goroutine per request).
const watchAfter = 100 * time.Millisecond

// leanReadBufferSize is the loop's read buffer; a longer head is handed over to net/http.
const leanReadBufferSize = 4 << 10

var aLongTimeAgo = time.Unix(1, 0)

// leanServer runs the loop for the connections of one listener and is, to srv, that listener:
// Accept returns the connections the loop hands over.
type leanServer struct {
	name  string
	inner net.Listener
	srv   *http.Server

	readHeaderTimeout, idleTimeout time.Duration

	handoff   chan net.Conn
	errc      chan error
	done      chan struct{}
	closeOnce sync.Once
	drainFlag atomic.Bool

	mu    sync.Mutex
	conns map[*leanConn]struct{}
}

func newLeanServer(name string, inner net.Listener, srv *http.Server) *leanServer {
	l := &leanServer{name: name, inner: inner, srv: srv,
		readHeaderTimeout: srv.ReadHeaderTimeout, idleTimeout: srv.IdleTimeout,
		handoff: make(chan net.Conn), errc: make(chan error), done: make(chan struct{}),
		conns: map[*leanConn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *leanServer) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errc <- err: // net/http decides (it retries temporary errors)
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		go l.serveConn(c)
	}
}

// Accept returns the next connection handed over to net/http.
func (l *leanServer) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting (http.Server.Shutdown and Close call it).
func (l *leanServer) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *leanServer) Addr() net.Addr { return l.inner.Addr() }

func (l *leanServer) setState(c net.Conn, st http.ConnState) {
	if l.srv.ConnState != nil {
		l.srv.ConnState(c, st)
	}
}

// serveConn serves one accepted connection: TLS connections that negotiated h2 go to net/http
// at once; everything else starts in the loop.
func (l *leanServer) serveConn(rwc net.Conn) {
	if _, ok := rwc.(*tls.Conn); ok {
		l.handOver(rwc, rwc, false) // net/http must see the *tls.Conn to pick its HTTP/2 server
		return
	}
	c := &leanConn{l: l, rwc: rwc}
	if !l.register(c) {
		_ = rwc.Close()
		return
	}
	l.setState(rwc, http.StateNew)
	c.serve()
}

func (l *leanServer) register(c *leanConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drainFlag.Load() {
		return false // accepted just before the listener closed: net/http would not serve it either
	}
	c.since.Store(time.Now().Unix())
	l.conns[c] = struct{}{}
	return true
}

func (l *leanServer) unregister(c *leanConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// handOver gives a connection to net/http; it is closed if net/http no longer accepts (reported
// says whether the loop told the ConnState hook about it, which then hears of the close).
func (l *leanServer) handOver(rwc net.Conn, rc net.Conn, reported bool) {
	select {
	case l.handoff <- rc:
	case <-l.done:
		_ = rwc.Close()
		if reported {
			l.setState(rwc, http.StateClosed)
		}
	}
}

// drain turns keep-alive off and closes the idle connections until none is left or ctx ends,
// as http.Server.Shutdown does for its own.
func (l *leanServer) drain(ctx context.Context) error {
	l.drainFlag.Store(true)
	const maxPoll = 500 * time.Millisecond
	poll := time.Millisecond
	for {
		if l.closeIdle() {
			return nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		poll = min(2*poll, maxPoll)
	}
}

// closeIdle closes idle connections (and those that never sent a request for 5 s) and reports
// whether none is left.
func (l *leanServer) closeIdle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := time.Now().Unix() - 5
	for c := range l.conns {
		st := http.ConnState(c.state.Load())
		if st == http.StateIdle || st == http.StateNew && c.since.Load() < old {
			_ = c.rwc.Close()
		}
	}
	return len(l.conns) == 0
}

// closeAll closes every connection of the loop (the drain timed out).
func (l *leanServer) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.rwc.Close()
	}
}

func (l *leanServer) draining() bool { return l.drainFlag.Load() }

func (l *leanServer) logf(format string, args ...any) {
	if l.srv.ErrorLog != nil {
		l.srv.ErrorLog.Printf(format, args...)
	}
}

// leanConn is one client connection served by the loop.
type leanConn struct {
	l          *leanServer
	rwc        net.Conn
	remoteAddr string
	tlsState   *tls.ConnectionState
	baseCtx    context.Context
	state      atomic.Int32 // http.ConnState
	since      atomic.Int64 // unix seconds of the last state change to new

	br  *bufio.Reader // client bytes (validated by requestcheck)
	hr  bytes.Reader
	res leanResponse
	// bufw is the connection's write buffer (net/http's conn.bufw); werr its first write error.
	bufw *bufio.Writer
	werr error
	// cancel cancels the context of the request in flight.
	cancel context.CancelFunc
	served bool // a request was served by the loop

	// The client-gone watcher (see watchAfter).
	wtimer   *time.Timer
	wmu      sync.Mutex
	warmed   bool
	wrunning bool
	wabort   bool
	wdone    chan struct{}
	wbuf     [1]byte
	wn       int
	wres     error
	// A byte the watcher read, returned before anything else from the connection.
	bgByte byte
	bgHas  bool
}

func (c *leanConn) draining() bool { return c.l.draining() }

func (c *leanConn) logf(format string, args ...any) { c.l.logf(format, args...) }

// Read is what the read buffer reads from: the watcher's byte first.
type leanSource struct{ c *leanConn }

func (s leanSource) Read(p []byte) (int, error) {
	c := s.c
	if c.bgHas && len(p) > 0 {
		p[0] = c.bgByte
		c.bgHas = false
		return 1, nil
	}
	return c.rwc.Read(p)
}

// leanErrWriter is net/http's checkConnErrorWriter: the first write error is kept and cancels
// the request in flight.
type leanErrWriter struct{ c *leanConn }

func (w leanErrWriter) Write(p []byte) (int, error) {
	n, err := w.c.rwc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		if w.c.cancel != nil {
			w.c.cancel()
		}
	}
	return n, err
}

// parseReaders parse heads (of at most leanReadBufferSize bytes); a connection holds one only
// while it parses.
var parseReaders sync.Pool

var (
	errHandOver  = errors.New("hand over")
	headEnd      = []byte("\r\n\r\n")
	leanBufPools = sync.Pool{New: func() any { return new(leanBufs) }}
)

type leanBufs struct {
	br   *bufio.Reader
	bufw *bufio.Writer
}

func (c *leanConn) serve() {
	rwc := c.rwc
	// As net/http's conn.serve: a panic outside the handler (which serveRequest recovers) ends
	// this connection, never the process. Registered first, so the cleanup below runs before it.
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			const size = 64 << 10
			buf := make([]byte, size)
			buf = buf[:runtime.Stack(buf, false)]
			c.logf("http: panic serving %v: %v\n%s", c.remoteAddr, err, buf)
		}
	}()
	if ra := rwc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	if cs, ok := rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := cs.ConnectionState()
		c.tlsState = &st
	}
	ctx := context.WithValue(context.Background(), http.ServerContextKey, c.l.srv)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, rwc.LocalAddr())
	c.baseCtx = requestcheck.ConnContext(ctx, rwc)

	bufs := leanBufPools.Get().(*leanBufs)
	if bufs.br == nil {
		bufs.br = bufio.NewReaderSize(leanSource{c}, leanReadBufferSize)
		bufs.bufw = bufio.NewWriterSize(leanErrWriter{c}, 4<<10)
	} else {
		bufs.br.Reset(leanSource{c})
		bufs.bufw.Reset(leanErrWriter{c})
	}
	c.br, c.bufw = bufs.br, bufs.bufw
	c.res.conn = c

	handedOver := false
	defer func() {
		if c.wtimer != nil {
			c.wtimer.Stop()
		}
		c.l.unregister(c)
		if !handedOver {
			_ = c.bufw.Flush()
			_ = rwc.Close()
			c.l.setState(rwc, http.StateClosed)
			bufs.br.Reset(nil)
			bufs.bufw.Reset(nil)
			leanBufPools.Put(bufs)
		}
	}()

	deadline := c.l.readHeaderTimeout
	for {
		if deadline > 0 {
			_ = rwc.SetReadDeadline(time.Now().Add(deadline))
		} else {
			_ = rwc.SetReadDeadline(time.Time{})
		}
		n, err := c.readHead()
		if err == errHandOver {
			handedOver = true
			c.handOver()
			return
		}
		if err != nil {
			return
		}
		c.state.Store(int32(http.StateActive))
		c.l.setState(rwc, http.StateActive)
		if c.l.draining() {
			return // as net/http: a request read while shutting down is not served
		}
		req := c.parse(n)
		if req == nil {
			handedOver = true
			c.handOver()
			return
		}
		_, _ = c.br.Discard(n)
		// The head's deadline ends with the head, as in net/http without a ReadTimeout: the
		// client-gone watcher reads during long responses (event streams, long polls), and a
		// deadline left over would read as the client going away and cancel them.
		_ = rwc.SetReadDeadline(time.Time{})
		if !c.serveRequest(req) {
			return
		}
		c.state.Store(int32(http.StateIdle))
		c.l.setState(rwc, http.StateIdle)
		if c.l.draining() {
			return
		}
		deadline = c.l.idleTimeout
	}
}

// readHead waits for a complete head in the read buffer and returns its length.
func (c *leanConn) readHead() (int, error) {
	br := c.br
	for {
		if b, _ := br.Peek(br.Buffered()); len(b) > 0 {
			if i := bytes.Index(b, headEnd); i >= 0 {
				return i + len(headEnd), nil
			}
			if len(b) >= 4 && string(b[:4]) == "PRI " {
				return 0, errHandOver // prior-knowledge h2c (requestcheck let it through)
			}
			if len(b) == br.Size() {
				return 0, errHandOver // longer than our buffer: net/http reads it
			}
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0, err
		}
	}
}

// parse reads the head of length n at the start of the read buffer with net/http's parser and
// returns the request when the loop serves it, nil when net/http must.
func (c *leanConn) parse(n int) *http.Request {
	head, _ := c.br.Peek(n)
	c.hr.Reset(head)
	pr, _ := parseReaders.Get().(*bufio.Reader)
	if pr == nil {
		pr = bufio.NewReaderSize(&c.hr, leanReadBufferSize)
	} else {
		pr.Reset(&c.hr)
	}
	req, err := http.ReadRequest(pr)
	left := pr.Buffered()
	pr.Reset(nil)
	parseReaders.Put(pr)
	c.hr.Reset(nil)
	if err != nil || left != 0 {
		return nil
	}
	if req.ProtoMajor != 1 || req.ProtoMinor != 1 || req.Method == http.MethodConnect ||
		len(req.RequestURI) == 0 || req.RequestURI[0] != '/' ||
		req.Body != http.NoBody || req.ContentLength != 0 || len(req.TransferEncoding) != 0 || len(req.Trailer) != 0 {
		return nil
	}
	if _, ok := req.Header["Expect"]; ok {
		return nil
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return nil
	}
	// net/http's checks after parsing; requestcheck already refused a missing or repeated Host
	// and header names and values net/http would refuse.
	if !httpguts.ValidHostHeader(req.Host) {
		return nil
	}
	return req
}

// serveRequest runs the handler for one request and reports whether the connection can serve
// the next one.
func (c *leanConn) serveRequest(req *http.Request) (reuse bool) {
	ctx, cancel := context.WithCancel(c.baseCtx)
	*req = *req.WithContext(ctx) // the request is ours: set its context in place, no copy kept
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	c.cancel = cancel
	c.served = true
	w := &c.res
	w.reset(req)

	// progressHandler's work for a request without a body is the write deadline; the response
	// does it itself (leanResponse.arm), without the wrappers.
	handler := c.l.srv.Handler
	if ph, ok := handler.(*progressHandler); ok {
		handler, w.writeTimeout = ph.next, ph.writeTimeout
		w.arm()
	}
	c.armWatch(cancel)
	panicked := true
	func() {
		defer func() {
			if !panicked {
				return
			}
			if err := recover(); err != nil && err != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.logf("http: panic serving %v: %v\n%s", c.remoteAddr, err, buf)
			}
		}()
		handler.ServeHTTP(w, req)
		panicked = false
	}()
	c.disarmWatch()
	cancel()
	if panicked {
		// As net/http: what the handler wrote and nobody flushed yet (a header written early,
		// say) never leaves; the connection just closes, and a client may retry.
		c.bufw.Reset(leanErrWriter{c})
		w.release()
		c.cancel = nil
		return false
	}
	w.arm() // as progressHandler: the final flush gets a fresh deadline too
	w.finishRequest()
	c.cancel = nil
	return w.shouldReuseConnection()
}

func (c *leanConn) armWatch(cancel context.CancelFunc) {
	c.wmu.Lock()
	c.warmed = true
	c.wmu.Unlock()
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(watchAfter, c.watch)
	} else {
		c.wtimer.Reset(watchAfter)
	}
}

// watch is net/http's background read, for a request that has been running for watchAfter.
func (c *leanConn) watch() {
	c.wmu.Lock()
	// A callback of an earlier request's timer can fire late, after the next request armed the
	// watch: one watcher at a time, or two reads race in requestcheck and a byte of the next
	// head is lost.
	if !c.warmed || c.wrunning {
		c.wmu.Unlock()
		return
	}
	c.wrunning = true
	done := make(chan struct{})
	c.wdone = done
	cancel := c.cancel
	c.wmu.Unlock()

	n, err := c.rwc.Read(c.wbuf[:])

	c.wmu.Lock()
	c.wn, c.wres = n, err
	gone := err != nil && !c.wabort
	c.wmu.Unlock()
	if gone && cancel != nil {
		cancel() // the client went away: the request's context ends
	}
	close(done)
}

func (c *leanConn) disarmWatch() {
	c.wtimer.Stop()
	c.wmu.Lock()
	c.warmed = false
	running, done := c.wrunning, c.wdone
	c.wabort = running
	c.wmu.Unlock()
	if !running {
		return
	}
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	<-done
	c.wmu.Lock()
	c.wrunning, c.wabort, c.wdone = false, false, nil
	if c.wn == 1 {
		c.bgByte, c.bgHas = c.wbuf[0], true
	}
	c.wmu.Unlock()
}

// handOver gives the connection, with what the loop has read and not consumed, to net/http.
func (c *leanConn) handOver() {
	if c.served {
		// The response write deadline of the last request must not outlive it (net/http clears
		// it after every request; a connection it upgrades has no write deadline).
		_ = c.rwc.SetWriteDeadline(time.Time{})
	}
	_ = c.bufw.Flush()
	var pending []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pending = append(pending, b...)
	}
	if c.bgHas { // read by the watcher after what the buffer holds
		pending = append(pending, c.bgByte)
		c.bgHas = false
	}
	var rc net.Conn
	if cs, ok := c.rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		rc = &replayTLSConn{replayConn{Conn: c.rwc, pending: pending}, cs}
	} else {
		rc = &replayConn{Conn: c.rwc, pending: pending}
	}
	c.l.handOver(c.rwc, rc, true)
}

// replayConn returns the bytes the loop had read before the connection's own.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// replayTLSConn keeps ConnectionState, so that net/http fills Request.TLS.
type replayTLSConn struct {
	replayConn
	cs interface{ ConnectionState() tls.ConnectionState }
}

func (r *replayTLSConn) ConnectionState() tls.ConnectionState { return r.cs.ConnectionState() }

// unwrapReplay returns the connection under a hand-over wrapper.
func unwrapReplay(c net.Conn) (net.Conn, bool) {
	switch r := c.(type) {
	case *replayConn:
		return r.Conn, true
	case *replayTLSConn:
		return r.Conn, true
	}
	return c, false
}
