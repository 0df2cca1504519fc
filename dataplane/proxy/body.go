package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
)

// Request bodies
//
// A declared Content-Length over the route's limit is answered 413 before any upstream is dialed.
// A declared length within it is streamed (net/http enforces the exact length), except that the
// body of an idempotent request on a rule with retries is read ahead when it fits, so that a
// retry can replay it.
//
// A body of unknown length (HTTP/1.1 chunked, HTTP/2 without content-length) is read ahead, up to
// min(limit, Options.BufferBodyBytes), before the upstream is contacted. A body that ends within
// that is forwarded with a Content-Length (chunked again only when it has trailers), so:
//   - a malformed chunk (refused by requestcheck) never reaches the upstream: not even the head;
//   - a body over the limit is a 413 before any dial;
//   - the request can be retried on another endpoint after a connect failure.
//
// Only a body longer than the read-ahead on a route whose limit is higher still is streamed; a bad
// chunk or the limit then aborts the upstream request mid-body, which leaves the upstream with a
// truncated chunked body (no terminating chunk) that no compliant server accepts as a request.

var errBodyTooLarge = errors.New("request body too large")

// statusClientGone asks the handler to record client_closed and write nothing.
const statusClientGone = -1

func bodyLimit(pol *routing.Policy) int64 {
	if pol.MaxRequestBodyBytes > 0 {
		return pol.MaxRequestBodyBytes
	}
	return edgev1alpha1.DefaultMaxRequestBodyBytes
}

// bodyGuard counts the body against the limit and remembers the first read error; the HTTP/1
// transport reads the body from its own goroutine, hence the synchronization.
type bodyGuard struct {
	src       io.ReadCloser
	remaining int64 // only touched by the single reader
	read      atomic.Int64
	tooLarge  atomic.Bool
	mu        sync.Mutex
	firstErr  error
}

func (b *bodyGuard) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	b.remaining -= int64(n)
	b.read.Add(int64(n))
	if b.remaining < 0 {
		b.tooLarge.Store(true)
		return 0, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.firstErr == nil {
			b.firstErr = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyGuard) Close() error { return b.src.Close() }

func (b *bodyGuard) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.firstErr
}

// prepareBody applies the body rules above; a non-zero status is the answer to give.
func (p *Proxy) prepareBody(r *http.Request, c *call, limit int64) (int, string) {
	if r.Body == nil || r.Body == http.NoBody || c.upgrade {
		return 0, ""
	}
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, ReasonBodyTooLarge
	}
	g := &bodyGuard{src: r.Body, remaining: limit}
	c.body, c.ex.body = g, g
	ahead := min(limit, p.opts.BufferBodyBytes)
	if r.ContentLength > 0 && (r.ContentLength > ahead || c.rule.RetryAttempts == 0 || !idempotent(r.Method)) {
		r.Body = g
		return 0, ""
	}
	// Unknown length, or a short body of a request that may be retried: read it ahead.
	data, err := io.ReadAll(io.LimitReader(g, ahead+1))
	if g.tooLarge.Load() {
		return http.StatusRequestEntityTooLarge, ReasonBodyTooLarge
	}
	if err != nil {
		var rej *requestcheck.Rejection
		if errors.As(err, &rej) {
			c.ex.Detail = rej.Detail
			return http.StatusBadRequest, ReasonRejectedRequest // the connection writes the answer
		}
		return statusClientGone, ReasonClientClosed
	}
	if int64(len(data)) <= ahead {
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		if len(r.Trailer) == 0 {
			r.ContentLength = int64(len(data))
			r.TransferEncoding = nil
			if len(data) == 0 {
				r.Body, r.GetBody = http.NoBody, nil
			}
		}
		return 0, ""
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), g), g}
	return 0, ""
}
