package requestcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure the checks of a listener's connections.
type Options struct {
	Limits Limits
	// AllowH2CPreface lets a connection that starts with the HTTP/2 client preface through
	// unchecked: prior-knowledge h2c, served by net/http's HTTP/2 server, whose framing is strict.
	AllowH2CPreface bool
	// OnReject, when set, is called once per refused request, just before the answer goes out
	// (or before the connection is closed, when a response had already started).
	OnReject func(r *Rejection, remote net.Addr)
}

// NewListener wraps every accepted connection in a Conn.
func NewListener(l net.Listener, opts Options) net.Listener {
	opts.Limits = opts.Limits.withDefaults()
	return &listener{Listener: l, opts: &opts}
}

type listener struct {
	net.Listener
	opts *Options
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(c, l.opts), nil
}

// NewConn wraps one connection (a *tls.Conn after its handshake, or a plain one). The result
// keeps exposing ConnectionState for TLS connections so net/http fills Request.TLS.
func NewConn(c net.Conn, opts Options) net.Conn {
	opts.Limits = opts.Limits.withDefaults()
	return newConn(c, &opts)
}

func newConn(c net.Conn, opts *Options) net.Conn {
	cc := &Conn{Conn: c, opts: opts, buf: make([]byte, 0, 4<<10), sniffing: opts.AllowH2CPreface}
	cc.in = cc.buf
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsConn{Conn: cc, tls: tc}
	}
	return cc
}

type tlsConn struct {
	*Conn
	tls *tls.Conn
}

// ConnectionState makes net/http set Request.TLS for connections it did not handshake itself.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

type ctxKey struct{}

// ConnContext is an http.Server.ConnContext that makes the Conn reachable from handlers.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch cc := c.(type) {
	case *Conn:
		return context.WithValue(ctx, ctxKey{}, cc)
	case *tlsConn:
		return context.WithValue(ctx, ctxKey{}, cc.Conn)
	}
	return ctx
}

// FromContext returns the Conn a request arrived on, or nil (HTTP/2, or no ConnContext).
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(ctxKey{}).(*Conn)
	return c
}

type state uint8

const (
	stHead state = iota
	stFixed
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
)

const (
	maxBlankLines = 4
	// maxHeld bounds what is buffered while a background read is held (see holdBackgroundRead).
	maxHeld = 256 << 10
)

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// Conn checks the requests read through it. Reads must come from one goroutine at a time (as
// net/http does); Write, Close and Passthrough may be called from others.
type Conn struct {
	net.Conn
	opts *Options

	// Reader state, owned by the reading goroutine.
	buf       []byte
	in        []byte // read from the socket, not yet returned by Read
	ok        int    // in[:ok] is validated
	pos       int    // parse position, >= ok
	lineStart int
	st        state
	remaining int64 // bytes left of a fixed body or of a chunk's data
	hd        head
	tr        head // trailer section of a chunked body
	rerr      error
	sniffing  bool
	requests  int  // heads released
	upgrade   bool // the last released head asked for a protocol upgrade
	// newHead is set when a head is released to a one-byte read and cleared by the next read of
	// more than one byte: that read is net/http reading the request itself, which it does only
	// once the previous response is complete. A head released early, to net/http's one-byte background read while
	// the previous request is in flight, must not count that request's response as its own.
	newHead bool
	readLen int // len(p) of the Read in progress

	passthrough atomic.Bool

	mu           sync.Mutex
	rej          *Rejection
	rejDelivered bool  // the reader has been told; writes are swallowed from then on
	written      int64 // bytes written since the last head was released, 100 Continue excluded
	closed       bool
}

// Passthrough stops checking: the connection now carries another protocol (after a 101 Switching
// Protocols). A refusal found in bytes that were really the new protocol's is forgotten.
func (c *Conn) Passthrough() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.passthrough.Store(true)
	if !c.rejDelivered {
		c.rej = nil
	}
}

// Read returns validated bytes only.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readLen = len(p)
	if c.newHead && len(p) > 1 {
		c.newHead = false
		c.mu.Lock()
		c.written = 0
		c.mu.Unlock()
	}
	for {
		if c.passthrough.Load() {
			return c.readRaw(p)
		}
		if c.ok > 0 {
			n := copy(p, c.in[:c.ok])
			c.consume(n)
			return n, nil
		}
		if rej := c.pending(); rej != nil {
			return c.deliver(p, rej)
		}
		if c.sniffing {
			if done, err := c.sniff(); !done {
				return 0, err
			}
			continue
		}
		if c.st == stHead && len(p) == 1 && c.upgrade && c.requests > 0 {
			// Whatever follows an upgrade request may be the new protocol, and ReverseProxy ignores
			// what net/http buffered before hijacking; keep it here for the raw reader.
			return c.holdBackgroundRead()
		}
		progressed, rej := c.advance()
		if rej != nil {
			c.mu.Lock()
			c.rej = rej
			c.mu.Unlock()
			continue
		}
		if progressed {
			continue
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if (c.st == stFixed || c.st == stChunkData) && len(c.in) == 0 {
			// Body bytes need no buffering: read them straight into p.
			want := int64(len(p))
			if want > c.remaining {
				want = c.remaining
			}
			n, err := c.Conn.Read(p[:want])
			if n > 0 {
				c.remaining -= int64(n)
				if c.remaining == 0 {
					c.dataDone()
				}
				return n, nil
			}
			if err != nil {
				return 0, c.readErr(err)
			}
			continue
		}
		if n, err := c.fill(); n == 0 && err != nil {
			return 0, c.readErr(err)
		}
	}
}

