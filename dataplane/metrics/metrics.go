// Package metrics exports the proxy's Prometheus metrics, portico_proxy_*, on the admin port.
//
// Cardinality is bounded by construction: label values come only from the routing table (tenant,
// namespace and name of the TenantRoute, backend Service) and from fixed sets (code class,
// reason, listener, protocol, TLS version), never from the request. A request that matched no
// rule is counted under "_other".
//
// The per-request path does no label hashing and allocates nothing once a series exists: the
// series of a rule are kept per *routing.Rule and found by pointer; the cache is dropped with
// each new routing table.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
)

// Other is the label value for anything the routing table does not name.
const Other = "_other"

// Label names.
const (
	LabelTenant    = "tenant"
	LabelNamespace = "namespace"
	LabelRoute     = "route"
	LabelBackend   = "backend"
	LabelCodeClass = "code_class"
	LabelReason    = "reason"
)

// Options of the metrics.
type Options struct {
	// InFlight reports the requests being served by protocol (proxy.Proxy.InFlightByProtocol).
	InFlight func() (http1, http2 int64)
	// EjectedEndpoints counts endpoints in their passive-health back-off.
	EjectedEndpoints func() int
	// AccessLogDropped and AccessLogWriteFailures count lost access log lines.
	AccessLogDropped, AccessLogWriteFailures func() uint64
	// Now is the clock of apply timestamps; time.Now when nil.
	Now func() time.Time
}

// Metrics of one proxy process. Its methods are safe for concurrent use.
type Metrics struct {
	now func() time.Time

	requests, requestBytes, responseBytes, local *prometheus.CounterVec
	duration                                     *prometheus.HistogramVec
	connectErrors, timeouts, retries, ejections  *prometheus.CounterVec

	snapshotInfo, lastApply, certExpiry *prometheus.GaugeVec
	applies                             *prometheus.CounterVec
	buildDuration                       *prometheus.HistogramVec

	proc *processCollector

	rules     atomic.Pointer[sync.Map] // *routing.Rule → *ruleSeries, for the live table
	unmatched atomic.Pointer[ruleSeries]
	applyMu   sync.Mutex
}

// DurationBuckets of portico_proxy_request_duration_seconds: 1 ms to 60 s (the default request timeout).
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer, o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	routeLabels := []string{LabelTenant, LabelNamespace, LabelRoute, LabelBackend}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "proxy", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "portico", Subsystem: "proxy", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		now: o.Now,
		requests: counter("requests_total", "Requests served, by route, backend and status code class.",
			append(routeLabels, LabelCodeClass)...),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "portico", Subsystem: "proxy",
			Name: "request_duration_seconds", Help: "Time from the request's arrival to the end of the response.",
			Buckets: DurationBuckets}, append(routeLabels, LabelCodeClass)),
		requestBytes:  counter("request_bytes_total", "Request body bytes received from clients.", routeLabels...),
		responseBytes: counter("response_bytes_total", "Response body bytes sent to clients.", routeLabels...),
		local: counter("local_responses_total", "Answers the proxy made itself (no_route, no_endpoints, upstream_timeout, "+
			"body_too_large, misdirected, rejected_request, redirects...), by reason.", LabelTenant, LabelNamespace, LabelRoute, LabelReason),
		connectErrors: counter("upstream_connect_errors_total", "Failed connection attempts to backend endpoints.", LabelTenant, LabelBackend),
		timeouts:      counter("upstream_timeouts_total", "Requests answered 504 because the backend or request timeout expired.", LabelTenant, LabelBackend),
		retries:       counter("upstream_retries_total", "Attempts on another endpoint after a failed connection.", LabelTenant, LabelBackend),
		ejections:     counter("upstream_ejections_total", "Endpoints taken out of rotation by passive health checks.", LabelTenant, LabelBackend),

		snapshotInfo: gauge("snapshot_info", "The configuration being served: 1 for its version.", LabelTenant, "version"),
		lastApply:    gauge("snapshot_last_apply_timestamp_seconds", "When the routing table in use was applied.", LabelTenant),
		applies: counter("snapshot_applies_total", "Configurations received: applied, or rejected (the last good one keeps serving).",
			LabelTenant, "result"),
		buildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "portico", Subsystem: "proxy",
			Name: "snapshot_build_duration_seconds", Help: "Time to validate a configuration and build its routing table.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5}}, []string{LabelTenant}),
		certExpiry: gauge("certificate_expiry_timestamp_seconds", "NotAfter of each served certificate, by its Secret.",
			LabelTenant, LabelNamespace, "secret"),
		proc: newProcessCollector(o),
	}
	m.rules.Store(new(sync.Map))
	reg.MustRegister(m.requests, m.duration, m.requestBytes, m.responseBytes, m.local,
		m.connectErrors, m.timeouts, m.retries, m.ejections,
		m.snapshotInfo, m.lastApply, m.applies, m.buildDuration, m.certExpiry, m.proc)
	return m
}

