package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/dataplane/metrics"
)

const dashboardFile = "../../config/grafana/portico-dashboard.json"

// exprs collects every PromQL expression of a dashboard: panel targets (rows included) and
// templating queries.
func exprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			switch s, isString := val.(string); {
			case isString && (k == "expr" || k == "definition"):
				*out = append(*out, s)
			case isString && k == "query" && strings.Contains(s, "portico_"):
				*out = append(*out, s)
			default:
				exprs(val, out)
			}
		}
	case []any:
		for _, val := range x {
			exprs(val, out)
		}
	}
}

var (
	metricRef = regexp.MustCompile(`\b(portico_[a-z0-9_]+)\b(\{[^}]*\})?`)
	matcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	grouping  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// The dashboard may only query what the proxy registers: every metric name must exist, every
// label matcher and grouping label must be a label those metrics have.
func TestDashboardQueriesRegisteredMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	rec := &recorder{Registerer: prometheus.NewRegistry()}
	metrics.New(rec, metrics.Options{})
	known := rec.series("portico_proxy_request_duration_seconds", "portico_proxy_snapshot_build_duration_seconds")

	var all []string
	exprs(dash, &all)
	if len(all) < 10 {
		t.Fatalf("only %d expressions found", len(all))
	}
	used := map[string]bool{}
	for _, e := range all {
		refs := metricRef.FindAllStringSubmatch(e, -1)
		if len(refs) == 0 {
			t.Errorf("%q queries no portico metric", e)
		}
		var labelsOfExpr []string
		for _, ref := range refs {
			labels, ok := known[ref[1]]
			if !ok {
				t.Errorf("%q: %s is not a metric the proxy registers", e, ref[1])
				continue
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(ref[1], "_bucket"), "_sum"), "_count")] = true
			labelsOfExpr = append(labelsOfExpr, labels...)
			for _, m := range matcher.FindAllStringSubmatch(ref[2], -1) {
				if !slices.Contains(labels, m[1]) {
					t.Errorf("%q: %s has no label %s", e, ref[1], m[1])
				}
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !slices.Contains(labelsOfExpr, l) {
					t.Errorf("%q: groups by %s, which its metrics lack", e, l)
				}
			}
		}
	}
	// What on-call needs first must be on it.
	for _, m := range []string{"portico_proxy_requests_total", "portico_proxy_request_duration_seconds",
		"portico_proxy_local_responses_total", "portico_proxy_certificate_expiry_timestamp_seconds"} {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}
