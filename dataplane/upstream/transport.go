package upstream

import (
	"net/http"
	"time"
)

// TransportOptions tune the upstream connection pools.
type TransportOptions struct {
	// IdleTimeout of pooled upstream connections; 90 s.
	IdleTimeout time.Duration
	// MaxIdlePerEndpoint; 100.
	MaxIdlePerEndpoint int
	// DisableLean sends every HTTP/1.1 request through http.Transport instead of H1.
	DisableLean bool
}

// Transports are the pooled round trippers to endpoints: HTTP/1.1 with keep-alive, and cleartext
// HTTP/2 (prior knowledge) for endpoints whose appProtocol asks for it. Both pool per endpoint
// address and dial through the egress-guarded Dialer; neither reads proxy settings from the
// environment (an HTTP_PROXY variable must not redirect tenant traffic).
//
// Requests without a body to HTTP/1.1 endpoints take Lean (see H1), which pools its own
// connections; everything else takes HTTP1.
type Transports struct {
	HTTP1 *http.Transport
	H2C   *http.Transport
	Lean  *H1 // nil when disabled

	http1 http.RoundTripper
}

// NewTransports builds both transports on d.
func NewTransports(d *Dialer, o TransportOptions) *Transports {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxIdlePerEndpoint <= 0 {
		o.MaxIdlePerEndpoint = 100
	}
	base := func() *http.Transport {
		return &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConns:        0, // no global cap; the per-endpoint cap bounds it
			MaxIdleConnsPerHost: o.MaxIdlePerEndpoint,
			IdleConnTimeout:     o.IdleTimeout,
			// Response header timeouts are per rule and enforced by the proxy per attempt.
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 256 << 10,
			DisableCompression:     true, // forward what the client asked for, nothing more
			WriteBufferSize:        16 << 10,
			ReadBufferSize:         16 << 10,
			Protocols:              new(http.Protocols),
		}
	}
	h1 := base()
	h1.Protocols.SetHTTP1(true)
	h2c := base()
	h2c.Protocols.SetUnencryptedHTTP2(true)
	h2c.HTTP2 = &http.HTTP2Config{
		SendPingTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
	}
	t := &Transports{HTTP1: h1, H2C: h2c, http1: h1}
	if !o.DisableLean {
		t.Lean = NewH1(d.DialContext, o.IdleTimeout, o.MaxIdlePerEndpoint, h1.MaxResponseHeaderBytes)
		t.http1 = leanOrStd{t.Lean, h1}
	}
	return t
}

// leanOrStd sends what H1 takes to H1, and the rest to http.Transport.
type leanOrStd struct {
	lean *H1
	std  *http.Transport
}

func (l leanOrStd) RoundTrip(req *http.Request) (*http.Response, error) {
	if l.lean.Eligible(req) {
		return l.lean.RoundTrip(req)
	}
	return l.std.RoundTrip(req)
}

// For returns the transport an endpoint's appProtocol calls for.
func (t *Transports) For(appProtocol string) http.RoundTripper {
	if IsH2C(appProtocol) {
		return t.H2C
	}
	if t.http1 == nil { // a Transports not made by NewTransports
		return t.HTTP1
	}
	return t.http1
}

// IsH2C reports whether an appProtocol means cleartext HTTP/2: Kubernetes' own
// "kubernetes.io/h2c", and the names Istio and Envoy Gateway use for it ("http2", "grpc", "h2c").
func IsH2C(appProtocol string) bool {
	switch appProtocol {
	case "kubernetes.io/h2c", "h2c", "http2", "grpc":
		return true
	}
	return false
}

// CloseIdleConnections closes idle pooled connections of both transports.
func (t *Transports) CloseIdleConnections() {
	t.HTTP1.CloseIdleConnections()
	t.H2C.CloseIdleConnections()
	if t.Lean != nil {
		t.Lean.CloseIdleConnections()
	}
}
