package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// oddBackend answers with every kind of response framing the proxy can forward.
func oddBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		q := r.URL.Query()
		h := w.Header()
		h.Set("X-Method", r.Method)
		h.Set("X-Conn", r.Header.Get("Connection"))
		switch r.URL.Path {
		case "/status":
			code, _ := strconv.Atoi(q.Get("code"))
			if q.Get("ct") != "" {
				h.Set("Content-Type", q.Get("ct"))
			}
			w.WriteHeader(code)
			if q.Get("body") != "" {
				_, _ = io.WriteString(w, q.Get("body"))
			}
		case "/nocl": // small, no Content-Length, no Content-Type: sniffed and measured
			_, _ = io.WriteString(w, "<html><body>hello</body></html>")
		case "/big": // unknown length, more than a buffer: chunked
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(200)
			for i := 0; i < 50; i++ {
				_, _ = fmt.Fprintf(w, "%04d %s\n", i, strings.Repeat("x", 200))
				if i%10 == 0 {
					w.(http.Flusher).Flush()
				}
			}
		case "/cl":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", "6")
			_, _ = io.WriteString(w, "fixed\n")
		case "/trailer":
			h.Set("Trailer", "X-Sum")
			h.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "body\n")
			h.Set("X-Sum", "42")
		case "/undeclared-trailer":
			h.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "body\n")
			w.(http.Flusher).Flush()
			h.Set(http.TrailerPrefix+"X-Late", "yes")
		case "/hints":
			h.Add("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			h.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "after hints\n")
		case "/sse":
			h.Set("Content-Type", "text/event-stream")
			for i := 0; i < 3; i++ {
				_, _ = fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		case "/close":
			h.Set("Connection", "close")
			h.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "bye\n")
		case "/empty":
		case "/headlen":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", "10")
			if r.Method != http.MethodHead {
				_, _ = io.WriteString(w, "0123456789")
			}
		case "/identity":
			h.Set("Transfer-Encoding", "identity")
			_, _ = io.WriteString(w, "identity body")
		case "/short": // declares more than it sends: the upstream breaks the exchange
			h.Set("Content-Length", "100")
			_, _ = io.WriteString(w, "short")
			panic(http.ErrAbortHandler)
		case "/sleep":
			d, _ := time.ParseDuration(q.Get("d"))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "slept\n")
		default:
			h.Set("Content-Type", "text/plain")
			body, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s %s %s len=%d body=%q\n", r.Method, r.RequestURI, r.Proto, r.ContentLength, body)
			// What the proxy forwarded, request ID aside (random): forwarding fields, filters,
			// hop-by-hop removal.
			hdr := r.Header.Clone()
			if hdr.Get("X-Request-Id") != "" {
				hdr.Set("X-Request-Id", "set")
			}
			_ = hdr.Write(w)
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &n
}

const leanRoutes = `
metadata: {name: app}
spec:
  hostnames: [app.example]
  tls: [{secretName: app-tls}]
  policy: {websocket: true, maxRequestBodySize: "64"}
  rules:
  - backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: other.example, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /hdr}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Added, value: "1"}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: X-Resp, value: "2"}]}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /none}}]
    backendRefs: [{name: none, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /down}}]
    backendRefs: [{name: down, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: app, port: 80}]
`

// oddApp is a data plane with config cfg serving route appRoute from oddBackend.
func oddApp(t *testing.T, cfg server.Config) *dpt.Harness {
	t.Helper()
	h := dpt.Start(t, dpt.Options{Server: cfg})
	be, _ := oddBackend(t)
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, be.URL)}})
	h.Apply(t, dpt.Routes(t, appRoute), nil, proxy.Settings{})
	return h
}

// pair starts two data planes on the same backend, one with the lean loop (the default) and
// one without.
func leanPair(t *testing.T, cfg server.Config, logs ...*exchangeLog) (lean, std *dpt.Harness, ca *dpt.CA, hits *atomic.Int64) {
	t.Helper()
	be, n := oddBackend(t)
	ca = dpt.NewCA(t)
	_, _, cert := ca.Issue(t, "app.example")
	start := func(disable bool) *dpt.Harness {
		c := cfg
		c.DisableLeanHTTP1 = disable
		var o proxy.Options
		if i := map[bool]int{false: 0, true: 1}[disable]; i < len(logs) {
			o.Observer = logs[i]
		}
		h := dpt.Start(t, dpt.Options{Server: c, Proxy: o})
		h.Dataplane.SetEndpoints(upstream.Endpoints{
			dpt.Key("app"):  {dpt.EndpointOf(t, be.URL)},
			dpt.Key("down"): {dpt.EndpointOf(t, dpt.ClosedPort(t))},
		})
		h.Apply(t, dpt.Routes(t, leanRoutes), tlsstore.Keypairs{secret("app-tls"): cert}, proxy.Settings{})
		return h
	}
	return start(false), start(true), ca, n
}

