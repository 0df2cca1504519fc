package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progressHandler enforces the "no progress" deadlines of security-defaults.md on every request,
// HTTP/1 and HTTP/2 alike, through http.ResponseController (per-connection deadlines on HTTP/1,
// per-stream on HTTP/2):
//
//   - a request body that stops arriving for bodyTimeout is cut; when no response has started,
//     the client gets 408 and the connection is closed;
//   - a client that stops reading the response for writeTimeout is cut (its write fails), so a
//     slow reader cannot hold a goroutine, a buffer and an upstream connection forever.
//
// Both deadlines are re-armed before every read and write, so a long body or response that keeps
// moving is never cut. Protocol upgrades (WebSocket) are left alone: they are hijacked and have
// their own lifetimes. A timeout <= 0 disables that deadline.
type progressHandler struct {
	next                      http.Handler
	bodyTimeout, writeTimeout time.Duration
}

func (h *progressHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		h.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	pw := &progressWriter{ResponseWriter: w, rc: rc, timeout: h.writeTimeout}
	pw.arm()
	var body *progressBody
	if h.bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
		body = &progressBody{src: r.Body, rc: rc, timeout: h.bodyTimeout}
		r.Body = body
	}
	h.next.ServeHTTP(pw, r)
	if body != nil && body.timedOut.Load() && !pw.wrote.Load() {
		pw.Header().Set("Connection", "close")
		pw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		pw.WriteHeader(http.StatusRequestTimeout)
		_, _ = io.WriteString(pw, "request body timeout\n")
	}
	if body != nil && !body.finish() {
		// net/http reads an unread body of up to 256 KiB after the handler returns, to reuse the
		// connection, with no deadline of its own: a client that declared a body and never sends
		// it would hold the connection forever. A response that closes the connection needs no
		// body at all; otherwise the discard gets the body deadline.
		d := time.Now().Add(h.bodyTimeout)
		if strings.EqualFold(pw.Header().Get("Connection"), "close") {
			d = time.Now()
		}
		_ = rc.SetReadDeadline(d)
	}
	// net/http flushes the buffered response after the handler returns: give that write a
	// fresh deadline too.
	pw.arm()
}

// progressBody re-arms the read deadline before every read of the body and clears it at the end,
// so that net/http's background read (started once the body is consumed) is not cut later. The
// body may be read from another goroutine (the upstream transport's) even after the handler
// returned, when the ResponseController must not be used any more: finish marks that point.
type progressBody struct {
	src      io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	timedOut atomic.Bool

	mu       sync.Mutex
	done     bool // EOF or an error was read
	finished bool // the handler returned
}

func (b *progressBody) Read(p []byte) (int, error) {
	b.deadline(time.Now().Add(b.timeout), false)
	n, err := b.src.Read(p)
	switch {
	case err == io.EOF:
		b.deadline(time.Time{}, true)
	case err != nil:
		// A failed body is never read again: a deadline in the past makes net/http's discard
		// of the rest (after the handler returns) fail at once, and the connection close.
		b.timedOut.Store(errors.Is(err, os.ErrDeadlineExceeded))
		b.deadline(time.Now(), true)
	}
	return n, err
}

func (b *progressBody) deadline(t time.Time, done bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done && !b.finished {
		_ = b.rc.SetReadDeadline(t)
	}
	b.done = b.done || done
}

// finish is called by the handler before it returns; it reports whether the body was read to its
// end (or failed).
func (b *progressBody) finish() (done bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = true
	return b.done
}

func (b *progressBody) Close() error { return b.src.Close() }

// progressWriter re-arms the write deadline before every write and flush. It unwraps for
// http.ResponseController and keeps Flush and Hijack for callers that type-assert.
//
// Re-arming moves a timer of the runtime's poller, so it is skipped when the deadline was set
// less than timeout/64 ago (the header, the body and the final flush of a small response are one
// arm, not four): a client is then cut after no progress for between 63/64 of the timeout and
// the timeout.
type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	wrote   atomic.Bool
	armedAt atomic.Int64 // UnixNano of the last arm, 0 before the first
}

func (w *progressWriter) arm() {
	if w.timeout <= 0 {
		return
	}
	now := time.Now()
	if last := w.armedAt.Load(); last != 0 && now.UnixNano()-last < int64(w.timeout/64) {
		return
	}
	w.armedAt.Store(now.UnixNano())
	_ = w.rc.SetWriteDeadline(now.Add(w.timeout))
}

func (w *progressWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote.Store(true)
	}
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.wrote.Store(true)
	w.arm()
	return w.ResponseWriter.Write(p)
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *progressWriter) Flush() {
	w.arm()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *progressWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
