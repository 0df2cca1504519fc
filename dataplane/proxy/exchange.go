package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/portico-dev/portico/dataplane/routing"
)

// Reasons name every answer the proxy makes itself, for access logs and metrics. An exchange the
// upstream answered has Reason "".
const (
	ReasonNoRoute               = "no_route"                // 404: no route for the host, or no rule for the request
	ReasonNoEndpoints           = "no_endpoints"            // 503: the backend has no ready endpoint
	ReasonNoBackend             = "no_backend"              // 500: the rule has neither backends nor a redirect
	ReasonUpstreamTimeout       = "upstream_timeout"        // 504: request or backend timeout
	ReasonUpstreamConnectFailed = "upstream_connect_failed" // 502: no endpoint accepted a connection
	ReasonUpstreamError         = "upstream_error"          // 502: the upstream broke the exchange after connecting
	ReasonBodyTooLarge          = "body_too_large"          // 413
	ReasonMisdirected           = "misdirected"             // 421: Host not served under the TLS connection's SNI
	ReasonForbiddenSource       = "forbidden_source"        // 403: client address outside the route's source ranges
	ReasonRejectedRequest       = "rejected_request"        // 400: malformed request (path, headers, framing)
	ReasonRedirect              = "redirect"                // 3xx from a RequestRedirect filter
	ReasonHTTPSRedirect         = "https_redirect"          // 308 to https for a host with TLS
	ReasonNotReady              = "not_ready"               // 503: no routing table yet
	ReasonClientClosed          = "client_closed"           // the client went away; nothing was answered
	ReasonCORSPreflight         = "cors_preflight"          // 204 answer to a CORS preflight
)

// Exchange is the record of one request, filled as the proxy goes and handed to the Observer once
// the response is complete. Observers must not keep it (nor Request) after Observe returns.
type Exchange struct {
	Start     time.Time
	Duration  time.Duration
	RequestID string
	Method    string
	Host      string
	// Path is the normalized path ("" when the path was refused).
	Path     string
	Proto    string
	TLS      bool
	ClientIP netip.Addr
	// Tenant is the EdgeProxy of the table that served the request (Settings.Tenant).
	Tenant string
	// Request is the inbound request, read-only: what an observer needs beyond these fields (user
	// agent, X-Forwarded-For as received, TLS version and SNI) it reads from here, only if it needs it.
	Request *http.Request
	// TraceID and SpanID of the server span, when a Tracer traces the request (zero otherwise).
	TraceID [16]byte
	SpanID  [8]byte

	// Rule that matched; nil when none did.
	Rule     *routing.Rule
	Backend  routing.BackendKey
	Endpoint netip.AddrPort
	// Attempts made to reach an endpoint (retries included).
	Attempts int
	// Ejections counts endpoints this request took out of rotation (failed connects to endpoints
	// that were not ejected already).
	Ejections int
	// UpstreamStatus is the status the upstream answered (0 when none did); UpstreamLatency the
	// time from the first attempt to the upstream's response headers (or to the last failure).
	UpstreamStatus  int
	UpstreamLatency time.Duration

	Status       int
	BytesWritten int64
	// BytesRead is the request body read from the client.
	BytesRead int64
	Upgraded  bool
	// Reason is set when the proxy answered itself (see the Reason constants).
	Reason string
	// Detail completes Reason for logs ("encoded slash (%2F)"); a constant, never client input.
	Detail string

	body  *bodyGuard // counts BytesRead
	proto uint8      // in-flight counter: 0 HTTP/1, 1 HTTP/2
}

// Observer receives every finished exchange: dataplane/metrics counts it, dataplane/accesslog logs it.
type Observer interface {
	Observe(*Exchange)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(*Exchange)

// Observe calls f.
func (f ObserverFunc) Observe(e *Exchange) { f(e) }

// Observers tells each of its observers, in order.
type Observers []Observer

// Observe calls every observer.
func (o Observers) Observe(e *Exchange) {
	for _, x := range o {
		x.Observe(e)
	}
}

// Tracer joins requests to distributed traces (dataplane/tracing implements it). Tracing can be
// switched off at run time, so every method must cost close to nothing then: return ctx itself
// and a nil end function.
type Tracer interface {
	// StartServer begins the server span of an inbound request (joining the trace its headers
	// carry) and returns the context carrying it; it records the trace and span IDs in ex.
	StartServer(ctx context.Context, r *http.Request, ex *Exchange) context.Context
	// EndServer ends the server span in ctx with the outcome recorded in ex.
	EndServer(ctx context.Context, ex *Exchange)
	// StartClient begins the client span of one attempt to reach ex.Endpoint (attempt 0 is the
	// first), writes the trace context into out.Header, and returns the context of the attempt and
	// the function ending the span: status is the upstream's, or 0 with err for a failed attempt.
	StartClient(ctx context.Context, out *http.Request, ex *Exchange, attempt int) (context.Context, func(status int, err error))
}

// recorder notes the status and size of the response. It unwraps for http.ResponseController, so
// flushing and hijacking (WebSocket) still reach the server's writer.
type recorder struct {
	http.ResponseWriter
	ex *Exchange
}

func (w *recorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		if w.ex.Status == 0 {
			w.ex.Status = code
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.ex.Status == 0 {
		w.ex.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.ex.BytesWritten += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is kept explicit for callers that type-assert http.Flusher.
func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Hijack is kept explicit for callers that type-assert http.Hijacker.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
