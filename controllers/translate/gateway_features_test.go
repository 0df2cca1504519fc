package translate

import (
	"fmt"
	"os"
	"strings"
	"testing"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

const (
	gatewayDoc        = "../../docs/gateway-api.md"
	featureTableBegin = "<!-- BEGIN GENERATED FEATURE TABLE: go test ./controllers/translate -update -->"
	featureTableEnd   = "<!-- END GENERATED FEATURE TABLE -->"
)

// featureTable renders GatewayFeatures as the doc's table.
func featureTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d features, the GatewayClass's status.supportedFeatures.\n\n", len(GatewayFeatures))
	b.WriteString("| Conformance feature | Channel | What Portico does |\n")
	b.WriteString("| --- | --- | --- |\n")
	for _, f := range GatewayFeatures {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Name, features.GetFeature(f.Name).Channel, strings.ReplaceAll(f.Portico, "|", `\|`))
	}
	return b.String()
}

// TestGatewayDocIsCurrent keeps docs/gateway-api.md's feature table equal to GatewayFeatures; -update
// rewrites it (the prose around it is hand-written).
func TestGatewayDocIsCurrent(t *testing.T) {
	data, err := os.ReadFile(gatewayDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, featureTableBegin), strings.Index(doc, featureTableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s must hold the markers %q and %q", gatewayDoc, featureTableBegin, featureTableEnd)
	}
	want := "\n" + featureTable()
	if doc[begin+len(featureTableBegin):end] == want {
		return
	}
	if *update {
		if err := os.WriteFile(gatewayDoc, []byte(doc[:begin+len(featureTableBegin)]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the feature table of %s is out of date; run go test ./controllers/translate -update", gatewayDoc)
}

// TestGatewayFeatures keeps the list a valid claim: conformance names the gateway-api module
// knows, sorted, unique, described, and what the GatewayClass status publishes.
func TestGatewayFeatures(t *testing.T) {
	for i, f := range GatewayFeatures {
		if features.GetFeature(f.Name).Name != f.Name {
			t.Errorf("%s is not a feature of sigs.k8s.io/gateway-api/pkg/features", f.Name)
		}
		if i > 0 && GatewayFeatures[i-1].Name >= f.Name {
			t.Errorf("%s is out of order or duplicated", f.Name)
		}
		if !strings.HasSuffix(f.Portico, ".") {
			t.Errorf("%s: the description must be a sentence", f.Name)
		}
		if SupportedGatewayFeatures[i] != f.Name {
			t.Errorf("SupportedGatewayFeatures[%d] = %s, want %s", i, SupportedGatewayFeatures[i], f.Name)
		}
	}
	gc := &gwapiv1.GatewayClass{Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}
	st := GatewayClassStatus(gc, nil)
	if len(st.SupportedFeatures) != len(SupportedGatewayFeatures) {
		t.Fatalf("GatewayClass status lists %d features, want %d", len(st.SupportedFeatures), len(SupportedGatewayFeatures))
	}
	for i, f := range st.SupportedFeatures {
		if string(f.Name) != string(SupportedGatewayFeatures[i]) {
			t.Errorf("supportedFeatures[%d] = %s, want %s", i, f.Name, SupportedGatewayFeatures[i])
		}
	}
}
