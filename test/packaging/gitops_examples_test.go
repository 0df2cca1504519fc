package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portico-dev/portico/internal/manifest"
)

// TestGitOpsExamples: the Argo CD Application and Flux HelmRelease examples in docs/gitops point at
// the chart and pass it values its schema accepts (rendered with helm template); the Flux
// Kustomizations wait for health, with no TenantRoute health expressions (kstatus reads its conditions).
func TestGitOpsExamples(t *testing.T) {
	dir := filepath.Join(root, "docs", "gitops")
	argo, err := manifest.ReadFile(filepath.Join(dir, "argocd", "application.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	flux, err := manifest.ReadFile(filepath.Join(dir, "flux", "helmrelease.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fluxKs, err := manifest.ReadFile(filepath.Join(dir, "flux", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	app := find(t, argo, "Application", "portico")
	path, _, _ := unstructured.NestedString(app.Object, "spec", "source", "path")
	ns, _, _ := unstructured.NestedString(app.Object, "spec", "destination", "namespace")
	values, _, _ := unstructured.NestedMap(app.Object, "spec", "source", "helm", "valuesObject")
	if path != "charts/portico" || ns != releaseNamespace {
		t.Errorf("Application portico: path %q into %q, want charts/portico into %s", path, ns, releaseNamespace)
	}
	renderWithValues(t, "argocd Application", values)

	hr := find(t, flux, "HelmRelease", "portico")
	chart, _, _ := unstructured.NestedString(hr.Object, "spec", "chart", "spec", "chart")
	if chart != "./charts/portico" || hr.GetNamespace() != releaseNamespace {
		t.Errorf("HelmRelease: chart %q in %q, want ./charts/portico in %s", chart, hr.GetNamespace(), releaseNamespace)
	}
	for _, field := range [][]string{{"spec", "install", "crds"}, {"spec", "upgrade", "crds"}} {
		v, _, _ := unstructured.NestedString(hr.Object, field...)
		if want := map[string]string{"install": "Create", "upgrade": "CreateReplace"}[field[1]]; v != want {
			t.Errorf("HelmRelease %s = %q, want %q (Helm alone never upgrades CRDs)", strings.Join(field, "."), v, want)
		}
	}
	values, _, _ = unstructured.NestedMap(hr.Object, "spec", "values")
	renderWithValues(t, "flux HelmRelease", values)

	for _, o := range fluxKs {
		if o.GetKind() != "Kustomization" {
			continue
		}
		if wait, _, _ := unstructured.NestedBool(o.Object, "spec", "wait"); !wait {
			t.Errorf("Kustomization %s: spec.wait must be true, or Flux never looks at health", o.GetName())
		}
		// TenantRoute carries kstatus' summary conditions: Flux needs no health expressions for it.
		exprs, _, _ := unstructured.NestedSlice(o.Object, "spec", "healthCheckExprs")
		for _, e := range exprs {
			if e, _ := e.(map[string]any); e["kind"] == "TenantRoute" {
				t.Errorf("Kustomization %s: TenantRoute healthCheckExprs are not needed (kstatus reads Ready/Reconciling/Stalled)", o.GetName())
			}
		}
	}
}

func renderWithValues(t *testing.T, what string, values map[string]any) {
	t.Helper()
	if len(values) == 0 {
		t.Fatalf("%s: no values", what)
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if objs := helmTemplate(t, "-f", f); len(objs) == 0 {
		t.Fatalf("%s: the chart rendered nothing", what)
	}
}
