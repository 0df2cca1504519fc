package routing

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// testDefaults is a YAML document of kind TestDefaults in a golden input: the snapshot's Defaults.
type testDefaults struct {
	Kind                string `json:"kind"`
	MaxRequestBodyBytes int64  `json:"maxRequestBodyBytes,omitempty"`
	RequestTimeout      string `json:"requestTimeout,omitempty"`
	BackendTimeout      string `json:"backendTimeout,omitempty"`
}

// parseSnapshot reads multi-document YAML: TenantRoutes, and optionally one TestDefaults document.
func parseSnapshot(t testing.TB, text string) Snapshot {
	t.Helper()
	var s Snapshot
	for i, doc := range splitYAML(text) {
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch probe.Kind {
		case "TestDefaults":
			var d testDefaults
			if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			s.Defaults = Defaults{MaxRequestBodyBytes: d.MaxRequestBodyBytes, RequestTimeout: mustDuration(t, d.RequestTimeout), BackendTimeout: mustDuration(t, d.BackendTimeout)}
		case "TenantRoute":
			var tr edgev1alpha1.TenantRoute
			if err := yaml.UnmarshalStrict([]byte(doc), &tr); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			s.Routes = append(s.Routes, tr)
		default:
			t.Fatalf("document %d: unexpected kind %q", i, probe.Kind)
		}
	}
	return s
}

func splitYAML(text string) []string {
	var docs []string
	for _, doc := range strings.Split("\n"+text, "\n---") {
		if strings.TrimSpace(stripComments(doc)) != "" {
			docs = append(docs, doc)
		}
	}
	return docs
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func mustDuration(t testing.TB, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustBuild(t testing.TB, text string) *Table {
	t.Helper()
	tbl, errs := Build(parseSnapshot(t, text))
	for _, e := range errs {
		t.Errorf("route %s/%s: %v", e.Namespace, e.Name, e.Errors)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return tbl
}

// routeYAML writes a TenantRoute document; rules is YAML indented for spec.rules.
func routeYAML(ns, name, created string, hosts []string, rules string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "---\napiVersion: edge.portico.dev/v1alpha1\nkind: TenantRoute\nmetadata:\n  namespace: %s\n  name: %s\n", ns, name)
	if created != "" {
		fmt.Fprintf(&b, "  creationTimestamp: %q\n", created)
	}
	b.WriteString("spec:\n  edgeProxy: edge\n")
	if len(hosts) > 0 {
		b.WriteString("  hostnames:\n")
		for _, h := range hosts {
			fmt.Fprintf(&b, "  - %q\n", h)
		}
	}
	b.WriteString("  rules:\n" + rules)
	return b.String()
}
