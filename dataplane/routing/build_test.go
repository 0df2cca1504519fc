package routing

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden testdata/build/*.out.yaml files")

// goldenOut is what a testdata/build/<case>.out.yaml holds.
type goldenOut struct {
	Errors []goldenError `json:"errors,omitempty"`
	Table  any           `json:"table"`
}

type goldenError struct {
	Route  string   `json:"route"`
	Errors []string `json:"errors"`
}

// TestBuildGolden builds testdata/build/<case>.in.yaml (TenantRoutes, optionally a TestDefaults
// document) and compares the table's Dump and the route errors with <case>.out.yaml.
// go test ./dataplane/routing -update rewrites the goldens.
func TestBuildGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/build/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			snap := parseSnapshot(t, string(text))
			snap.Version = name
			tbl, errs := Build(snap)
			out := goldenOut{Table: tbl.Dump()}
			for _, re := range errs {
				ge := goldenError{Route: re.Namespace + "/" + re.Name}
				for _, e := range re.Errors {
					ge.Errors = append(ge.Errors, e.Error())
				}
				out.Errors = append(out.Errors, ge)
			}
			got, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			outPath := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run go test ./dataplane/routing -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", outPath, diff)
			}
			// Build is deterministic: the same snapshot in reverse order gives the same table.
			for i, j := 0, len(snap.Routes)-1; i < j; i, j = i+1, j-1 {
				snap.Routes[i], snap.Routes[j] = snap.Routes[j], snap.Routes[i]
			}
			rev, _ := Build(snap)
			if diff := cmp.Diff(tbl.Dump(), rev.Dump()); diff != "" {
				t.Errorf("Build depends on route order (-forward +reverse):\n%s", diff)
			}
		})
	}
}