var (
	dateRe = regexp.MustCompile(`(?m)^Date: .*\r$`)
	ridRe  = regexp.MustCompile(`(?mi)(X-Request-Id: |X-Request-Id[^\n]*?)[0-9a-f-]{16,}`)
	ridQ   = regexp.MustCompile(`[0-9a-f]{32}`)
)

func normalize(s string) string {
	s = dateRe.ReplaceAllString(s, "Date: D\r")
	s = ridRe.ReplaceAllString(s, "${1}RID")
	return ridQ.ReplaceAllString(s, "RID")
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "..."
	}
	return s
}

// requestMethods lists the methods of the requests in raw, as far as they parse.
func requestMethods(raw string) []string {
	var out []string
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		out = append(out, req.Method)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
	}
}

// render parses the responses in out (chunk boundaries depend on timing) into a comparable form:
// status, header fields in order of name (Date and request IDs masked), body, trailers.
func render(out string, methods []string) string {
	var b strings.Builder
	br := bufio.NewReader(strings.NewReader(out))
	for i := 0; ; {
		m := "GET"
		if i < len(methods) {
			m = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&b, "END %v %q\n", err == io.EOF, rest)
			return normalize(b.String())
		}
		body, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&b, "%s %d len=%d te=%v close=%v\n", resp.Proto, resp.StatusCode, resp.ContentLength, resp.TransferEncoding, resp.Close)
		_ = resp.Header.Write(&b)
		fmt.Fprintf(&b, "body %q err=%v\n", body, err)
		if len(resp.Trailer) > 0 {
			_ = resp.Trailer.Write(&b)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == 101 {
			i++
		}
		if resp.StatusCode == 101 {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&b, "UPGRADED %q\n", rest)
			return normalize(b.String())
		}
	}
}

// exchange writes raw on a new connection (plain, or TLS when cfg is set) and returns everything
// the server sent until it closed the connection or stayed silent for quiet.
func exchange(t *testing.T, addr string, cfg *tls.Config, raw string, quiet time.Duration) (string, bool) {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.Dial("tcp", addr, cfg)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = io.WriteString(c, raw) }()
	var out []byte
	buf := make([]byte, 32<<10)
	closed := false
	for {
		// Silence ends the exchange, but only after the first answer had time to come: on a
		// loaded machine a TLS handshake and a slow request can take longer than quiet.
		wait := quiet
		if len(out) == 0 {
			wait = 4 * quiet
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				closed = true
			}
			break
		}
	}
	return string(out), closed
}

// exchangeLog keeps what the access log and the metrics read of every exchange.
type exchangeLog struct {
	mu  sync.Mutex
	out []string
}

func (l *exchangeLog) Observe(e *proxy.Exchange) {
	line := fmt.Sprintf("%s %s %s %s tls=%v client=%v status=%d up=%d reason=%s detail=%s bytes=%d read=%d attempts=%d",
		e.Method, e.Host, e.Path, e.Proto, e.TLS, e.ClientIP, e.Status, e.UpstreamStatus, e.Reason, e.Detail,
		e.BytesWritten, e.BytesRead, e.Attempts)
	l.mu.Lock()
	l.out = append(l.out, line)
	l.mu.Unlock()
}

func (l *exchangeLog) sorted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.out)
	slices.Sort(out)
	return out
}

