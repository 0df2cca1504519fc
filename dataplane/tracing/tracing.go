// Package tracing joins proxied requests to OpenTelemetry traces: a server span per request
// (joining the W3C traceparent and baggage the client sent, or starting a trace), a client span
// per attempt to reach an endpoint, the trace context written into the upstream request, and
// OTLP/HTTP export with a parent-based ratio sampler.
//
// Tracing can be switched on, off and reconfigured at run time. Off, the Tracer's hooks load one
// atomic pointer and return: no span, no allocation.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/upstream"
	"github.com/portico-dev/portico/internal/version"
)

// ServiceName is the service.name of the proxy's spans.
const ServiceName = "portico-proxy"

// Config of the tracer. The zero value is tracing off.
type Config struct {
	// Endpoint of the OTLP/HTTP collector: "host:port" (plain HTTP, path /v1/traces) or a URL
	// ("https://otel-collector.monitoring:4318/v1/traces"). Empty: tracing off.
	Endpoint string
	// SamplingPercent of the traces that start here (0 to 100). A request whose traceparent
	// carries a sampling decision follows it.
	SamplingPercent float64
	// Tenant, PodName and PodNamespace become resource attributes (portico.tenant, k8s.pod.name,
	// k8s.namespace.name).
	Tenant, PodName, PodNamespace string
	// BatchTimeout is how long spans wait to be exported together; 5 s.
	BatchTimeout time.Duration
}

// Tracer implements proxy.Tracer.
type Tracer struct {
	mu  sync.Mutex // Configure and Shutdown
	cur atomic.Pointer[provider]
}

type provider struct {
	cfg    Config
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// Propagator reads and writes W3C traceparent/tracestate and baggage.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// New returns a tracer that is off until Configure.
func New() *Tracer { return &Tracer{} }

// Enabled reports whether requests are being traced.
func (t *Tracer) Enabled() bool { return t.cur.Load() != nil }

// Configure switches tracing to c. An unchanged configuration is a no-op; a changed one builds a
// new exporter, swaps it in and flushes the old one (for at most 5 s). On error the previous
// configuration stays.
func (t *Tracer) Configure(c Config) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	if (old == nil && c.Endpoint == "") || (old != nil && old.cfg == c) {
		return nil
	}
	var next *provider
	if c.Endpoint != "" {
		var err error
		if next, err = newProvider(c); err != nil {
			return err
		}
	}
	t.cur.Store(next)
	if old != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = old.tp.Shutdown(ctx)
	}
	return nil
}

// ForceFlush exports the spans ended so far.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if p := t.cur.Load(); p != nil {
		return p.tp.ForceFlush(ctx)
	}
	return nil
}

// Shutdown flushes and stops tracing.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.cur.Swap(nil)
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

func newProvider(c Config) (*provider, error) {
	if c.SamplingPercent < 0 || c.SamplingPercent > 100 {
		return nil, fmt.Errorf("tracing sampling percent %v is not within 0 and 100", c.SamplingPercent)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(10 * time.Second)}
	switch {
	case strings.HasPrefix(c.Endpoint, "http://") || strings.HasPrefix(c.Endpoint, "https://"):
		opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
	default:
		if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
			return nil, fmt.Errorf("tracing endpoint %q: want host:port or an http(s) URL", c.Endpoint)
		}
		opts = append(opts, otlptracehttp.WithEndpoint(c.Endpoint), otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing exporter: %w", err)
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(ServiceName), semconv.ServiceVersion(version.Version),
		attribute.String("portico.tenant", c.Tenant)}
	if c.PodName != "" {
		attrs = append(attrs, semconv.K8SPodName(c.PodName), semconv.ServiceInstanceID(c.PodName))
	}
	if c.PodNamespace != "" {
		attrs = append(attrs, semconv.K8SNamespaceName(c.PodNamespace))
	}
	batch := c.BatchTimeout
	if batch <= 0 {
		batch = 5 * time.Second
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SamplingPercent/100))),
		// A full queue drops spans; it never blocks a request.
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(batch), sdktrace.WithMaxQueueSize(4096)),
	)
	return &provider{cfg: c, tp: tp, tracer: tp.Tracer("github.com/portico-dev/portico/dataplane/proxy",
		trace.WithInstrumentationVersion(version.Version))}, nil
}

// StartServer implements proxy.Tracer.
func (t *Tracer) StartServer(ctx context.Context, r *http.Request, ex *proxy.Exchange) context.Context {
	p := t.cur.Load()
	if p == nil {
		return ctx
	}
	ctx = Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, span := p.tracer.Start(ctx, spanName(r.Method), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(ex.Start))
	sc := span.SpanContext()
	ex.TraceID, ex.SpanID = sc.TraceID(), sc.SpanID()
	if span.IsRecording() {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		attrs := make([]attribute.KeyValue, 0, 10)
		attrs = append(attrs, methodAttrs(r.Method)...)
		attrs = append(attrs, semconv.URLScheme(scheme), semconv.NetworkProtocolVersion(protocolVersion(r)))
		attrs = append(attrs, hostAttrs(r.Host)...)
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			attrs = append(attrs, semconv.NetworkPeerAddress(ap.Addr().Unmap().String()), semconv.NetworkPeerPort(int(ap.Port())))
		}
		if ua := r.Header.Get("User-Agent"); ua != "" {
			attrs = append(attrs, semconv.UserAgentOriginal(ua))
		}
		span.SetAttributes(attrs...)
	}
	return ctx
}

