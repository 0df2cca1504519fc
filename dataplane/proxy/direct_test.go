package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// outcome is everything observable of one exchange: what the upstream received and what the
// client got.
type outcome struct {
	UpstreamHeader http.Header
	UpstreamURI    string
	UpstreamHost   string
	Status         int
	Header         http.Header
	Body           string
	Trailer        http.Header
	Informational  []int
	Exchange       string
}

// The direct path (requests without a body) answers exactly as ReverseProxy does: the same
// upstream request, the same response, trailers, 1xx responses and hop-by-hop handling.
func TestDirectPathMatchesReverseProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ := json.Marshal(map[string]any{"h": r.Header, "uri": r.RequestURI, "host": r.Host})
		w.Header().Set("X-Seen", string(seen))
		switch r.URL.Path {
		case "/plain":
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			io.WriteString(w, "plain\n")
		case "/hop":
			w.Header().Set("Connection", "X-Hop-Resp")
			w.Header().Set("X-Hop-Resp", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Proxy-Authenticate", "Basic")
			io.WriteString(w, "hop\n")
		case "/trailers":
			w.Header().Set("Trailer", "X-Announced")
			w.WriteHeader(200)
			io.WriteString(w, "part1\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2\n")
			w.Header().Set("X-Announced", "yes")
			w.Header().Set(http.TrailerPrefix+"X-Surprise", "also")
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		case "/early":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "after hints\n")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/notmod":
			w.WriteHeader(http.StatusNotModified)
		case "/big":
			io.WriteString(w, strings.Repeat("0123456789", 10_000))
		default:
			http.NotFound(w, r)
		}
	}))
	defer backend.Close()
	obs := newObserved()
	h := dpt.Start(t, dpt.Options{Proxy: proxy.Options{Observer: obs}})
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, backend.URL)}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules:
  - backendRefs: [{name: app, port: 80}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: X-Added, value: filter}]
        set: [{name: X-Set, value: filter}]
        remove: [X-Removed]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: X-Resp-Added, value: filter}]
`), nil, proxy.Settings{})

	type request struct {
		method, target string
		hdr            []string
	}
	requests := []request{
		{"GET", "/plain", nil},
		{"GET", "/plain?a=1;b=2&c", []string{"User-Agent", "curl/8", "X-Multi", "1", "X-Multi", "2", "X-Request-Id", "fixed-id"}},
		{"GET", "/plain", []string{"Connection", "X-Hop-Req, Keep-Alive", "X-Hop-Req", "1", "Keep-Alive", "300", "Te", "trailers",
			"Proxy-Authorization", "Basic eA==", "X-Forwarded-For", "192.0.2.1", "Forwarded", "for=x", "X-Real-Ip", "1.2.3.4",
			"X-Forwarded-Host", "evil", "X-Added", "client", "X-Set", "client", "X-Removed", "client", "X-Request-Id", "fixed-id"}},
		{"GET", "/plain", []string{"Connection", "User-Agent", "User-Agent", "dropped", "X-Request-Id", "fixed-id"}},
		{"HEAD", "/plain", []string{"X-Request-Id", "fixed-id"}},
		{"DELETE", "/plain", []string{"X-Request-Id", "fixed-id"}},
		{"POST", "/plain", []string{"X-Request-Id", "fixed-id"}},
		{"OPTIONS", "/plain", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/hop", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/trailers", []string{"X-Request-Id", "fixed-id", "Te", "trailers"}},
		{"GET", "/sse", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/early", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/empty", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/notmod", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/big", []string{"X-Request-Id", "fixed-id"}},
		{"GET", "/missing", []string{"X-Request-Id", "fixed-id"}},
	}
	do := func(rq request) outcome {
		tr := &http.Transport{DisableCompression: true}
		defer tr.CloseIdleConnections()
		var o outcome
		req, _ := http.NewRequest(rq.method, "http://"+h.HTTP+rq.target, nil)
		req.Host = "app.example"
		for i := 0; i+1 < len(rq.hdr); i += 2 {
			req.Header.Add(rq.hdr[i], rq.hdr[i+1])
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
				o.Informational = append(o.Informational, code)
				return nil
			},
		}))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rq.method, rq.target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		o.Status, o.Body, o.Trailer = resp.StatusCode, string(b), resp.Trailer
		o.Header = resp.Header.Clone()
		if seen := o.Header.Get("X-Seen"); seen != "" {
			var s struct {
				H    http.Header `json:"h"`
				URI  string      `json:"uri"`
				Host string      `json:"host"`
			}
			if err := json.Unmarshal([]byte(seen), &s); err != nil {
				t.Fatal(err)
			}
			o.UpstreamHeader, o.UpstreamURI, o.UpstreamHost = s.H, s.URI, s.Host
			o.Header.Del("X-Seen")
		}
		o.Header.Del("Date")
		ex := obs.next(t)
		o.Exchange = fmt.Sprintf("status=%d reason=%q upstream=%d bytes=%d read=%d attempts=%d backend=%v endpoint=%v upgraded=%v path=%q",
			ex.Status, ex.Reason, ex.UpstreamStatus, ex.BytesWritten, ex.BytesRead, ex.Attempts, ex.Backend, ex.Endpoint, ex.Upgraded, ex.Path)
		if o.UpstreamHeader != nil && o.UpstreamHeader.Get("X-Request-Id") != "fixed-id" {
			o.UpstreamHeader.Del("X-Request-Id") // generated: differs by design
			o.Header.Del("X-Request-Id")
		}
		return o
	}
	for _, rq := range requests {
		restore := proxy.SetDirect(false)
		viaRP := do(rq)
		restore()
		viaDirect := do(rq)
		if !reflect.DeepEqual(viaRP, viaDirect) {
			t.Errorf("%s %s %v:\nReverseProxy %s\ndirect       %s", rq.method, rq.target, rq.hdr, show(viaRP), show(viaDirect))
		}
	}
}

func show(o outcome) string {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		v, _ := json.Marshal(m[k])
		if len(v) > 300 {
			v = append(v[:300], "..."...)
		}
		s = append(s, k+"="+string(v))
	}
	return strings.Join(s, " ")
}

// Upstreams close idle keep-alive connections on their own schedule; a request arriving after
// that must not fail, whatever its method (the pooled connection is found closed before use).
func TestUpstreamIdleCloseIsInvisible(t *testing.T) {
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" ok\n")
	}))
	backend.Config.IdleTimeout = 30 * time.Millisecond
	backend.Start()
	defer backend.Close()
	h := dpt.Start(t, dpt.Options{})
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, backend.URL)}})
	h.Apply(t, dpt.Routes(t, simpleRoute), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	for i := range 6 {
		method := []string{http.MethodGet, http.MethodPost, http.MethodDelete}[i%3]
		r := c.do(method, "app.example", "/", nil)
		if r.StatusCode != 200 || r.body != method+" ok\n" {
			t.Fatalf("%d %s: %d %q", i, method, r.StatusCode, r.body)
		}
		time.Sleep(80 * time.Millisecond)
	}
}
