package runner

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"

	"github.com/portico-dev/portico/dataplane/accesslog"
	"github.com/portico-dev/portico/dataplane/metrics"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/tracing"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// observability is the access log, the metrics and the tracer of the process, and the rule that
// combines the flags with the EdgeProxy's spec.observability: what the EdgeProxy sets wins, what
// it leaves out comes from the flags.
type observability struct {
	cfg      Config
	format   accesslog.Format
	registry *prometheus.Registry
	access   *accesslog.Logger
	metrics  *metrics.Metrics
	tracer   *tracing.Tracer
	file     *os.File
	log      *slog.Logger
}

func newObservability(c Config, log *slog.Logger) (*observability, error) {
	format, ok := accesslog.ParseFormat(c.AccessLogFormat)
	if !ok {
		return nil, fmt.Errorf("--access-log-format %q: want json or text", c.AccessLogFormat)
	}
	if c.TracingSamplingPercent < 0 || c.TracingSamplingPercent > 100 {
		return nil, fmt.Errorf("--tracing-sampling-percent %v: want 0 to 100", c.TracingSamplingPercent)
	}
	o := &observability{cfg: c, format: format, log: log, tracer: tracing.New(), registry: c.Registry}
	w := c.AccessLogWriter
	switch {
	case w != nil:
	case c.AccessLogFile == "" || c.AccessLogFile == "-" || c.AccessLogFile == "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(c.AccessLogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("--access-log-file: %w", err)
		}
		o.file, w = f, f
	}
	o.access = accesslog.New(accesslog.Options{Writer: w, Format: format, Disabled: !c.AccessLog})
	if o.registry == nil {
		o.registry = prometheus.NewRegistry()
		o.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("exporting traces failed", "error", err)
	}))
	return o, nil
}

// wire connects the metrics to the proxy, the endpoint store and the access log; they exist once
// the proxy does.
func (o *observability) wire(p *proxy.Proxy, endpoints *upstream.Store) {
	o.metrics = metrics.New(o.registry, metrics.Options{
		InFlight:               p.InFlightByProtocol,
		EjectedEndpoints:       endpoints.Health.EjectedCount,
		AccessLogDropped:       o.access.Dropped,
		AccessLogWriteFailures: o.access.WriteFailures,
	})
}

// observer and tracer are what the proxy handler is built with.
func (o *observability) observer() proxy.Observer {
	return proxy.Observers{proxy.ObserverFunc(func(ex *proxy.Exchange) { o.metrics.Observe(ex) }), o.access}
}

// rejected is server.Config.OnReject.
func (o *observability) rejected(r *requestcheck.Rejection, remote net.Addr) {
	o.metrics.Rejected(r)
	o.access.Rejected(r, remote)
	o.log.Debug("request rejected", "status", r.Status, "detail", r.Detail)
}

// routesApplied is server.Dataplane.OnRoutes: record the table, then apply the EdgeProxy's
// observability settings over the flags.
func (o *observability) routesApplied(t *routing.Table, kp tlsstore.Keypairs, s proxy.Settings) {
	o.metrics.Applied(t, kp, s)
	o.access.SetTenant(s.Tenant)

	enabled, format := o.cfg.AccessLog, o.format
	tc := tracing.Config{Endpoint: o.cfg.TracingEndpoint, SamplingPercent: o.cfg.TracingSamplingPercent,
		Tenant: s.Tenant, PodName: os.Getenv("POD_NAME"), PodNamespace: os.Getenv("POD_NAMESPACE"),
		BatchTimeout: o.cfg.TracingBatchTimeout}
	if ob := s.Observability; ob != nil {
		if al := ob.AccessLog; al != nil {
			enabled = al.Enabled == nil || *al.Enabled // the API's default is on
			if f, ok := accesslog.ParseFormat(string(al.Format)); ok && al.Format != "" {
				format = f
			}
		}
		if tr := ob.Tracing; tr != nil {
			tc.Endpoint, tc.SamplingPercent = tr.Endpoint, 1 // the API's default
			if tr.SamplingPercent != nil {
				tc.SamplingPercent = float64(*tr.SamplingPercent)
			}
		}
	}
	if enabled != o.access.Enabled() {
		o.log.Info("access log switched", "enabled", enabled)
	}
	o.access.SetEnabled(enabled)
	o.access.SetFormat(format)
	wasOn := o.tracer.Enabled()
	if err := o.tracer.Configure(tc); err != nil {
		o.log.Error("tracing not reconfigured; the previous setting stays", "error", err)
	} else if wasOn != o.tracer.Enabled() {
		o.log.Info("tracing switched", "enabled", o.tracer.Enabled(), "endpoint", tc.Endpoint, "sampling_percent", tc.SamplingPercent)
	}
}

// close flushes the access log and the spans, within ctx.
func (o *observability) close(ctx context.Context) {
	if err := o.access.Close(ctx); err != nil {
		o.log.Warn("access log not flushed", "error", err)
	}
	if err := o.tracer.Shutdown(ctx); err != nil {
		o.log.Warn("traces not flushed", "error", err)
	}
	if o.file != nil {
		_ = o.file.Close()
	}
}
