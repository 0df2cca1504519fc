package controllers

import (
	"context"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Operator metrics beyond controller-runtime's own (reconcile totals, errors and durations per
// controller, workqueue depth). They are computed at scrape time from the informer cache, so a
// reconcile never has to remember to update a gauge and the numbers cannot drift from the objects.
var (
	routesDesc = prometheus.NewDesc("portico_operator_routes",
		"TenantRoutes per EdgeProxy by the status and reason of one condition type.",
		[]string{"edgeproxy", "condition", "status", "reason"}, nil)
	edgeProxyReadyDesc = prometheus.NewDesc("portico_operator_edgeproxy_ready",
		"1 when the EdgeProxy's Ready condition is True for its current generation.",
		[]string{"edgeproxy"}, nil)
	edgeProxyReplicasDesc = prometheus.NewDesc("portico_operator_edgeproxy_ready_replicas",
		"Ready proxy replicas of the EdgeProxy, from its status.",
		[]string{"edgeproxy"}, nil)
)

// routeConditionTypes are the TenantRoute conditions counted by portico_operator_routes.
var routeConditionTypes = []edgev1alpha1.ConditionType{
	edgev1alpha1.RouteConditionAccepted, edgev1alpha1.RouteConditionResolvedRefs,
	edgev1alpha1.RouteConditionCertificateReady, edgev1alpha1.RouteConditionProgrammed,
}

// statusCollector lists EdgeProxies and TenantRoutes from a (cached) reader at scrape time.
type statusCollector struct {
	reader client.Reader
}

// RegisterMetrics adds Portico's operator metrics to controller-runtime's registry, which the
// manager serves on --metrics-bind-address.
func RegisterMetrics(reader client.Reader) error {
	return ctrlmetrics.Registry.Register(&statusCollector{reader: reader})
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- routesDesc
	ch <- edgeProxyReadyDesc
	ch <- edgeProxyReplicasDesc
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx := context.Background()
	var proxies edgev1alpha1.EdgeProxyList
	var routes edgev1alpha1.TenantRouteList
	// A cache that is not synced yet simply yields no samples for this scrape.
	if err := c.reader.List(ctx, &proxies); err == nil {
		for _, m := range edgeProxyMetrics(proxies.Items) {
			ch <- m
		}
	}
	if err := c.reader.List(ctx, &routes); err == nil {
		for _, m := range routeMetrics(routes.Items) {
			ch <- m
		}
	}
}

func edgeProxyMetrics(proxies []edgev1alpha1.EdgeProxy) []prometheus.Metric {
	var out []prometheus.Metric
	for i := range proxies {
		ep := &proxies[i]
		ready := 0.0
		if c := meta.FindStatusCondition(ep.Status.Conditions, string(edgev1alpha1.EdgeProxyConditionReady)); c != nil &&
			c.Status == "True" && c.ObservedGeneration == ep.Generation {
			ready = 1
		}
		out = append(out,
			prometheus.MustNewConstMetric(edgeProxyReadyDesc, prometheus.GaugeValue, ready, ep.Name),
			prometheus.MustNewConstMetric(edgeProxyReplicasDesc, prometheus.GaugeValue, float64(ep.Status.ReadyReplicas), ep.Name))
	}
	return out
}

// routeMetrics counts routes by (edgeproxy, condition, status, reason). A condition not yet written
// counts as status "Unknown", reason "NotObserved". Label values come from the API's own condition
// vocabulary and object names, never from free text.
func routeMetrics(routes []edgev1alpha1.TenantRoute) []prometheus.Metric {
	type key struct{ edgeProxy, condition, status, reason string }
	counts := map[key]float64{}
	for i := range routes {
		tr := &routes[i]
		for _, t := range routeConditionTypes {
			k := key{tr.Spec.EdgeProxy, string(t), "Unknown", "NotObserved"}
			if c := meta.FindStatusCondition(tr.Status.Conditions, string(t)); c != nil {
				k.status, k.reason = string(c.Status), c.Reason
			}
			counts[k]++
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.edgeProxy != b.edgeProxy {
			return a.edgeProxy < b.edgeProxy
		}
		if a.condition != b.condition {
			return a.condition < b.condition
		}
		if a.status != b.status {
			return a.status < b.status
		}
		return a.reason < b.reason
	})
	out := make([]prometheus.Metric, 0, len(keys))
	for _, k := range keys {
		out = append(out, prometheus.MustNewConstMetric(routesDesc, prometheus.GaugeValue, counts[k], k.edgeProxy, k.condition, k.status, k.reason))
	}
	return out
}