// TestLeanMatchesNetHTTP sends the same byte sequences to a data plane with the lean loop and to
// one without and requires the same bytes back (Date and request IDs aside) and the same
// connection fate.
func TestLeanMatchesNetHTTP(t *testing.T) {
	var leanLog, stdLog exchangeLog
	lean, std, ca, _ := leanPair(t, server.Config{}, &leanLog, &stdLog)
	t.Cleanup(func() {
		// Every exchange was observed alike (access log, metrics), once the connections are done.
		time.Sleep(200 * time.Millisecond)
		a, b := leanLog.sorted(), stdLog.sorted()
		if !slices.Equal(a, b) {
			t.Errorf("observed exchanges differ:\n--- lean:\n%s\n--- net/http:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
		t.Logf("%d exchanges observed alike", len(a))
		if len(a) < 100 {
			t.Errorf("only %d exchanges observed", len(a))
		}
	})
	get := func(path string, extra ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: app.example\r\n" + strings.Join(extra, "") + "\r\n"
	}
	req := func(method, path string, extra ...string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: app.example\r\n" + strings.Join(extra, "") + "\r\n"
	}
	end := get("/end", "Connection: close\r\n")
	cases := map[string]string{
		"keep-alive GETs":       get("/a") + get("/b?x=1") + end,
		"HEAD":                  req("HEAD", "/headlen") + req("HEAD", "/nocl") + req("HEAD", "/a") + end,
		"POST without body":     req("POST", "/p") + req("POST", "/p", "Content-Length: 0\r\n") + end,
		"DELETE OPTIONS PUT":    req("DELETE", "/d") + req("OPTIONS", "/o") + req("PUT", "/u", "Content-Length: 0\r\n") + end,
		"statuses":              get("/status?code=204") + get("/status?code=304") + get("/status?code=404&body=nf") + get("/status?code=500&ct=text/plain&body=x") + get("/status?code=299") + end,
		"sniffed short body":    get("/nocl") + get("/empty") + end,
		"chunked big":           get("/big") + end,
		"fixed":                 get("/cl") + get("/cl") + end,
		"trailers":              get("/trailer") + get("/undeclared-trailer") + end,
		"1xx early hints":       get("/hints") + end,
		"event stream":          get("/sse") + end,
		"upstream close":        get("/close") + get("/a"),
		"client close":          get("/a", "Connection: close\r\n") + get("/b"),
		"client close mixed":    get("/a", "Connection: keep-alive, close\r\n") + get("/b"),
		"identity":              get("/identity") + get("/a"),
		"pipelined burst":       strings.Repeat(get("/p"), 20) + end,
		"redirect filter":       get("/moved/x") + end,
		"header filters":        get("/hdr/x", "X-Forwarded-For: 1.2.3.4\r\nConnection: X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\n") + end,
		"404 unknown host":      "GET / HTTP/1.1\r\nHost: nobody.example\r\n\r\n" + end,
		"503 no endpoints":      get("/none") + end,
		"502 refused":           get("/down") + end,
		"504 timeout":           get("/slow/sleep?d=2s") + end,
		"broken upstream body":  get("/short") + get("/a"),
		"413 declared":          req("POST", "/p", "Content-Length: 100\r\n") + strings.Repeat("x", 100) + get("/a"),
		"body then lean":        req("POST", "/p", "Content-Length: 5\r\n") + "hello" + get("/a") + end,
		"lean then body":        get("/a") + req("POST", "/p", "Content-Length: 5\r\n") + "hello" + get("/b") + end,
		"chunked request":       get("/a") + req("POST", "/p", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n" + get("/b") + end,
		"expect":                get("/a") + req("POST", "/p", "Content-Length: 5\r\nExpect: 100-continue\r\n") + "hello" + end,
		"HTTP/1.0":              get("/a") + "GET /b HTTP/1.0\r\nHost: app.example\r\n\r\n",
		"HTTP/1.0 keep-alive":   "GET /b HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n" + end,
		"absolute form":         get("/a") + "GET http://app.example/abs HTTP/1.1\r\nHost: app.example\r\n\r\n" + end,
		"asterisk":              "OPTIONS * HTTP/1.1\r\nHost: app.example\r\n\r\n" + end,
		"h2c upgrade stripped":  get("/a", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n") + end,
		"refused after lean":    get("/a") + "GET /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"refused pipelined":     get("/a") + get("/b") + "GET /x HTTP/1.1\r\nHost: app.example\r\nX_Bad: 1\r\n\r\n",
		"refused behind slow":   get("/sleep?d=300ms") + "GET /x HTTP/1.1\r\nHost: app.example\r\nX_Bad: 1\r\n\r\n",
		"pipelined behind slow": get("/sleep?d=300ms") + get("/a") + get("/b") + end,
		"body behind slow":      get("/sleep?d=300ms") + req("POST", "/p", "Content-Length: 5\r\n") + "hello" + get("/b") + end,
		"bad path after lean":   get("/a") + get("/%2e%2e/%2fetc") + end,
		"encoded slash":         get("/a%2Fb") + end,
		"dot segments":          get("/a/../b/./c//d") + end,
		"query":                 get("/q?a=b&c=%20d") + end,
		"long header":           get("/a", "X-Long: "+strings.Repeat("v", 5000)+"\r\n") + get("/b") + end,
		"big head after lean":   get("/a") + get("/b", "X-Long: "+strings.Repeat("v", 5000)+"\r\n") + get("/c") + end,
		"websocket handshake":   get("/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n") + end,
		"leading blank lines":   "\r\n\r\n" + get("/a") + end,
		"forwarding headers":    get("/f", "X-Forwarded-For: 9.9.9.9\r\nForwarded: for=1.1.1.1\r\nX-Real-Ip: 1.1.1.1\r\nX-Request-Id: abc\r\n") + end,
		"many values":           get("/m", "Accept: a\r\nAccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n") + end,
		"misdirected over http": get("/a") + end,
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "app.example", NextProtos: []string{"http/1.1"}}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			quiet := 700 * time.Millisecond
			for _, tc := range []struct {
				proto         string
				leanAddr, std string
				cfg           *tls.Config
			}{{"http", lean.HTTP, std.HTTP, nil}, {"https", lean.HTTPS, std.HTTPS, tlsCfg}} {
				var gotLean, gotStd string
				var closedLean, closedStd bool
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); gotLean, closedLean = exchange(t, tc.leanAddr, tc.cfg, raw, quiet) }()
				go func() { defer wg.Done(); gotStd, closedStd = exchange(t, tc.std, tc.cfg, raw, quiet) }()
				wg.Wait()
				methods := requestMethods(raw)
				// The two data planes listen on different ports (X-Forwarded-Port, redirects).
				_, lp, _ := net.SplitHostPort(tc.leanAddr)
				_, sp, _ := net.SplitHostPort(tc.std)
				gotLean, gotStd = strings.ReplaceAll(gotLean, lp, strings.Repeat("P", len(lp))), strings.ReplaceAll(gotStd, sp, strings.Repeat("P", len(sp)))
				if a, b := render(gotLean, methods), render(gotStd, methods); a != b {
					t.Errorf("%s: lean and net/http differ\n--- lean:\n%s\n--- net/http:\n%s", tc.proto, clip(a), clip(b))
				}
				if closedLean != closedStd {
					t.Errorf("%s: connection closed: lean %v, net/http %v", tc.proto, closedLean, closedStd)
				}
			}
		})
	}
}