func labelOr(v string) string {
	if v == "" {
		return Other
	}
	return v
}

// Observe counts a finished exchange (Metrics is a proxy.Observer).
func (m *Metrics) Observe(ex *proxy.Exchange) {
	rs := m.series(ex.Rule, ex.Tenant)
	b := rs.backend(ex.Backend)
	c := b.code(m, rs, codeClass(ex.Status))
	c.requests.Inc()
	c.duration.Observe(ex.Duration.Seconds())
	if ex.BytesRead > 0 {
		b.counter(&b.in, m.requestBytes, rs).Add(float64(ex.BytesRead))
	}
	if ex.BytesWritten > 0 {
		b.counter(&b.out, m.responseBytes, rs).Add(float64(ex.BytesWritten))
	}
	if ex.Reason != "" {
		rs.localCounter(m, ex.Reason).Inc()
	}
	// The rarer upstream events: label lookups are fine here.
	failedConnects := max(ex.Attempts-1, 0) // only a failed connection is retried
	if ex.Reason == proxy.ReasonUpstreamConnectFailed {
		failedConnects++
	}
	if failedConnects > 0 {
		m.connectErrors.WithLabelValues(rs.tenant, b.label).Add(float64(failedConnects))
	}
	if ex.Attempts > 1 {
		m.retries.WithLabelValues(rs.tenant, b.label).Add(float64(ex.Attempts - 1))
	}
	if ex.Reason == proxy.ReasonUpstreamTimeout {
		m.timeouts.WithLabelValues(rs.tenant, b.label).Inc()
	}
	if ex.Ejections > 0 {
		m.ejections.WithLabelValues(rs.tenant, b.label).Add(float64(ex.Ejections))
	}
}

// Rejected counts a request the raw checks refused before the handler saw it (InBody refusals
// are counted by the handler's exchange).
func (m *Metrics) Rejected(rej *requestcheck.Rejection) {
	if rej.InBody {
		return
	}
	rs := m.series(nil, m.proc.currentTenant())
	b := rs.backend(routing.BackendKey{})
	b.code(m, rs, codeClass(rej.Status)).requests.Inc()
	rs.localCounter(m, proxy.ReasonRejectedRequest).Inc()
}

// Applied records a new routing table: its version, when, and the expiry of the certificates it
// serves (keypairs of the Secrets its TLS blocks name).
func (m *Metrics) Applied(t *routing.Table, kp tlsstore.Keypairs, s proxy.Settings) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	tenant := labelOr(s.Tenant)
	m.proc.setTenant(tenant)
	m.rules.Store(new(sync.Map))
	m.snapshotInfo.Reset()
	m.snapshotInfo.WithLabelValues(tenant, t.Version()).Set(1)
	m.lastApply.Reset()
	m.lastApply.WithLabelValues(tenant).Set(float64(m.now().UnixNano()) / 1e9)
	m.certExpiry.Reset()
	if d, ok := t.Dump().(*routing.TableDump); ok {
		for _, tls := range d.TLS {
			ns, name, _ := strings.Cut(tls.Secret, "/")
			if c := kp[types.NamespacedName{Namespace: ns, Name: name}]; c != nil && c.Leaf != nil {
				m.certExpiry.WithLabelValues(tenant, ns, name).Set(float64(c.Leaf.NotAfter.Unix()))
			}
		}
	}
}

// Built records one configuration received from the source: applied or rejected, and how long
// it took to validate and build.
func (m *Metrics) Built(applied bool, took time.Duration) {
	tenant := m.proc.currentTenant()
	result := "applied"
	if !applied {
		result = "rejected"
	}
	m.applies.WithLabelValues(tenant, result).Inc()
	m.buildDuration.WithLabelValues(tenant).Observe(took.Seconds())
}

// ConnState follows the connections of a listener ("http" or "https"); it is an
// http.Server.ConnState with the listener's name.
func (m *Metrics) ConnState(listener string, state http.ConnState) { m.proc.connState(listener, state) }

// Handshake counts a TLS handshake: its version, or its failure by reason.
func (m *Metrics) Handshake(version uint16, err error) { m.proc.handshake(version, err) }

