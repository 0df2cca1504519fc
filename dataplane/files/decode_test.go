package files

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/proxy"
)

// decodeBothWays decodes every document of data with the single-parse path and with
// sigs.k8s.io/yaml's two parses, and fails when they disagree in any way.
func decodeBothWays(t *testing.T, name string, data []byte) {
	t.Helper()
	docs, split := splitDocs(name, data)
	fast, slow := &objects{}, &objects{}
	for _, d := range docs {
		decodeDoc(d.file, d.idx, d.raw, true).apply(fast, name, d.raw)
		decodeDoc(d.file, d.idx, d.raw, false).apply(slow, name, d.raw)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Errorf("%s: single-parse decoding differs from sigs.k8s.io/yaml's:\nfast %+v\nslow %+v\n(split problem %v)", name, fast, slow, split)
	}
}

// The single-parse decoding gives exactly what sigs.k8s.io/yaml gives, problems included, on
// documents chosen for the corners of YAML → JSON → struct.
func TestSingleParseDecodingMatchesSigsYAML(t *testing.T) {
	docs := []string{
		benchRouteYAML(1),
		// Strings that YAML reads as numbers or booleans, into string fields.
		"apiVersion: v1\nkind: Service\nmetadata: {name: yes, namespace: 123}\nspec: {ports: [{name: on, port: 80, targetPort: 8080}]}\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: 1.5, labels: {a: true, b: 3, c: null}}\n",
		// Key case: encoding/json matches case-insensitively.
		"apiVersion: v1\nKind: Namespace\nmetadata: {Name: caps}\n",
		"apiVersion: v1\nkind: Namespace\nKIND: Service\nmetadata: {name: twice}\n",
		// Duplicate keys: strict YAML refuses them, the kind read does not.
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: 1}\ndata: {x: 2}\n",
		// Unknown fields, wrong types, missing kind, unknown kinds.
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {portz: []}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: {name: x}}\n",
		"apiVersion: v1\nmetadata: {name: nokind}\n",
		"apiVersion: v1\nkind: [Service]\n",
		"kind: 5\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: .nan}\n",
		// Not a mapping, null, NaN, infinite, non-string and null keys, binary.
		"- a\n- b\n",
		"~\n",
		"just a string\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {x: .inf}}\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\nextra: {1: a, true: b, 2.5: c}\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\nextra: {? ~ : a}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata: {tls.crt: !!binary aGVsbG8=}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: 2024-01-01, b: 0x1F, c: 1e3}\n",
		// Anchors and merge keys.
		"apiVersion: v1\nkind: Namespace\nmetadata: &m {name: anchor}\nx: *m\n",
		"apiVersion: v1\nkind: Namespace\nbase: &b {name: merged}\nmetadata: {<<: *b, namespace: ns}\n",
		// Gateway API and Ingress.
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {hostnames: [a.example], rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: s, port: 80}]}]}\n",
		"apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: x}\nspec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: y}], to: [{group: '', kind: Service}]}\n",
		"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, annotations: {a: 'true', b: 10}}\nspec: {rules: [{host: a.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]}\n",
		"apiVersion: edge.portico.dev/v1alpha1\nkind: EdgeProxy\nmetadata: {name: local}\nspec: {unknownThing: 1}\n",
		"apiVersion: edge.portico.dev/v1alpha1\nkind: TenantRoute\nmetadata: {name: r, creationTimestamp: 2024-01-01T00:00:00Z}\nspec: {hostnames: [a.example], rules: [{backendRefs: [{name: s, port: '80'}]}]}\n",
	}
	slow := slowDecodes.Load()
	decodeDoc("x.yaml", 1, []byte(benchRouteYAML(1)), true)
	decodeDoc("x.yaml", 1, []byte(docs[1]), true)
	if n := slowDecodes.Load() - slow; n != 0 {
		t.Fatalf("plain documents took the slow path %d times", n)
	}
	for i, d := range docs {
		decodeBothWays(t, fmt.Sprintf("doc-%d.yaml", i), []byte(d))
	}
	decodeBothWays(t, "all.yaml", []byte("---\n"+strings.Join(docs, "---\n")))
	// And every YAML file of the repository's examples and test data.
	n := 0
	for _, root := range []string{"../../examples", "../../config/samples", "../../test", "../../controllers"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err == nil {
				decodeBothWays(t, path, data)
				n++
			}
			return nil
		})
	}
	t.Logf("%d repository files decoded both ways", n)
}

// A reload decodes only the files that changed, and gives what a fresh Load gives.
func TestReloadDecodesOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	writeBenchDir(t, dir, 100, 4)
	var cache fileCache
	first, err := loadWith(dir, proxy.Settings{}, time.Now(), Hooks{}, &cache)
	if err != nil || len(first.Errors()) > 0 {
		t.Fatal(err, first.Errors())
	}
	if len(cache.files) != 5 {
		t.Fatalf("cache holds %d files, want 5", len(cache.files))
	}
	before := map[string]*objects{}
	for n, f := range cache.files {
		before[n] = f.objs
	}
	// Edit one file, delete another, add a broken one.
	write(t, dir, "routes-0.yaml", "---\n"+benchRouteYAML(1000))
	if err := os.Remove(filepath.Join(dir, "routes-3.yaml")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "z.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {portz: []}\n")
	again, err := loadWith(dir, proxy.Settings{}, time.Now(), Hooks{}, &cache)
	if err != nil {
		t.Fatal(err)
	}
	for n, f := range cache.files {
		switch n {
		case "routes-0.yaml", "z.yaml":
			if f.objs == before[n] {
				t.Errorf("%s was not decoded again", n)
			}
		default:
			if f.objs != before[n] {
				t.Errorf("%s was decoded again although it did not change", n)
			}
		}
	}
	if _, ok := cache.files["routes-3.yaml"]; ok || len(cache.files) != 5 {
		t.Errorf("cache after the reload: %d files, routes-3.yaml kept: %v", len(cache.files), ok)
	}
	fresh, err := Load(dir, proxy.Settings{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if again.RoutesDigest != fresh.RoutesDigest || !reflect.DeepEqual(again.Problems, fresh.Problems) ||
		!reflect.DeepEqual(again.Endpoints, fresh.Endpoints) || again.Table.Version() != fresh.Table.Version() {
		t.Errorf("reload with the cache differs from a fresh load:\n%v\n%v", again.Problems, fresh.Problems)
	}
	// The objects handed out are copies: changing them leaves the cache as it was.
	o1, _ := read(dir, &cache)
	o1.routes[0].obj.Spec.Hostnames[0] = "changed.example"
	o1.services[0].obj.Spec.Ports[0].Port = 1
	o2, _ := read(dir, &cache)
	if o2.routes[0].obj.Spec.Hostnames[0] == "changed.example" || o2.services[0].obj.Spec.Ports[0].Port == 1 {
		t.Error("a change to the objects read reached the cache")
	}
}
