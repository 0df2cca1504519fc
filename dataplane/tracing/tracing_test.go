package tracing_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/tracing"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// receiver is a minimal OTLP/HTTP trace collector: it decodes ExportTraceServiceRequest
// protobufs and keeps the spans with their resource attributes.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []span
}

type span struct {
	*tracepb.Span
	resource map[string]string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, _ := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			t.Errorf("collector: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			res := attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					rc.spans = append(rc.spans, span{Span: s, resource: res})
				}
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) trace(id string) []span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []span
	for _, s := range rc.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.spans)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.Value.(type) {
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		default:
			m[kv.GetKey()] = v.GetStringValue()
		}
	}
	return m
}

const routes = `
metadata: {name: web}
spec:
  hostnames: [app.example]
  rules:
  - backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [{name: missing, port: 80}]
`

type env struct {
	h       *dpt.Harness
	tracer  *tracing.Tracer
	rc      *receiver
	app     *dpt.Backend
	ex      chan proxy.Exchange
	traceID string
}

func start(t *testing.T, percent float64) *env {
	t.Helper()
	e := &env{tracer: tracing.New(), rc: newReceiver(t), ex: make(chan proxy.Exchange, 16)}
	if err := e.tracer.Configure(tracing.Config{Endpoint: strings.TrimPrefix(e.rc.URL, "http://"), SamplingPercent: percent,
		Tenant: "acme", PodName: "portico-acme-7d9f", PodNamespace: "acme-edge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tracer.Shutdown(context.Background()) })
	e.h = dpt.Start(t, dpt.Options{Proxy: proxy.Options{Tracer: e.tracer,
		Observer: proxy.ObserverFunc(func(x *proxy.Exchange) { e.ex <- *x })}})
	e.app = dpt.NewEcho(t, "app")
	e.h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, e.app.URL)}})
	e.h.Apply(t, dpt.Routes(t, routes), nil, proxy.Settings{Tenant: "acme"})
	return e
}

func (e *env) get(t *testing.T, target string, hdr ...string) (*http.Response, dpt.Echo) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.h.HTTP+target, nil)
	req.Host = "app.example"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var echo dpt.Echo
	if resp.StatusCode == 200 {
		echo = dpt.DecodeEcho(t, resp.Body)
	}
	return resp, echo
}