// readResponses reads n responses from br.
func readResponses(t *testing.T, br *bufio.Reader, method string, n int) []*http.Response {
	t.Helper()
	var out []*http.Response
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
	return out
}

// A client that goes away while its request waits for the upstream cancels the upstream request
// (the watcher starts after watchAfter).
func TestLeanClientGoneCancelsUpstream(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	var cancelled atomic.Bool
	started := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled.Store(true)
		case <-time.After(10 * time.Second):
		}
	}))
	defer be.Close()
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, be.URL)}})
	h.Apply(t, dpt.Routes(t, appRoute), nil, proxy.Settings{})
	c, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: app.example\r\n\r\n")
	<-started
	time.Sleep(150 * time.Millisecond)
	c.Close()
	eventually(t, 3*time.Second, "the upstream request to be cancelled", cancelled.Load)
	eventually(t, 3*time.Second, "no request in flight", func() bool { return h.Proxy.InFlight() == 0 })
}

// Pipelined requests that arrive while a slow one is in flight (read by the watcher) are served
// in order after it.
func TestLeanPipelinedBehindSlowRequest(t *testing.T) {
	h := oddApp(t, server.Config{})
	c, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /sleep?d=300ms HTTP/1.1\r\nHost: app.example\r\n\r\n")
	time.Sleep(150 * time.Millisecond) // the watcher is reading now
	_, _ = io.WriteString(c, "GET /one HTTP/1.1\r\nHost: app.example\r\n\r\nGET /two HTTP/1.1\r\nHost: app.example\r\n\r\n")
	br := bufio.NewReader(c)
	var bodies []string
	for i := 0; i < 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, string(b))
	}
	if bodies[0] != "slept\n" || !strings.HasPrefix(bodies[1], "GET /one") || !strings.HasPrefix(bodies[2], "GET /two") {
		t.Errorf("responses out of order: %q", bodies)
	}
}

// A WebSocket upgrade after lean requests on the same connection is handed over to net/http and
// works; the write deadline of the lean requests does not cut it.
func TestLeanHandOverWebSocket(t *testing.T) {
	h := dpt.Start(t, dpt.Options{Server: server.Config{ResponseWriteTimeout: 300 * time.Millisecond}})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: app}