// ruleSeries are the series of one rule under one tenant, created as requests need them.
type ruleSeries struct {
	tenant, namespace, route string
	backends                 []backendSeries // one per rule backend, then "_other"
	local                    [len(reasons)]atomic.Pointer[counterBox]
}

type backendSeries struct {
	key     routing.BackendKey
	label   string
	codes   [len(codeClasses)]atomic.Pointer[codeSeries]
	in, out atomic.Pointer[counterBox]
}

type codeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

type counterBox struct{ prometheus.Counter }

func (m *Metrics) series(rule *routing.Rule, tenant string) *ruleSeries {
	tenant = labelOr(tenant)
	if rule == nil {
		if rs := m.unmatched.Load(); rs != nil && rs.tenant == tenant {
			return rs
		}
		rs := newRuleSeries(nil, tenant)
		m.unmatched.Store(rs)
		return rs
	}
	rules := m.rules.Load()
	if v, ok := rules.Load(rule); ok {
		if rs := v.(*ruleSeries); rs.tenant == tenant {
			return rs
		}
	}
	rs := newRuleSeries(rule, tenant)
	rules.Store(rule, rs)
	return rs
}

func newRuleSeries(rule *routing.Rule, tenant string) *ruleSeries {
	rs := &ruleSeries{tenant: tenant, namespace: Other, route: Other}
	if rule == nil {
		rs.backends = []backendSeries{{label: Other}}
		return rs
	}
	rs.namespace, rs.route = rule.Route.Namespace, rule.Route.Name
	rs.backends = make([]backendSeries, len(rule.Backends)+1)
	for i, b := range rule.Backends {
		rs.backends[i] = backendSeries{key: b.Key, label: BackendLabel(b.Key)}
	}
	rs.backends[len(rule.Backends)].label = Other
	return rs
}

// BackendLabel is the backend label value of a Service port: "namespace/name:port".
func BackendLabel(k routing.BackendKey) string {
	return k.Namespace + "/" + k.Name + ":" + strconv.Itoa(int(k.Port))
}

func (rs *ruleSeries) backend(k routing.BackendKey) *backendSeries {
	last := len(rs.backends) - 1
	if k.Name != "" {
		for i := range last {
			if rs.backends[i].key == k {
				return &rs.backends[i]
			}
		}
	}
	return &rs.backends[last]
}

func (b *backendSeries) code(m *Metrics, rs *ruleSeries, class int) *codeSeries {
	if c := b.codes[class].Load(); c != nil {
		return c
	}
	lv := []string{rs.tenant, rs.namespace, rs.route, b.label, codeClasses[class]}
	c := &codeSeries{requests: m.requests.WithLabelValues(lv...), duration: m.duration.WithLabelValues(lv...)}
	b.codes[class].Store(c)
	return c
}

func (b *backendSeries) counter(p *atomic.Pointer[counterBox], vec *prometheus.CounterVec, rs *ruleSeries) prometheus.Counter {
	if c := p.Load(); c != nil {
		return c.Counter
	}
	c := &counterBox{vec.WithLabelValues(rs.tenant, rs.namespace, rs.route, b.label)}
	p.Store(c)
	return c.Counter
}

func (rs *ruleSeries) localCounter(m *Metrics, reason string) prometheus.Counter {
	i := reasonIndex(reason)
	if i < 0 {
		return m.local.WithLabelValues(rs.tenant, rs.namespace, rs.route, reason)
	}
	if c := rs.local[i].Load(); c != nil {
		return c.Counter
	}
	c := &counterBox{m.local.WithLabelValues(rs.tenant, rs.namespace, rs.route, reason)}
	rs.local[i].Store(c)
	return c.Counter
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", Other}

func codeClass(status int) int {
	if status >= 100 && status < 600 {
		return status/100 - 1
	}
	return len(codeClasses) - 1
}

// reasons are the proxy's own answers, each with a cached series per rule.
var reasons = [...]string{
	proxy.ReasonNoRoute, proxy.ReasonNoEndpoints, proxy.ReasonNoBackend, proxy.ReasonUpstreamTimeout,
	proxy.ReasonUpstreamConnectFailed, proxy.ReasonUpstreamError, proxy.ReasonBodyTooLarge,
	proxy.ReasonMisdirected, proxy.ReasonForbiddenSource, proxy.ReasonRejectedRequest, proxy.ReasonRedirect,
	proxy.ReasonHTTPSRedirect, proxy.ReasonNotReady, proxy.ReasonClientClosed, proxy.ReasonCORSPreflight,
}

func reasonIndex(r string) int {
	for i, v := range reasons {
		if v == r {
			return i
		}
	}
	return -1
}