// EndServer implements proxy.Tracer.
func (t *Tracer) EndServer(ctx context.Context, ex *proxy.Exchange) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := []attribute.KeyValue{semconv.HTTPResponseStatusCode(ex.Status), attribute.String("portico.tenant", ex.Tenant),
		attribute.String("portico.request_id", ex.RequestID)}
	if ex.Path != "" {
		attrs = append(attrs, semconv.URLPath(ex.Path))
	}
	if ex.ClientIP.IsValid() {
		attrs = append(attrs, semconv.ClientAddress(ex.ClientIP.String()))
	}
	if rule := ex.Rule; rule != nil {
		attrs = append(attrs, attribute.String("portico.namespace", rule.Route.Namespace),
			attribute.String("portico.route", rule.Route.Name), attribute.Int("portico.rule", rule.Index))
	}
	if ex.Backend.Name != "" {
		attrs = append(attrs, attribute.String("portico.backend", backendName(ex.Backend)))
	}
	if ex.Reason != "" {
		attrs = append(attrs, attribute.String("portico.reason", ex.Reason))
	}
	if ex.Status >= 500 {
		errType := ex.Reason
		if errType == "" {
			errType = strconv.Itoa(ex.Status)
		}
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, errType)
	}
	span.SetAttributes(attrs...)
	span.End(trace.WithTimestamp(ex.Start.Add(ex.Duration)))
}

// StartClient implements proxy.Tracer.
func (t *Tracer) StartClient(ctx context.Context, out *http.Request, ex *proxy.Exchange, attempt int) (context.Context, func(int, error)) {
	p := t.cur.Load()
	if p == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil // off, or switched on while this request was already running
	}
	ctx, span := p.tracer.Start(ctx, spanName(out.Method), trace.WithSpanKind(trace.SpanKindClient))
	Propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 10)
		attrs = append(attrs, methodAttrs(out.Method)...)
		if ep := ex.Endpoint; ep.IsValid() {
			addr := ep.Addr().String()
			attrs = append(attrs, semconv.ServerAddress(addr), semconv.ServerPort(int(ep.Port())),
				semconv.NetworkPeerAddress(addr), semconv.NetworkPeerPort(int(ep.Port())))
		}
		// The query is left out: it may carry secrets.
		attrs = append(attrs, semconv.URLFull(out.URL.Scheme+"://"+out.URL.Host+out.URL.EscapedPath()),
			attribute.String("portico.backend", backendName(ex.Backend)))
		if attempt > 0 {
			attrs = append(attrs, semconv.HTTPRequestResendCount(attempt))
		}
		span.SetAttributes(attrs...)
	}
	return ctx, func(status int, err error) {
		if span.IsRecording() {
			if status > 0 {
				span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			}
			switch {
			case err != nil:
				et := errorType(err)
				span.SetAttributes(semconv.ErrorTypeKey.String(et))
				span.SetStatus(codes.Error, et)
			case status >= 400:
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
				span.SetStatus(codes.Error, "")
			}
		}
		span.End()
	}
}

// errorType names a failed attempt without its addresses.
func errorType(err error) string {
	var de *upstream.DialError
	switch {
	case errors.As(err, &de):
		return "connect_failed"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "timeout"):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "upstream_error"
}

var knownMethods = map[string]attribute.KeyValue{}

func init() {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect} {
		knownMethods[m] = semconv.HTTPRequestMethodKey.String(m)
	}
}

// spanName is the method; any other method is "HTTP", as the semantic conventions ask (span names
// must stay low-cardinality).
func spanName(method string) string {
	if _, ok := knownMethods[method]; ok {
		return method
	}
	return "HTTP"
}

func methodAttrs(method string) []attribute.KeyValue {
	if kv, ok := knownMethods[method]; ok {
		return []attribute.KeyValue{kv}
	}
	return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String("_OTHER"), semconv.HTTPRequestMethodOriginal(method)}
}

func hostAttrs(host string) []attribute.KeyValue {
	if h, p, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return []attribute.KeyValue{semconv.ServerAddress(h), semconv.ServerPort(n)}
		}
		return []attribute.KeyValue{semconv.ServerAddress(h)}
	}
	return []attribute.KeyValue{semconv.ServerAddress(host)}
}

func backendName(k routing.BackendKey) string {
	return k.Namespace + "/" + k.Name + ":" + strconv.Itoa(int(k.Port))
}

func protocolVersion(r *http.Request) string {
	if r.ProtoMajor >= 2 {
		return strconv.Itoa(r.ProtoMajor)
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

var _ proxy.Tracer = (*Tracer)(nil)