// flushed waits (5 s at most) until the collector holds n spans of the trace.
func (e *env) flushed(t *testing.T, traceID string, n int) []span {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := e.tracer.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := e.rc.trace(traceID); len(s) >= n || time.Now().After(deadline) {
			if len(s) != n {
				t.Fatalf("%d spans of trace %s, want %d", len(s), traceID, n)
			}
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func byKind(t *testing.T, spans []span, kind tracepb.Span_SpanKind) span {
	t.Helper()
	for _, s := range spans {
		if s.GetKind() == kind {
			return s
		}
	}
	t.Fatalf("no %v span", kind)
	return span{}
}

func expectAttrs(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

// A request carrying a traceparent joins its trace: the server span is the client's child, the
// client span the server span's, the upstream sees the client span as its parent, and baggage
// travels on.
func TestSpansOfAProxiedRequest(t *testing.T) {
	e := start(t, 100)
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	_, echo := e.get(t, "/hello?secret=1", "Traceparent", "00-"+traceID+"-"+parent+"-01",
		"Baggage", "user=alice", "User-Agent", "portico-test")
	up := http.Header(echo.Header)
	tp := strings.Split(up.Get("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[3] != "01" {
		t.Fatalf("upstream traceparent %q", up.Get("Traceparent"))
	}
	if up.Get("Baggage") != "user=alice" {
		t.Errorf("upstream baggage %q", up.Get("Baggage"))
	}

	spans := e.flushed(t, traceID, 2)
	server, client := byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER), byKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
	if got := hex.EncodeToString(server.GetParentSpanId()); got != parent {
		t.Errorf("server span's parent %s, want the client's %s", got, parent)
	}
	if !bytesEqual(client.GetParentSpanId(), server.GetSpanId()) {
		t.Errorf("client span's parent %x, want the server span %x", client.GetParentSpanId(), server.GetSpanId())
	}
	if got := hex.EncodeToString(client.GetSpanId()); got != tp[2] {
		t.Errorf("upstream's parent %s is not the client span %s", tp[2], got)
	}
	if server.GetName() != "GET" || client.GetName() != "GET" {
		t.Errorf("span names %q, %q", server.GetName(), client.GetName())
	}
	if server.GetStartTimeUnixNano() > client.GetStartTimeUnixNano() || client.GetEndTimeUnixNano() > server.GetEndTimeUnixNano() {
		t.Error("the client span is not within the server span")
	}
	expectAttrs(t, "server span", attrs(server.GetAttributes()), map[string]string{
		"http.request.method": "GET", "url.scheme": "http", "url.path": "/hello", "server.address": "app.example",
		"network.protocol.version": "1.1", "client.address": "127.0.0.1", "network.peer.address": "127.0.0.1",
		"user_agent.original": "portico-test", "http.response.status_code": "200", "portico.tenant": "acme",
		"portico.namespace": "team", "portico.route": "web", "portico.rule": "0", "portico.backend": "team/app:80",
	})
	port := e.app.URL[strings.LastIndexByte(e.app.URL, ':')+1:]
	expectAttrs(t, "client span", attrs(client.GetAttributes()), map[string]string{
		"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": port,
		"network.peer.address": "127.0.0.1", "url.full": e.app.URL + "/hello", "http.response.status_code": "200",
		"portico.backend": "team/app:80",
	})
	if server.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR || client.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Error("a 200 marked as an error")
	}
	expectAttrs(t, "resource", server.resource, map[string]string{"service.name": "portico-proxy",
		"portico.tenant": "acme", "k8s.pod.name": "portico-acme-7d9f", "k8s.namespace.name": "acme-edge"})

	ex := <-e.ex
	if hex.EncodeToString(ex.TraceID[:]) != traceID || !bytesEqual(ex.SpanID[:], server.GetSpanId()) {
		t.Errorf("exchange carries trace %x span %x", ex.TraceID, ex.SpanID)
	}
}

func bytesEqual(a, b []byte) bool { return hex.EncodeToString(a) == hex.EncodeToString(b) }

// A proxy-made 503 is a server span with an error and no client span.
func TestSpanOfAProxyMadeError(t *testing.T) {
	e := start(t, 100)
	resp, _ := e.get(t, "/empty")
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ex := <-e.ex
	spans := e.flushed(t, hex.EncodeToString(ex.TraceID[:]), 1)
	s := spans[0]
	if s.GetKind() != tracepb.Span_SPAN_KIND_SERVER || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %v status %v", s.GetKind(), s.GetStatus())
	}
	expectAttrs(t, "server span", attrs(s.GetAttributes()), map[string]string{"http.response.status_code": "503",
		"error.type": "no_endpoints", "portico.reason": "no_endpoints", "portico.backend": "team/missing:80"})
}

// Not sampled: nothing is exported, but the upstream still gets a (not sampled) trace context.
func TestUnsampledRequestsPropagateOnly(t *testing.T) {
	e := start(t, 0)
	_, echo := e.get(t, "/x")
	tp := strings.Split(http.Header(echo.Header).Get("Traceparent"), "-")
	if len(tp) != 4 || tp[3] != "00" || tp[1] == strings.Repeat("0", 32) {
		t.Fatalf("upstream traceparent %v", tp)
	}
	<-e.ex
	if err := e.tracer.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.rc.count(); n != 0 {
		t.Errorf("%d spans exported at 0%% sampling", n)
	}
	// A sampled parent is followed whatever the ratio.
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	e.get(t, "/x", "Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	e.flushed(t, traceID, 2)
}

// Switched off, nothing reaches the upstream or the collector, and the hooks cost nothing.
func TestTracingOff(t *testing.T) {
	e := start(t, 100)
	if err := e.tracer.Configure(tracing.Config{}); err != nil {
		t.Fatal(err)
	}
	if e.tracer.Enabled() {
		t.Fatal("still enabled")
	}
	_, echo := e.get(t, "/x")
	if tp := http.Header(echo.Header).Get("Traceparent"); tp != "" {
		t.Errorf("upstream got traceparent %q with tracing off", tp)
	}
	ex := <-e.ex
	if ex.TraceID != [16]byte{} {
		t.Errorf("trace ID %x with tracing off", ex.TraceID)
	}

	off := tracing.New()
	r := httptest.NewRequest("GET", "http://app.example/", nil)
	out := r.Clone(context.Background())
	x := &proxy.Exchange{}
	ctx := r.Context()
	allocs := testing.AllocsPerRun(1000, func() {
		c := off.StartServer(ctx, r, x)
		if _, end := off.StartClient(c, out, x, 0); end != nil {
			t.Fatal("client span with tracing off")
		}
		off.EndServer(c, x)
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %v times per request", allocs)
	}
}

func TestConfigureRefusesBadSettings(t *testing.T) {
	tr := tracing.New()
	for _, c := range []tracing.Config{{Endpoint: "no-port"}, {Endpoint: "collector:4318", SamplingPercent: 101}} {
		if err := tr.Configure(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if tr.Enabled() {
		t.Error("enabled by a refused configuration")
	}
}

// BenchmarkHooks is the per-request cost of the tracing hooks, off and on (sampled, exported in
// the background to a collector that answers at once).
func BenchmarkHooks(b *testing.B) {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer rc.Close()
	run := func(b *testing.B, tr *tracing.Tracer) {
		r := httptest.NewRequest("GET", "http://app.example/", nil)
		out := r.Clone(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			x := proxy.Exchange{}
			ctx := tr.StartServer(r.Context(), r, &x)
			if _, end := tr.StartClient(ctx, out, &x, 0); end != nil {
				end(200, nil)
			}
			tr.EndServer(ctx, &x)
		}
	}
	b.Run("off", func(b *testing.B) { run(b, tracing.New()) })
	b.Run("on", func(b *testing.B) {
		tr := tracing.New()
		if err := tr.Configure(tracing.Config{Endpoint: strings.TrimPrefix(rc.URL, "http://"), SamplingPercent: 100}); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tr.Shutdown(context.Background()) }()
		run(b, tr)
	})
}
