package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/dataplane/runner"
	"github.com/portico-dev/portico/internal/filesmode"
)

func newProxyCommand() *cobra.Command {
	var (
		c        runner.Config
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a Portico proxy",
		Long: `Run a Portico proxy.

With --files DIR the proxy runs standalone, with no cluster: DIR holds ordinary Kubernetes YAML
(TenantRoute, Ingress with its IngressClass, Service, EndpointSlice, kubernetes.io/tls Secret,
optionally one EdgeProxy), is watched, and every change is applied within a second without
dropping connections. Ingresses go through the operator's own translation and routes through its
admission. An invalid file is logged (file, object, field) and the last good configuration keeps
serving.
Try examples/standalone.

Access log lines go to stdout (one JSON object per request unless --access-log-format text),
the proxy's own logs to stderr, Prometheus metrics to the admin port's /metrics, and traces,
when --tracing-endpoint is set, to an OpenTelemetry collector over OTLP/HTTP.`,
		Example: `  portico proxy --files examples/standalone
  curl -H 'Host: hello.localhost' http://127.0.0.1:8080/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			c.FilesHooks = filesmode.Hooks()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runner.Run(ctx, c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Files, "files", "", "serve the Kubernetes YAML in this directory (standalone mode)")
	f.StringVar(&c.HTTPAddr, "http-addr", ":8080", "plain HTTP listener address")
	f.StringVar(&c.HTTPSAddr, "https-addr", ":8443", "HTTPS listener address")
	f.StringVar(&c.AdminAddr, "admin-addr", ":9901", "admin listener address (/healthz, /readyz, /metrics, /debug/routes)")
	f.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM, keep serving this long after turning not ready")
	f.DurationVar(&c.DrainTimeout, "drain-timeout", 60*time.Second, "after the grace period, wait this long for open requests to finish")
	f.IntVar(&c.TrustedHops, "trusted-hops", 0, "number of proxies in front whose X-Forwarded-For entries are trusted")
	f.BoolVar(&c.UnsafeAllowLoopbackBackends, "unsafe-allow-loopback-backends", false,
		"UNSAFE: let backends resolve to 127.0.0.0/8 or ::1 in cluster mode (local platforms only; always on with --files)")
	f.BoolVar(&c.H2C, "h2c", false, "serve prior-knowledge cleartext HTTP/2 on the HTTP listener")
	f.StringVar(&c.Tenant, "tenant", "", "EdgeProxy name for metrics, access logs and traces (with --files, an EdgeProxy in DIR wins)")
	f.BoolVar(&c.AccessLog, "access-log", true, "write one access log line per request")
	f.StringVar(&c.AccessLogFormat, "access-log-format", "json", "access log format: json or text (common log format plus key=value fields)")
	f.StringVar(&c.AccessLogFile, "access-log-file", "", "append access log lines to this file instead of stdout")
	f.StringVar(&c.TracingEndpoint, "tracing-endpoint", "",
		"export OpenTelemetry traces over OTLP/HTTP to this collector: host:port (plain HTTP) or an http(s):// URL; empty: no tracing")
	f.Float64Var(&c.TracingSamplingPercent, "tracing-sampling-percent", 1,
		"percent of new traces sampled (0-100); requests whose traceparent carries a decision follow it")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	// Cluster mode: the operator's snapshot stream (docs/config-delivery.md).
	f.StringVar(&c.Operator.Address, "operator-address", "", "host:port of the operator's snapshot service (cluster mode)")
	f.StringVar(&c.Operator.CAFile, "operator-ca-file", "/var/run/secrets/edge.portico.dev/operator-ca/ca.crt",
		"CA bundle the operator's certificate must chain to (ca.crt of the operator's portico-operator-ca Secret)")
	f.StringVar(&c.Operator.TokenFile, "token-file", "/var/run/secrets/edge.portico.dev/operator/token",
		"projected ServiceAccount token (audience portico-operator) presented to the operator")
	c.Operator.PodName, c.Operator.NodeName = os.Getenv("POD_NAME"), os.Getenv("NODE_NAME")
	return cmd
}
