package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// processCollector reports what belongs to the process rather than to a route: connections,
// requests in flight, TLS handshakes, lost access log lines, ejected endpoints. Their counts are
// plain atomics, labelled at scrape time with the tenant of the live configuration.
type processCollector struct {
	o      Options
	tenant atomic.Pointer[string]

	active, accepted [2]atomic.Int64 // by listener
	handshakes       [len(tlsVersions)]atomic.Uint64
	handshakeErrors  [len(handshakeReasons)]atomic.Uint64

	activeDesc, acceptedDesc, inFlightDesc, handshakesDesc, handshakeErrorsDesc *prometheus.Desc
	ejectedDesc, droppedDesc                                                    *prometheus.Desc
}

var (
	listeners   = [...]string{"http", "https"}
	tlsVersions = [...]string{"1.2", "1.3", Other}
	// handshakeReasons are why a TLS handshake failed; see handshakeReason.
	handshakeReasons = [...]string{"timeout", "client_closed", "unknown_server_name", "protocol_version",
		"no_shared_cipher", "not_tls", "client_alert", Other}
)

func newProcessCollector(o Options) *processCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("portico", "proxy", name), help, append([]string{LabelTenant}, labels...), nil)
	}
	p := &processCollector{o: o,
		activeDesc:   desc("active_connections", "Client connections open, by listener.", "listener"),
		acceptedDesc: desc("connections_total", "Client connections accepted, by listener (HTTPS: after the handshake).", "listener"),
		inFlightDesc: desc("in_flight_requests", "Requests being served (upgraded connections included), by protocol.", "protocol"),
		handshakesDesc: desc("tls_handshakes_total", "Completed TLS handshakes, by TLS version.",
			"version"),
		handshakeErrorsDesc: desc("tls_handshake_errors_total", "Failed TLS handshakes, by reason (unknown_server_name: no "+
			"certificate for the SNI, or none sent).", LabelReason),
		ejectedDesc: desc("upstream_ejected_endpoints", "Endpoints currently in their passive-health back-off."),
		droppedDesc: desc("access_log_dropped_lines_total", "Access log lines lost: queue_full when the sink was too slow, "+
			"write_error when writing failed.", "cause"),
	}
	other := Other
	p.tenant.Store(&other)
	return p
}

func (p *processCollector) setTenant(t string) { p.tenant.Store(&t) }
func (p *processCollector) currentTenant() string {
	return *p.tenant.Load()
}

func (p *processCollector) connState(listener string, state http.ConnState) {
	i := 0
	if listener == "https" {
		i = 1
	}
	switch state {
	case http.StateNew:
		p.active[i].Add(1)
		p.accepted[i].Add(1)
	case http.StateClosed, http.StateHijacked:
		p.active[i].Add(-1)
	}
}

func (p *processCollector) handshake(version uint16, err error) {
	if err != nil {
		p.handshakeErrors[handshakeReason(err)].Add(1)
		return
	}
	switch version {
	case tls.VersionTLS12:
		p.handshakes[0].Add(1)
	case tls.VersionTLS13:
		p.handshakes[1].Add(1)
	default:
		p.handshakes[2].Add(1)
	}
}

// handshakeReason sorts a server-side handshake error into handshakeReasons. crypto/tls exports
// few error types, so some cases are recognized by their (stable) messages.
func handshakeReason(err error) int {
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return 0
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return 1
	case strings.Contains(msg, "no certificates configured"):
		return 2
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "SSLv2"):
		return 3
	case strings.Contains(msg, "no cipher suite supported"):
		return 4
	case errors.As(err, &rh):
		return 5
	case errors.As(err, &op) && op.Op == "remote error":
		return 6
	}
	return len(handshakeReasons) - 1
}

func (p *processCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.activeDesc, p.acceptedDesc, p.inFlightDesc, p.handshakesDesc,
		p.handshakeErrorsDesc, p.ejectedDesc, p.droppedDesc} {
		ch <- d
	}
}

func (p *processCollector) Collect(ch chan<- prometheus.Metric) {
	tenant := p.currentTenant()
	for i, l := range listeners {
		ch <- prometheus.MustNewConstMetric(p.activeDesc, prometheus.GaugeValue, float64(p.active[i].Load()), tenant, l)
		ch <- prometheus.MustNewConstMetric(p.acceptedDesc, prometheus.CounterValue, float64(p.accepted[i].Load()), tenant, l)
	}
	if p.o.InFlight != nil {
		h1, h2 := p.o.InFlight()
		ch <- prometheus.MustNewConstMetric(p.inFlightDesc, prometheus.GaugeValue, float64(h1), tenant, "http1")
		ch <- prometheus.MustNewConstMetric(p.inFlightDesc, prometheus.GaugeValue, float64(h2), tenant, "http2")
	}
	for i, v := range tlsVersions {
		ch <- prometheus.MustNewConstMetric(p.handshakesDesc, prometheus.CounterValue, float64(p.handshakes[i].Load()), tenant, v)
	}
	for i, r := range handshakeReasons {
		ch <- prometheus.MustNewConstMetric(p.handshakeErrorsDesc, prometheus.CounterValue, float64(p.handshakeErrors[i].Load()), tenant, r)
	}
	if p.o.EjectedEndpoints != nil {
		ch <- prometheus.MustNewConstMetric(p.ejectedDesc, prometheus.GaugeValue, float64(p.o.EjectedEndpoints()), tenant)
	}
	if p.o.AccessLogDropped != nil {
		ch <- prometheus.MustNewConstMetric(p.droppedDesc, prometheus.CounterValue, float64(p.o.AccessLogDropped()), tenant, "queue_full")
	}
	if p.o.AccessLogWriteFailures != nil {
		ch <- prometheus.MustNewConstMetric(p.droppedDesc, prometheus.CounterValue, float64(p.o.AccessLogWriteFailures()), tenant, "write_error")
	}
}
