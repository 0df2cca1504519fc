package proxy

import (
	"bufio"
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
// the response is complete. Observers must not keep it after Observe returns.
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

	// Rule that matched; nil when none did.
	Rule     *routing.Rule
	Backend  routing.BackendKey
	Endpoint netip.AddrPort
	// Attempts made to reach an endpoint (retries included).
	Attempts int

	Status       int
	BytesWritten int64
	Upgraded     bool
	// Reason is set when the proxy answered itself (see the Reason constants).
	Reason string
	// Detail completes Reason for logs ("encoded slash (%2F)"); a constant, never client input.
	Detail string
}

// Observer receives every finished exchange (the observability issue logs and counts them).
type Observer interface {
	Observe(*Exchange)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(*Exchange)

// Observe calls f.
func (f ObserverFunc) Observe(e *Exchange) { f(e) }

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
