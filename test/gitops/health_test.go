// Package gitops tests what GitOps tools make of Portico's objects: the Argo CD health checks (Lua,
// in docs/gitops/argocd) run with gopher-lua the way Argo CD runs them, and kstatus (what Flux and
// kpt use) on sample EdgeProxy and TenantRoute statuses.
package gitops

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	lua "github.com/yuin/gopher-lua"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/portico-dev/portico/internal/testenv"
)

var customizations = filepath.Join(testenv.RepoRoot(), "docs", "gitops", "argocd", "resource_customizations")

// healthTests is Argo CD's health_test.yaml format.
type healthTests struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
	} `json:"tests"`
}

// health runs a health script as Argo CD does: a fresh VM with only the package, base and table
// libraries (Argo CD opens no string, io or full os library), the object as global `obj`, and the
// returned table's status and message.
func health(script string, obj map[string]any) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, want a table", l.Get(-1).Type())
	}
	st, ok := ret.RawGetString("status").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("the returned table has no string status")
	}
	msg, _ := ret.RawGetString("message").(lua.LString)
	switch st {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return "", "", fmt.Errorf("status %q is not an Argo CD health status", st)
	}
	return string(st), string(msg), nil
}

// toLua converts decoded JSON the way Argo CD's VM does: objects and arrays become tables (arrays
// 1-based), numbers LNumber.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected %T in decoded JSON", v))
	}
}

func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Integers as int64, as the API machinery (and kstatus) expect them.
	var obj map[string]any
	if err := utilyaml.Unmarshal(data, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// TestArgoCDHealthChecks runs every case of every health_test.yaml, and checks that each testdata
// file is covered and that each kind covers Healthy, Progressing and Degraded.
func TestArgoCDHealthChecks(t *testing.T) {
	for _, kind := range []string{"EdgeProxy", "TenantRoute"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(customizations, "edge.portico.dev", kind)
			script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var tests healthTests
			if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
				t.Fatalf("health_test.yaml: %v", err)
			}
			covered, statuses := map[string]bool{}, map[string]bool{}
			for _, tc := range tests.Tests {
				covered[filepath.Clean(tc.InputPath)] = true
				statuses[tc.HealthStatus.Status] = true
				t.Run(tc.InputPath, func(t *testing.T) {
					obj := readObject(t, filepath.Join(dir, tc.InputPath))
					if obj["kind"] != kind {
						t.Fatalf("%s is a %v, not a %s", tc.InputPath, obj["kind"], kind)
					}
					status, message, err := health(string(script), obj)
					if err != nil {
						t.Fatal(err)
					}
					if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
						t.Errorf("health = %s %q, want %s %q", status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
					}
				})
			}
			files, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
			for _, f := range files {
				if rel := filepath.Join("testdata", filepath.Base(f)); !covered[rel] {
					t.Errorf("%s has no case in health_test.yaml", rel)
				}
			}
			for _, s := range []string{"Healthy", "Progressing", "Degraded"} {
				if !statuses[s] {
					t.Errorf("no case expects %s", s)
				}
			}
		})
	}
}

// TestArgoCDHealthChecksSurviveOddObjects: a health script that raises an error makes Argo CD show
// the resource's health as Unknown with a Lua stack trace; partial statuses must not do that.
func TestArgoCDHealthChecksSurviveOddObjects(t *testing.T) {
	odd := map[string]map[string]any{
		"no metadata.generation": {"kind": "X", "metadata": map[string]any{}, "status": map[string]any{
			"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "Available", "message": "m"}}}},
		"condition without reason or message": {"kind": "X", "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{
			"observedGeneration": int64(1),
			"conditions": []any{
				map[string]any{"type": "Accepted", "status": "False"},
				map[string]any{"type": "Stalled", "status": "True"},
			}}},
		"empty conditions":          {"kind": "X", "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"conditions": []any{}}},
		"status without conditions": {"kind": "X", "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"observedGeneration": int64(1)}},
	}
	for _, kind := range []string{"EdgeProxy", "TenantRoute"} {
		script, err := os.ReadFile(filepath.Join(customizations, "edge.portico.dev", kind, "health.lua"))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(odd))
		for n := range odd {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if _, _, err := health(string(script), odd[n]); err != nil {
				t.Errorf("%s, %s: %v", kind, n, err)
			}
		}
	}
}

// TestArgoCDConfigMapPatch: the argocd-cm patch embeds exactly the Lua files.
func TestArgoCDConfigMapPatch(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "docs", "gitops", "argocd", "argocd-cm-health-patch.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind     string            `json:"kind"`
		Metadata map[string]any    `json:"metadata"`
		Data     map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata["name"] != "argocd-cm" {
		t.Fatalf("%s is not the argocd-cm ConfigMap", path)
	}
	scripts, _ := filepath.Glob(filepath.Join(customizations, "*", "*", "health.lua"))
	if len(scripts) != 2 {
		t.Fatalf("want the EdgeProxy and TenantRoute health checks, found %v", scripts)
	}
	for _, s := range scripts {
		kind := filepath.Base(filepath.Dir(s))
		group := filepath.Base(filepath.Dir(filepath.Dir(s)))
		key := "resource.customizations.health." + group + "_" + kind
		want, _ := os.ReadFile(s)
		if got, ok := cm.Data[key]; !ok || !bytes.Equal([]byte(got), want) {
			t.Errorf("%s: %s differs from %s; run hack/argocd-health-cm.sh (make manifests)", path, key, s)
		}
	}
	if len(cm.Data) != len(scripts) {
		t.Errorf("%s has %d entries for %d scripts; run hack/argocd-health-cm.sh", path, len(cm.Data), len(scripts))
	}
}