// readErr keeps non-timeout errors sticky; a timeout is a deadline that may be moved.
func (c *Conn) readErr(err error) error {
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.rerr = err
	}
	return err
}

func (c *Conn) readRaw(p []byte) (int, error) {
	if len(c.in) > 0 {
		n := copy(p, c.in)
		c.in = c.in[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *Conn) consume(n int) {
	c.in = c.in[n:]
	c.ok -= n
	c.pos -= n
	c.lineStart -= n
}

// fill reads more from the socket into in, compacting or growing the buffer as needed.
func (c *Conn) fill() (int, error) {
	const minRead = 2 << 10
	if len(c.in) == 0 {
		c.in = c.buf[:0]
	}
	if cap(c.in)-len(c.in) < minRead {
		if len(c.in)+minRead <= cap(c.buf) {
			c.in = c.buf[:copy(c.buf[:cap(c.buf)], c.in)]
		} else {
			nb := make([]byte, len(c.in), 2*(len(c.in)+minRead))
			copy(nb, c.in)
			c.buf, c.in = nb, nb
		}
	}
	n, err := c.Conn.Read(c.in[len(c.in):cap(c.in)])
	c.in = c.in[:len(c.in)+n]
	return n, err
}

// sniff decides whether the connection starts with the HTTP/2 preface.
func (c *Conn) sniff() (done bool, err error) {
	for {
		n := min(len(c.in), len(h2Preface))
		if !bytes.Equal(c.in[:n], h2Preface[:n]) {
			c.sniffing = false
			return true, nil
		}
		if n == len(h2Preface) {
			c.sniffing = false
			c.passthrough.Store(true)
			return true, nil
		}
		if m, err := c.fill(); m == 0 && err != nil {
			return false, c.readErr(err)
		}
	}
}

func (c *Conn) pending() *Rejection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rej
}

// deliver tells the reader about a refusal. A refused head is reported as a clean EOF, so that
// net/http closes the connection without answering (Close answers); a refused chunk is reported
// as the *Rejection, which the handler reading the body sees.
func (c *Conn) deliver(p []byte, rej *Rejection) (int, error) {
	c.mu.Lock()
	first := !c.rejDelivered
	if first && !rej.InBody && len(p) == 1 && c.requests > 0 {
		c.mu.Unlock()
		return c.holdBackgroundRead()
	}
	if first {
		c.rejDelivered = true
		if !rej.InBody {
			// net/http reads the next head only once the previous response is complete.
			c.written = 0
		}
	}
	c.mu.Unlock()
	if first && rej.InBody {
		return 0, rej
	}
	return 0, io.EOF
}

// holdBackgroundRead serves net/http's one-byte background read, made while a handler runs to
// notice a client going away. Answering it with a refusal (or with bytes of an upgraded stream)
// would cancel the request in flight or lose data, so it blocks until net/http aborts it with a
// past read deadline, or the client goes away. Bytes that arrive meanwhile are kept.
func (c *Conn) holdBackgroundRead() (int, error) {
	for {
		n, err := c.fill()
		if err != nil {
			return 0, c.readErr(err)
		}
		if n > 0 && len(c.in) > maxHeld {
			return 0, c.readErr(errors.New("requestcheck: too much data while a request is in flight"))
		}
	}
}

// advance validates buffered bytes. It reports whether anything changed.
func (c *Conn) advance() (bool, *Rejection) {
	lim := &c.opts.Limits
	switch c.st {
	case stHead:
		if c.ok > 0 {
			return false, nil // deliver the previous request first
		}
		return c.advanceHead(lim)
	case stFixed, stChunkData:
		avail := int64(len(c.in) - c.pos)
		if avail == 0 {
			return false, nil
		}
		n := min(avail, c.remaining)
		c.pos += int(n)
		c.ok = c.pos
		c.remaining -= n
		if c.remaining == 0 {
			c.dataDone()
		}
		return true, nil
	case stChunkCRLF:
		avail := c.in[c.pos:]
		if len(avail) > 0 && avail[0] != '\r' || len(avail) > 1 && avail[1] != '\n' {
			return false, inBody(errChunkCRLF)
		}
		if len(avail) < 2 {
			return false, nil
		}
		c.pos += 2
		c.ok = c.pos
		c.st, c.lineStart = stChunkSize, c.pos
		return true, nil
	case stChunkSize:
		line, rej := c.nextLine(maxChunkLine, errChunkTooLong)
		if rej != nil || line == nil {
			return false, inBody(rej)
		}
		size, rej := parseChunkSize(line)
		if rej != nil {
			return false, inBody(rej)
		}
		c.ok = c.pos
		if size == 0 {
			c.st, c.tr = stTrailer, head{}
		} else {
			c.st, c.remaining = stChunkData, size
		}
		return true, nil
	case stTrailer:
		line, rej := c.nextLine(maxTrailerBytes-c.tr.headerBytes, errTrailerTooLarge)
		if rej != nil || line == nil {
			return false, inBody(rej)
		}
		c.tr.headerBytes += len(line) + 2
		if c.tr.headerBytes > maxTrailerBytes {
			return false, inBody(errTrailerTooLarge)
		}
		if len(line) > 0 {
			if rej := c.tr.headerLine(line, lim, true); rej != nil {
				return false, inBody(rej)
			}
		} else {
			c.st = stHead
		}
		c.ok = c.pos
		return true, nil
	}
	return false, nil
}

func inBody(r *Rejection) *Rejection {
	if r == nil {
		return nil
	}
	cp := *r
	cp.InBody = true
	return &cp
}

func (c *Conn) dataDone() {
	c.lineStart = c.pos
	if c.st == stChunkData {
		c.st = stChunkCRLF
	} else {
		c.st = stHead
	}
}

// nextLine returns the next complete CRLF-terminated line (without CRLF) starting at lineStart,
// advancing pos past it, or nil when more bytes are needed. A line longer than max is refused
// with tooLong even before its end arrives.
func (c *Conn) nextLine(max int, tooLong *Rejection) ([]byte, *Rejection) {
	i := bytes.IndexByte(c.in[c.pos:], '\n')
	if i < 0 {
		if len(c.in)-c.lineStart > max {
			return nil, tooLong
		}
		c.pos = len(c.in)
		return nil, nil
	}
	nl := c.pos + i
	if nl == c.lineStart || c.in[nl-1] != '\r' {
		return nil, errBareLF
	}
	line := c.in[c.lineStart : nl-1]
	if nl-1-c.lineStart > max {
		return nil, tooLong
	}
	if rej := checkLine(line); rej != nil {
		return nil, rej
	}
	c.pos = nl + 1
	c.lineStart = c.pos
	return line, nil
}

// advanceHead parses lines of the head starting at in[0] (ok is 0 here).
func (c *Conn) advanceHead(lim *Limits) (bool, *Rejection) {
	progressed := false
	for {
		if c.hd.lines == 0 {
			line, rej := c.nextLine(lim.MaxTarget+1024, errTargetTooLong)
			if rej != nil || line == nil {
				return progressed, rej
			}
			progressed = true
			if len(line) == 0 {
				// RFC 9112 2.2: ignore empty lines before the request line; drop them so net/http
				// does not see them either.
				c.hd.blankBefore++
				if c.hd.blankBefore > maxBlankLines {
					return true, errTooManyBlankLines
				}
				c.consume(c.pos)
				continue
			}
			c.hd.lines++
			if rej := c.hd.requestLine(line, lim); rej != nil {
				return true, rej
			}
			continue
		}
		line, rej := c.nextLine(lim.MaxHeaderBytes-c.hd.headerBytes, errHeadersTooLarge)
		if rej != nil || line == nil {
			return progressed, rej
		}
		progressed = true
		c.hd.lines++
		c.hd.headerBytes += len(line) + 2
		if c.hd.headerBytes > lim.MaxHeaderBytes {
			return true, errHeadersTooLarge
		}
		if len(line) > 0 {
			if rej := c.hd.headerLine(line, lim, false); rej != nil {
				return true, rej
			}
			continue
		}
		if rej := c.hd.finish(); rej != nil {
			return true, rej
		}
		// The head is complete and valid: release it.
		c.ok = c.pos
		c.requests++
		c.newHead = c.readLen == 1
		c.upgrade = c.hd.upgrade
		kind, n := c.hd.framing()
		c.hd = head{}
		switch kind {
		case bodyFixed:
			c.st, c.remaining = stFixed, n
		case bodyChunked:
			c.st, c.lineStart = stChunkSize, c.pos
		default:
			c.st = stHead
		}
		c.mu.Lock()
		c.written = 0
		c.mu.Unlock()
		return true, nil
	}
}

var continueResponse = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// Write passes responses through, except after a refusal was delivered: then the connection
// answers on its own in Close, and whatever net/http or a handler still writes is dropped.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.rejDelivered {
		c.mu.Unlock()
		return len(p), nil
	}
	if !bytes.Equal(p, continueResponse) {
		c.written += int64(len(p))
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Close answers a refused request, if no response to it has started, and closes.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	rej := c.rej
	answer := rej != nil && !c.passthrough.Load() && (!rej.InBody || c.written == 0)
	c.mu.Unlock()
	if rej != nil {
		if c.opts.OnReject != nil {
			c.opts.OnReject(rej, c.Conn.RemoteAddr())
		}
		if answer {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Conn.Write(rej.response()); err == nil {
				c.linger()
			}
		}
	}
	return c.Conn.Close()
}

// linger half-closes and drains briefly: closing a socket with unread input makes the kernel send
// a reset, which can destroy the answer before the client reads it.
func (c *Conn) linger() {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 256<<10))
}
