package proxy

import (
	"context"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
)

// directDisabled switches the direct path off; tests do, to compare it with ReverseProxy.
var directDisabled atomic.Bool

// direct reports whether a request takes the direct path: no body and no upgrade, the bulk of
// the traffic. Everything else goes through httputil.ReverseProxy.
func direct(r *http.Request, c *call) bool {
	return !directDisabled.Load() && !c.upgrade && c.body == nil && r.ContentLength == 0 &&
		(r.Body == nil || r.Body == http.NoBody) && len(r.Trailer) == 0
}

// informational forwards 1xx responses (103 Early Hints) to the client while the round trip is
// in progress, as ReverseProxy does.
type informational struct {
	mu   sync.Mutex
	done bool
	rw   http.ResponseWriter
}

func (i *informational) got1xx(code int, header textproto.MIMEHeader) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.done {
		return nil
	}
	h := i.rw.Header()
	copyHeader(h, http.Header(header))
	i.rw.WriteHeader(code)
	clear(h) // WriteHeader does not clear them for 1xx responses
	return nil
}

// serveDirect is httputil.ReverseProxy.ServeHTTP (Go 1.26) for a request without a body and
// without an upgrade, with the same steps in the same order and the same answers, minus its
// allocations: one Request copy instead of three, and the outbound header built in one pass
// instead of cloned and then edited. in carries the call in its context.
func (p *Proxy) serveDirect(rw http.ResponseWriter, r *http.Request, c *call, ctx context.Context) {
	// The outbound request: a shallow copy with its own URL and header.
	c.info.rw = rw
	c.trace.Got1xxResponse = c.info.got1xx
	out := r.WithContext(httptrace.WithClientTrace(ctx, &c.trace))
	u := *r.URL
	out.URL = &u
	out.Body, out.GetBody, out.ContentLength, out.TransferEncoding, out.Trailer = nil, nil, 0, nil, nil
	out.Close, out.RequestURI, out.Form, out.PostForm, out.MultipartForm, out.Response = false, "", nil, nil, nil, nil
	out.Header = outboundHeader(r.Header)
	rewriteOut(c, r, out)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // no Go default
	}

	res, err := roundTripper{p}.RoundTrip(out)
	c.info.mu.Lock()
	c.info.done = true
	c.info.mu.Unlock()
	if err != nil {
		p.handleError(rw, out, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Nobody asked for it (upgrades take ReverseProxy): modifyResponse refuses it.
		if err := p.modifyResponse(res); err != nil {
			res.Body.Close()
			p.handleError(rw, out, err)
			return
		}
		res.Body.Close()
		p.handleError(rw, out, errUnexpectedUpgrade)
		return
	}
	removeHopByHop(res.Header)
	if err := p.modifyResponse(res); err != nil {
		res.Body.Close()
		p.handleError(rw, out, err)
		return
	}
	copyHeader(rw.Header(), res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		rw.Header().Add("Trailer", strings.Join(keys, ", "))
	}
	rw.WriteHeader(res.StatusCode)
	if err := copyBody(rw, res.Body, flushAlways(res)); err != nil {
		defer res.Body.Close()
		if r.Context().Value(http.ServerContextKey) == nil {
			return // not under an http.Server (a test's recorder): nobody would recover the panic
		}
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // now, so that res.Trailer is complete
	if len(res.Trailer) > 0 {
		_ = http.NewResponseController(rw).Flush() // force chunking: trailers follow
	}
	if len(res.Trailer) == announced {
		copyHeader(rw.Header(), res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			rw.Header().Add(k, v)
		}
	}
}

// hopHeaders are ReverseProxy's hop-by-hop fields (RFC 9110 and the historical list).
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// outboundHeader is ReverseProxy's header clone, hop-by-hop removal, TE: trailers, and removal of
// the forwarding fields, in one pass. The value slices are shared with the inbound header but
// capacity-capped, so an append (a filter's Add) copies instead of writing into it.
func outboundHeader(in http.Header) http.Header {
	h := make(http.Header, len(in)+8)
	for k, vv := range in {
		if hopHeaders[k] {
			continue
		}
		switch k {
		case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if vv == nil {
			h[k] = nil
			continue
		}
		h[k] = vv[:len(vv):len(vv)]
	}
	for _, f := range in["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		h["Te"] = []string{"trailers"}
	}
	return h
}

func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for f := range hopHeaders {
		delete(h, f)
	}
}

// copyHeader is ReverseProxy's: every value added (the destination may hold CORS fields already).
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		if len(vv) > 0 {
			if _, ok := dst[k]; !ok && k == http.CanonicalHeaderKey(k) {
				dst[k] = vv[:len(vv):len(vv)] // the common case, without a copy per value
				continue
			}
		}
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// flushAlways is ReverseProxy's flush interval of -1: server-sent events and responses of unknown
// length are flushed as they come (its FlushInterval is 0 otherwise: no periodic flush).
func flushAlways(res *http.Response) bool {
	if ct := res.Header.Get("Content-Type"); containsFold(ct, "event-stream") {
		if mt, _, _ := mime.ParseMediaType(ct); mt == "text/event-stream" {
			return true
		}
	}
	return res.ContentLength == -1
}

// copyBody is ReverseProxy's copyResponse and copyBuffer with the shared buffer pool.
func copyBody(rw http.ResponseWriter, src io.Reader, flush bool) error {
	var flusher func() error
	if flush {
		flusher = http.NewResponseController(rw).Flush
		_ = flusher() // the headers go out even if the body is slow to come
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := rw.Write(buf[:nr])
			if flusher != nil {
				_ = flusher() // as ReverseProxy: a failed flush shows in the next write
			}
			if werr != nil {
				return werr
			}
			if nr != nw {
				return io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// containsFold reports whether s contains the lower-case ASCII word, in any case.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