spec:
  hostnames: [app.example]
  policy: {websocket: true}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), nil, proxy.Settings{})
	c, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n")
	readResponses(t, br, "GET", 1)
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://app.example\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	time.Sleep(600 * time.Millisecond) // longer than the response write timeout
	// A masked text frame "hi".
	_, _ = c.Write([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2})
	frame := make([]byte, 4)
	if _, err := io.ReadFull(br, frame); err != nil || string(frame[2:]) != "hi" {
		t.Fatalf("echo frame %q: %v", frame, err)
	}
}

// The first request of a connection gets the read header timeout, later ones the idle timeout.
func TestLeanTimeouts(t *testing.T) {
	h := oddApp(t, server.Config{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	closedAfter := func(write func(net.Conn)) time.Duration {
		c, err := net.Dial("tcp", h.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		write(c)
		start := time.Now()
		_, _ = io.Copy(io.Discard, c)
		return time.Since(start)
	}
	if d := closedAfter(func(c net.Conn) { _, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHo") }); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("partial first head closed after %v, want ~300ms", d)
	}
	if d := closedAfter(func(c net.Conn) {
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
		readResponses(t, bufio.NewReader(c), "GET", 1)
	}); d < 450*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want ~600ms", d)
	}
}

// A response that lasts longer than the header and idle timeouts (an event stream, a long poll)
// is not cut: the head's read deadline ends with the head, so the client-gone watcher's read
// does not time out and cancel the request (regression: the e2e suite's SSE streams ended after
// the 10 s header timeout).
func TestLeanLongResponseOutlivesHeadDeadline(t *testing.T) {
	h := oddApp(t, server.Config{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	c, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /sleep?d=1500ms HTTP/1.1\r\nHost: app.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "slept\n" {
		t.Fatalf("a 1.5 s response behind a 300 ms header timeout: %d %q %v (the request was cancelled)", resp.StatusCode, body, err)
	}
}

// Shutdown: an in-flight lean request completes with Connection: close, idle lean connections
// are closed, and the connection caps still count lean connections.
func TestLeanShutdownAndCaps(t *testing.T) {
	h := oddApp(t, server.Config{ShutdownGrace: 200 * time.Millisecond, MaxConnsPerIP: 3})

	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", h.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n")
		readResponses(t, bufio.NewReader(c), "GET", 1)
		conns = append(conns, c)
	}
	// A fourth connection from the same IP is over the cap.
	if out, closed := exchange(t, h.HTTP, nil, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n", time.Second); out != "" || !closed {
		t.Errorf("fourth connection: %q closed=%v", out, closed)
	}
	busy := conns[0]
	_, _ = io.WriteString(busy, "GET /sleep?d=700ms HTTP/1.1\r\nHost: app.example\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	h.Begin()
	resp := readResponses(t, bufio.NewReader(busy), "GET", 1)[0]
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("in-flight request during drain: %d close=%v", resp.StatusCode, resp.Close)
	}
	for _, c := range conns[1:] {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("idle connection not closed by the drain: %d %v", n, err)
		}
	}
	if err := h.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The ConnState hook (the open-connections gauge) hears of every connection once as new and
// once as closed, whether the loop served it to the end or handed it over.
func TestLeanConnStateBalanced(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{}
	cfg := server.Config{OnConnState: func(l string, st http.ConnState) {
		mu.Lock()
		counts[l+" "+st.String()]++
		mu.Unlock()
	}}
	lean, _, ca, _ := leanPair(t, cfg)
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "app.example", NextProtos: []string{"http/1.1"}}
	get := "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"
	post := "POST /p HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2\r\n\r\nhi"
	bad := "GET /x HTTP/1.1\r\nHost: app.example\r\nX_Bad: 1\r\n\r\n"
	for _, raw := range []string{get, get + post + get, bad, get + bad, post} {
		exchange(t, lean.HTTP, nil, raw, 300*time.Millisecond)
		exchange(t, lean.HTTPS, tlsCfg, raw, 300*time.Millisecond)
	}
	// An HTTP/2 connection by ALPN goes to net/http without the loop.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true,
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "app.example", NextProtos: []string{"h2"}}}).DialContext(ctx, network, lean.HTTPS)
		}}}
	resp, err := h2.Get("https://app.example/a")
	if err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("h2: %v %v", resp, err)
	}
	resp.Body.Close()
	h2.CloseIdleConnections()
	if err := lean.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range []string{"http", "https"} {
		n, c := counts[l+" new"], counts[l+" closed"]+counts[l+" hijacked"]
		if n == 0 || n != c {
			t.Errorf("%s: %d new, %d closed: %v", l, n, c, counts)
		}
	}
}
