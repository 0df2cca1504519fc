package controllers

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// fixedCollector serves the metrics computed from fixed lists, so the pure part of statusCollector
// is tested without a reader.
type fixedCollector struct {
	proxies []edgev1alpha1.EdgeProxy
	routes  []edgev1alpha1.TenantRoute
}

func (f fixedCollector) Describe(ch chan<- *prometheus.Desc) { (&statusCollector{}).Describe(ch) }
func (f fixedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range append(edgeProxyMetrics(f.proxies), routeMetrics(f.routes)...) {
		ch <- m
	}
}

func route(name, ep string, conds ...metav1.Condition) edgev1alpha1.TenantRoute {
	tr := edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "a"}}
	tr.Spec.EdgeProxy = ep
	tr.Status.Conditions = conds
	return tr
}

func cond(t edgev1alpha1.ConditionType, status metav1.ConditionStatus, reason edgev1alpha1.ConditionReason) metav1.Condition {
	return metav1.Condition{Type: string(t), Status: status, Reason: string(reason)}
}

func TestOperatorMetricsFromStatus(t *testing.T) {
	ready := edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Generation: 2}}
	ready.Status.ReadyReplicas = 2
	ready.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "True", ObservedGeneration: 2, Reason: "Available"}}
	stale := edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "team-b", Generation: 3}}
	stale.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "True", ObservedGeneration: 2, Reason: "Available"}}

	c := fixedCollector{
		proxies: []edgev1alpha1.EdgeProxy{ready, stale},
		routes: []edgev1alpha1.TenantRoute{
			route("shop", "team-a", cond(edgev1alpha1.RouteConditionAccepted, "True", edgev1alpha1.RouteReasonAccepted)),
			route("blog", "team-a", cond(edgev1alpha1.RouteConditionAccepted, "True", edgev1alpha1.RouteReasonAccepted)),
			route("hijack", "team-a", cond(edgev1alpha1.RouteConditionAccepted, "False", edgev1alpha1.RouteReasonHostnameConflict)),
		},
	}
	want := `
# HELP portico_operator_edgeproxy_ready 1 when the EdgeProxy's Ready condition is True for its current generation.
# TYPE portico_operator_edgeproxy_ready gauge
portico_operator_edgeproxy_ready{edgeproxy="team-a"} 1
portico_operator_edgeproxy_ready{edgeproxy="team-b"} 0
# HELP portico_operator_routes TenantRoutes per EdgeProxy by the status and reason of one condition type.
# TYPE portico_operator_routes gauge
portico_operator_routes{condition="Accepted",edgeproxy="team-a",reason="Accepted",status="True"} 2
portico_operator_routes{condition="Accepted",edgeproxy="team-a",reason="HostnameConflict",status="False"} 1
portico_operator_routes{condition="CertificateReady",edgeproxy="team-a",reason="NotObserved",status="Unknown"} 3
portico_operator_routes{condition="Programmed",edgeproxy="team-a",reason="NotObserved",status="Unknown"} 3
portico_operator_routes{condition="ResolvedRefs",edgeproxy="team-a",reason="NotObserved",status="Unknown"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "portico_operator_edgeproxy_ready", "portico_operator_routes"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(c, "portico_operator_routes"); got != 5 {
		t.Fatalf("want 5 route series (Accepted×2, and NotObserved for the 3 other types), got %d", got)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("metric lint: %+v", problems)
	}
}
