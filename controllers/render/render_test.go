package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite testdata/render/*.out.yaml from the current output")

// goldenParams are the operator facts every golden case renders with.
var goldenParams = Params{
	Image:               "ghcr.io/portico-dev/portico:v0.1.0",
	OperatorAddress:     "portico-snapshots.portico-system.svc:18000",
	OperatorNamespace:   "portico-system",
	OperatorPodLabels:   map[string]string{LabelName: AppName, LabelComponent: "operator"},
	MonitoringNamespace: "monitoring",
}

func readEdgeProxy(t *testing.T, path string) *edgev1alpha1.EdgeProxy {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ep := &edgev1alpha1.EdgeProxy{}
	if err := yaml.UnmarshalStrict(data, ep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ep
}

// renderYAML is the golden form: every object exactly as it is applied, one YAML document each.
func renderYAML(t *testing.T, objs *Objects) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i, obj := range objs.List() {
		u, err := ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(out)
	}
	return buf.Bytes()
}

func TestRenderGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "render", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			objs, err := Render(readEdgeProxy(t, in), goldenParams)
			if err != nil {
				t.Fatal(err)
			}
			got := renderYAML(t, objs)
			outPath := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run go test ./controllers/render -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got), rerun with -update if intended:\n%s", outPath, diff)
			}
		})
	}
}

func baseEdgeProxy() *edgev1alpha1.EdgeProxy {
	ep := &edgev1alpha1.EdgeProxy{}
	ep.Name, ep.UID = "team-a", "uid-1"
	ep.Spec = edgev1alpha1.EdgeProxySpec{
		TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: []string{"team-a"}},
		Hostnames:        []edgev1alpha1.Hostname{"team-a.example.com"},
		ProxyNamespace:   "team-a-edge",
	}
	return ep
}

func mustRender(t *testing.T, ep *edgev1alpha1.EdgeProxy, p Params) *Objects {
	t.Helper()
	objs, err := Render(ep, p)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Fields that do not concern the fleet's pods must not change the pod template: a changed template
// rolls every proxy.
func TestPodTemplateIgnoresUnrelatedFields(t *testing.T) {
	before := mustRender(t, baseEdgeProxy(), goldenParams).Deployment.Spec.Template
	changes := map[string]func(*edgev1alpha1.EdgeProxy){
		"hostnames": func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = append(ep.Spec.Hostnames, "*.team-a.example.com")
		},
		"tenant namespaces": func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.TenantNamespaces.Names = []string{"x", "y"} },
		"service": func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Service = &edgev1alpha1.ProxyServiceSpec{Type: corev1.ServiceTypeNodePort}
		},
		"ingress class": func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.IngressClass = &edgev1alpha1.IngressClassSpec{Name: "nginx", Default: true}
		},
		"external names": func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.AllowExternalNameServices = true },
		"traffic":        func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.Traffic = &edgev1alpha1.TrafficDefaults{TrustedHops: 2} },
		"tls":            func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.TLS = &edgev1alpha1.TLSDefaults{MinVersion: "1.3"} },
		"replicas": func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To(int32(7))}
		},
		"autoscaling": func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MaxReplicas: 9} },
		"generation":  func(ep *edgev1alpha1.EdgeProxy) { ep.Generation = 42 },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			ep := baseEdgeProxy()
			change(ep)
			after := mustRender(t, ep, goldenParams).Deployment.Spec.Template
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("pod template changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	ep := readEdgeProxy(t, filepath.Join("testdata", "render", "full.in.yaml"))
	first := renderYAML(t, mustRender(t, ep, goldenParams))
	for range 20 {
		if again := renderYAML(t, mustRender(t, ep, goldenParams)); !bytes.Equal(first, again) {
			t.Fatalf("render is not deterministic:\n%s", cmp.Diff(string(first), string(again)))
		}
	}
}

func TestImage(t *testing.T) {
	ep := baseEdgeProxy()
	if got := mustRender(t, ep, goldenParams).Deployment.Spec.Template.Spec.Containers[0].Image; got != goldenParams.Image {
		t.Errorf("image = %q, want the operator's %q", got, goldenParams.Image)
	}
	ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Image: "example.com/portico:test"}
	if got := mustRender(t, ep, goldenParams).Deployment.Spec.Template.Spec.Containers[0].Image; got != "example.com/portico:test" {
		t.Errorf("image = %q, want the override", got)
	}
	if _, err := Render(baseEdgeProxy(), Params{}); err == nil {
		t.Error("Render without any image must fail")
	}
}

func TestArgs(t *testing.T) {
	want := []string{"proxy", "--http-addr=:8080", "--https-addr=:8443", "--admin-addr=:9901"}
	if diff := cmp.Diff(want, Args(Params{})); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	got := Args(Params{OperatorAddress: "portico-operator.portico-system.svc:9443"})
	if diff := cmp.Diff(append(want, "--operator-address=portico-operator.portico-system.svc:9443"), got); diff != "" {
		t.Errorf("args with operator address (-want +got):\n%s", diff)
	}
}

func TestGOMEMLIMIT(t *testing.T) {
	ep := baseEdgeProxy()
	ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Resources: &corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}}
	env := mustRender(t, ep, goldenParams).Deployment.Spec.Template.Spec.Containers[0].Env
	if v := envValue(env, "GOMEMLIMIT"); v != "966367620" { // 90% of 1 GiB, rounded down to 1% steps
		t.Errorf("GOMEMLIMIT = %q", v)
	}
	ep.Spec.Deployment.Resources = &corev1.ResourceRequirements{}
	env = mustRender(t, ep, goldenParams).Deployment.Spec.Template.Spec.Containers[0].Env
	if v := envValue(env, "GOMEMLIMIT"); v != "" {
		t.Errorf("GOMEMLIMIT = %q without a memory limit, want unset", v)
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestOptionalObjects(t *testing.T) {
	cases := map[string]struct {
		mutate  func(*edgev1alpha1.EdgeProxy)
		wantPDB bool
		wantHPA bool
	}{
		"default two replicas": {mutate: func(*edgev1alpha1.EdgeProxy) {}, wantPDB: true},
		"one replica": {mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To(int32(1))}
		}},
		"zero replicas": {mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To(int32(0))}
		}},
		"autoscaling": {mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MaxReplicas: 5}
		}, wantPDB: true, wantHPA: true},
		"autoscaling from one": {mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MinReplicas: ptr.To(int32(1)), MaxReplicas: 5}
		}, wantHPA: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ep := baseEdgeProxy()
			tc.mutate(ep)
			objs := mustRender(t, ep, goldenParams)
			if got := objs.PodDisruptionBudget != nil; got != tc.wantPDB {
				t.Errorf("PDB rendered = %v, want %v", got, tc.wantPDB)
			}
			if got := objs.HorizontalPodAutoscaler != nil; got != tc.wantHPA {
				t.Errorf("HPA rendered = %v, want %v", got, tc.wantHPA)
			}
			if tc.wantHPA && objs.Deployment.Spec.Replicas != nil {
				t.Errorf("replicas = %d with an autoscaler, want unset so the HPA owns them", *objs.Deployment.Spec.Replicas)
			}
		})
	}
}

func TestNames(t *testing.T) {
	cases := []struct{ ep, want string }{
		{"team-a", "portico-team-a"},
		{"1st", "portico-1st"},
		{"team.a", "portico-team-a-"}, // dots are hashed, never just replaced
		{strings.Repeat("a", 56), "portico-" + strings.Repeat("a", 46) + "-"}, // too long: hashed
	}
	seen := map[string]string{}
	for _, tc := range cases {
		ep := baseEdgeProxy()
		ep.Name = tc.ep
		got := ObjectName(ep)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("ObjectName(%q) = %q, want prefix %q", tc.ep, got, tc.want)
		}
		if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
			t.Errorf("ObjectName(%q) = %q is not a DNS-1035 label: %v", tc.ep, got, errs)
		}
		if errs := validation.IsValidLabelValue(LabelValue(ep)); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q: %v", tc.ep, LabelValue(ep), errs)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%q and %q share the name %q", prev, tc.ep, got)
		}
		seen[got] = tc.ep
	}
	ep := baseEdgeProxy()
	ep.Name = "team-a"
	other := baseEdgeProxy()
	other.Name = "team.a"
	if ObjectName(ep) == ObjectName(other) {
		t.Error("team-a and team.a must not share a name")
	}
}

func TestSelectorLabelsWin(t *testing.T) {
	ep := baseEdgeProxy()
	ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{PodLabels: map[string]string{
		LabelComponent: "evil", edgev1alpha1.LabelEdgeProxy: "other", "team": "a",
	}}
	dep := mustRender(t, ep, goldenParams).Deployment
	for k, v := range dep.Spec.Selector.MatchLabels {
		if got := dep.Spec.Template.Labels[k]; got != v {
			t.Errorf("pod label %s = %q, want selector value %q", k, got, v)
		}
	}
	if dep.Spec.Template.Labels["team"] != "a" {
		t.Error("user pod label lost")
	}
}

func TestOperatorCAMountedOnlyWithDelivery(t *testing.T) {
	ep := baseEdgeProxy()
	mounted := func(p Params) bool {
		objs, err := Render(ep, p)
		if err != nil {
			t.Fatal(err)
		}
		spec := objs.Deployment.Spec.Template.Spec
		for _, v := range spec.Volumes {
			if v.Name == OperatorCAVolume && v.ConfigMap != nil && v.ConfigMap.Name == OperatorCAName(ep) {
				return true
			}
		}
		return false
	}
	if mounted(Params{Image: "x"}) {
		t.Error("CA mounted without --operator-address")
	}
	if !mounted(Params{Image: "x", OperatorAddress: "op:18000"}) {
		t.Error("CA not mounted with --operator-address")
	}
	cm := OperatorCAConfigMap(ep, []byte("PEM"))
	if cm.Namespace != ep.Spec.ProxyNamespace || cm.Data[OperatorCAKey] != "PEM" || len(cm.OwnerReferences) != 1 ||
		cm.Labels[edgev1alpha1.LabelEdgeProxy] != LabelValue(ep) {
		t.Errorf("ConfigMap = %+v", cm)
	}
}
