package packaging

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/internal/manifest"
)

func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm")
	for name, args := range map[string][]string{
		"default":      nil,
		"all-features": {"-f", allFeaturesValues},
	} {
		t.Run(name, func(t *testing.T) {
			out := run(t, helm, append([]string{"lint", "--strict", chartDir, "--kube-version", kubeVersion}, args...)...)
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

// convert decodes a rendered object into its Go type, refusing fields the type does not have.
func convert[T any](t *testing.T, o manifest.Object) *T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &out, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &out
}

// TestChartOperatorDeployment checks what the issue asks of the operator's Deployment, on the
// default values: two replicas with leader election, a PDB, probes, a locked-down security
// context, resources, and labels the operator's own NetworkPolicy rendering relies on.
func TestChartOperatorDeployment(t *testing.T) {
	objs := helmTemplate(t)
	d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "portico-operator"))
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !slices.Contains(c.Args, "--leader-elect") || c.Args[0] != "operator" {
		t.Errorf("args %q: want `operator ... --leader-elect`", c.Args)
	}
	if got := flagValue(c.Args, "--proxy-image"); got != c.Image {
		t.Errorf("--proxy-image=%q, want the operator's own image %q (one image, versions cannot drift)", got, c.Image)
	}
	if got := envValue(c.Env, "POD_NAMESPACE"); got == nil || got.ValueFrom == nil || got.ValueFrom.FieldRef == nil ||
		got.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE must come from metadata.namespace (the operator's --operator-namespace default): %+v", got)
	}

	// The operator's pods carry the labels the proxies' NetworkPolicy selects them by.
	want := controllers.DefaultOperatorPodLabels()
	for k, v := range want {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("pod label %s = %q, want %q (controllers.DefaultOperatorPodLabels)", k, d.Spec.Template.Labels[k], v)
		}
	}

	// Probes hit the health port, and the port is the one --health-probe-bind-address opens.
	health := containerPort(t, c, "health")
	if got := flagValue(c.Args, "--health-probe-bind-address"); got != ":"+itoa(health) {
		t.Errorf("--health-probe-bind-address=%q, container port health=%d", got, health)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != wantPath || p.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe = %+v, want GET %s on port health", name, p, wantPath)
		}
	}
	metrics := containerPort(t, c, "metrics")
	if got := flagValue(c.Args, "--metrics-bind-address"); got != ":"+itoa(metrics) {
		t.Errorf("--metrics-bind-address=%q, container port metrics=%d", got, metrics)
	}
	if got := containerPort(t, c, "snapshots"); got != 18000 {
		t.Errorf("snapshots container port = %d, want 18000", got)
	}

	// Security context: non-root, no escalation, read-only root, no capabilities, RuntimeDefault seccomp.
	psc, sc := spec.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Errorf("pod securityContext.runAsNonRoot must be true: %+v", psc)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod seccompProfile must be RuntimeDefault: %+v", psc.SeccompProfile)
	case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation must be false: %+v", sc)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem must be true: %+v", sc)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("capabilities must drop ALL: %+v", sc.Capabilities)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources need cpu/memory requests and a memory limit: %+v", c.Resources)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update must keep every replica until its replacement is up: %+v", d.Spec.Strategy)
	}

	pdb := convert[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "portico-operator"))
	if !selects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("PDB selector %v does not select the operator pods", pdb.Spec.Selector)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}

	// Optional parts stay off by default.
	for _, kind := range []string{"ServiceMonitor", "EdgeProxy", "Namespace", "IngressClass"} {
		if n := kinds(objs)[kind]; n != 0 {
			t.Errorf("default values render %d %s; it must be opt-in", n, kind)
		}
	}
}

// TestChartServices: the snapshot Service (port 18000, every operator replica behind it) and the
// metrics Service point at container ports that exist, and select the operator pods.
func TestChartServices(t *testing.T) {
	for name, args := range map[string][]string{"default": nil, "all-features": {"-f", allFeaturesValues}} {
		t.Run(name, func(t *testing.T) {
			objs := helmTemplate(t, args...)
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", ""))
			c := d.Spec.Template.Spec.Containers[0]
			base := strings.TrimSuffix(d.Name, "-operator")
			for svcName, want := range map[string]struct {
				port       int32
				portName   string
				targetPort string
			}{
				base + "-snapshots":        {18000, "grpc-snapshots", "snapshots"},
				base + "-operator-metrics": {8080, "metrics", "metrics"},
			} {
				svc := convert[corev1.Service](t, find(t, objs, "Service", svcName))
				if len(svc.Spec.Ports) != 1 {
					t.Fatalf("%s: want one port, got %+v", svcName, svc.Spec.Ports)
				}
				p := svc.Spec.Ports[0]
				if p.Port != want.port || p.Name != want.portName || p.TargetPort.String() != want.targetPort {
					t.Errorf("%s: port %+v, want %d named %s targeting %s", svcName, p, want.port, want.portName, want.targetPort)
				}
				containerPort(t, c, want.targetPort)
				if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
					t.Errorf("%s: selector %v does not select the operator pods", svcName, svc.Spec.Selector)
				}
			}
		})
	}
}

// TestChartAllFeatures: every optional part renders when switched on.
func TestChartAllFeatures(t *testing.T) {
	objs := helmTemplate(t, "-f", allFeaturesValues)
	sm := find(t, objs, "ServiceMonitor", "edge-operator")
	metricsSvc := convert[corev1.Service](t, find(t, objs, "Service", "edge-operator-metrics"))
	sel, _, _ := unstructuredMap(sm.Object, "spec", "selector")
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &ls); err != nil {
		t.Fatal(err)
	}
	if !selects(t, &ls, metricsSvc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", ls, metricsSvc.Labels)
	}
	snapshots := convert[corev1.Service](t, find(t, objs, "Service", "edge-snapshots"))
	if selects(t, &ls, snapshots.Labels) {
		t.Errorf("ServiceMonitor selector %v also selects the snapshot Service", ls)
	}

	ep := find(t, objs, "EdgeProxy", "team-a")
	ic, _, _ := unstructuredMap(ep.Object, "spec", "ingressClass")
	if ic["name"] != "team-a" || ic["default"] != true {
		t.Errorf("EdgeProxy spec.ingressClass = %v: the IngressClass is the operator's to create from it", ic)
	}
	if n := kinds(objs)["IngressClass"]; n != 0 {
		t.Errorf("the chart renders %d IngressClass: the operator refuses to adopt one it does not control (ResourceConflict)", n)
	}
	ns := find(t, objs, "Namespace", "team-a-edge")
	if ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("proxy namespace labels %v: want the restricted Pod Security level", ns.GetLabels())
	}
	d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "edge-operator"))
	c := d.Spec.Template.Spec.Containers[0]
	if !strings.Contains(c.Image, "@sha256:") {
		t.Errorf("image %q: a digest must pin the image", c.Image)
	}
	if got := flagValue(c.Args, "--proxy-image"); got != "registry.example.com/mirror/portico:0.1.0-proxy" {
		t.Errorf("--proxy-image=%q, want operator.proxyImage", got)
	}
	if d.Spec.Template.Labels["team"] != "platform" || d.Spec.Template.Labels["app.kubernetes.io/name"] != "portico" {
		t.Errorf("pod labels %v: want podLabels merged under the chart's own", d.Spec.Template.Labels)
	}
	for _, kind := range []string{"ServiceMonitor", "EdgeProxy", "Namespace", "PodDisruptionBudget"} {
		if kinds(objs)[kind] == 0 {
			t.Errorf("all-features values render no %s", kind)
		}
	}
}

// TestReferencesResolve: in each rendering, the Deployment's ServiceAccount exists, and every
// (Cluster)RoleBinding binds a rendered role to that ServiceAccount in its real namespace. A binding
// naming a ServiceAccount that does not exist is accepted by the API server and grants nothing.
func TestReferencesResolve(t *testing.T) {
	sources := map[string]func(t *testing.T) []manifest.Object{
		"helm-default":             func(t *testing.T) []manifest.Object { return helmTemplate(t) },
		"helm-all-features":        func(t *testing.T) []manifest.Object { return helmTemplate(t, "-f", allFeaturesValues) },
		"kustomize-config-default": func(t *testing.T) []manifest.Object { return kustomizeBuild(t, "config/default") },
	}
	for name, render := range sources {
		t.Run(name, func(t *testing.T) {
			objs := render(t)
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", ""))
			sa := d.Spec.Template.Spec.ServiceAccountName
			find(t, objs, "ServiceAccount", sa)
			roles := map[string]bool{}
			for _, o := range objs {
				if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
					roles[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = true
				}
			}
			bound := map[string]bool{}
			for _, o := range objs {
				var ref rbacv1.RoleRef
				var subjects []rbacv1.Subject
				switch o.GetKind() {
				case "RoleBinding":
					b := convert[rbacv1.RoleBinding](t, o)
					ref, subjects = b.RoleRef, b.Subjects
				case "ClusterRoleBinding":
					b := convert[rbacv1.ClusterRoleBinding](t, o)
					ref, subjects = b.RoleRef, b.Subjects
				default:
					continue
				}
				refNS := ""
				if ref.Kind == "Role" {
					refNS = o.GetNamespace()
				}
				if !roles[ref.Kind+"/"+refNS+"/"+ref.Name] {
					t.Errorf("%s %s: roleRef %s %q is not rendered", o.GetKind(), o.GetName(), ref.Kind, ref.Name)
				}
				for _, s := range subjects {
					if s.Kind != "ServiceAccount" || s.Name != sa || s.Namespace != d.Namespace {
						t.Errorf("%s %s binds %s %s/%s; the operator runs as ServiceAccount %s/%s",
							o.GetKind(), o.GetName(), s.Kind, s.Namespace, s.Name, d.Namespace, sa)
					}
				}
				bound[o.GetKind()] = true
			}
			if !bound["ClusterRoleBinding"] || !bound["RoleBinding"] {
				t.Errorf("want a ClusterRoleBinding and a (leader-election) RoleBinding, got %v", bound)
			}
		})
	}
}

// TestChartInSync fails when the chart drifts from what controller-gen generates in config/: the
// CRDs byte for byte, the ClusterRole's rules as rendered by Helm, and the generated template as
// hack/chart-sync.sh would write it. Fix: `make manifests` (which runs `make chart-sync`).
func TestChartInSync(t *testing.T) {
	const fix = "; run `make manifests` (hack/chart-sync.sh) and commit charts/"
	bases, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	chartCRDs, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(bases) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	if names(bases) != names(chartCRDs) {
		t.Errorf("charts/portico/crds holds %s, config/crd/bases holds %s%s", names(chartCRDs), names(bases), fix)
	}
	for _, b := range bases {
		want, _ := os.ReadFile(b)
		got, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(b)))
		if err == nil && !bytes.Equal(got, want) {
			t.Errorf("charts/portico/crds/%s differs from config/crd/bases%s", filepath.Base(b), fix)
		}
	}

	roleYAML, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(roleYAML, []byte("---\n")), &role); err != nil {
		t.Fatalf("config/rbac/role.yaml: %v", err)
	}
	rendered := convert[rbacv1.ClusterRole](t, find(t, helmTemplate(t), "ClusterRole", "portico-operator"))
	if len(role.Rules) == 0 || !reflect.DeepEqual(rendered.Rules, role.Rules) {
		a, _ := yaml.Marshal(rendered.Rules)
		b, _ := yaml.Marshal(role.Rules)
		t.Errorf("the chart's ClusterRole rules differ from config/rbac/role.yaml%s\nchart:\n%s\nconfig:\n%s", fix, a, b)
	}

	// Run the sync script on a scratch copy of its inputs: it must reproduce the chart exactly.
	scratch := t.TempDir()
	copyTree(t, filepath.Join(root, "hack", "chart-sync.sh"), filepath.Join(scratch, "hack", "chart-sync.sh"))
	copyTree(t, filepath.Join(root, "config", "crd", "bases"), filepath.Join(scratch, "config", "crd", "bases"))
	copyTree(t, filepath.Join(root, "config", "rbac", "role.yaml"), filepath.Join(scratch, "config", "rbac", "role.yaml"))
	copyTree(t, chartDir, filepath.Join(scratch, "charts", "portico"))
	if out, err := exec.Command(filepath.Join(scratch, "hack", "chart-sync.sh")).CombinedOutput(); err != nil {
		t.Fatalf("hack/chart-sync.sh: %v\n%s", err, out)
	}
	diffTrees(t, chartDir, filepath.Join(scratch, "charts", "portico"), fix)
}

// TestChartSize: Helm stores each release (chart included) gzipped in one Secret of at most 1 MiB,
// and `kubectl apply` without --server-side keeps a CRD's JSON in an annotation of at most 256 KiB.
func TestChartSize(t *testing.T) {
	dir := t.TempDir()
	run(t, tool(t, "helm"), "package", chartDir, "--destination", dir)
	pkgs, _ := filepath.Glob(filepath.Join(dir, "portico-*.tgz"))
	if len(pkgs) != 1 {
		t.Fatalf("helm package produced %v", pkgs)
	}
	st, err := os.Stat(pkgs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The Secret holds base64 (4/3) of the gzipped release; keep the chart under half the budget.
	const budget = 1 << 20 * 3 / 4 / 2
	t.Logf("packaged chart: %d bytes (budget %d)", st.Size(), budget)
	if st.Size() > budget {
		t.Errorf("packaged chart is %d bytes; over %d it risks Helm's 1 MiB release Secret limit: move the CRDs to a separate chart", st.Size(), budget)
	}
	for _, o := range helmTemplate(t) {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("CRD %s: %d bytes of JSON", o.GetName(), len(b))
		if len(b) >= 262144 {
			t.Errorf("CRD %s is %d bytes of JSON: client-side `kubectl apply` cannot store it in the last-applied annotation (256 KiB); docs must say --server-side", o.GetName(), len(b))
		}
	}
}

// TestChartRefusesBadValues: the values schema and the chart's checks turn mistakes into errors.
func TestChartRefusesBadValues(t *testing.T) {
	helm := tool(t, "helm")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--set", "operator.replica=3"}, "additional properties 'replica' not allowed"},
		{"replicas without leader election", []string{"--set", "operator.leaderElection.enabled=false"}, "needs operator.leaderElection.enabled"},
		{"zero replicas", []string{"--set", "operator.replicas=0"}, "minimum"},
		{"bad digest", []string{"--set", "image.digest=latest"}, "image/digest"},
		{"snapshot service exposed", []string{"--set", "snapshotService.type=LoadBalancer"}, "snapshotService/type"},
		{"bad log level", []string{"--set", "operator.logLevel=verbose"}, "operator/logLevel"},
		{"extra arg that is not a flag", []string{"--set", "operator.extraArgs[0]=rm"}, "operator/extraArgs/0"},
		{"service monitor without service", []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"}, "needs metrics.service.enabled"},
		{"edge proxy without hostnames", []string{"--set", "defaultEdgeProxy.enabled=true", "--set", "defaultEdgeProxy.tenantNamespaces.names[0]=a"}, "hostnames needs at least one"},
		{"edge proxy without tenants", []string{"--set", "defaultEdgeProxy.enabled=true", "--set", "defaultEdgeProxy.hostnames[0]=a.example.com"}, "tenantNamespaces needs names or a selector"},
		{"edge proxy in the operator namespace", []string{"--set", "defaultEdgeProxy.enabled=true", "--set", "defaultEdgeProxy.hostnames[0]=a.example.com",
			"--set", "defaultEdgeProxy.tenantNamespaces.names[0]=a", "--set", "defaultEdgeProxy.proxyNamespace=" + releaseNamespace}, "must not be the operator's namespace"},
		{"bad hostname", []string{"--set", "defaultEdgeProxy.hostnames[0]=Bad_Host"}, "defaultEdgeProxy/hostnames/0"},
		{"spec repeating a key", []string{"--set", "defaultEdgeProxy.spec.proxyNamespace=x"}, "defaultEdgeProxy/spec"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "portico", chartDir, "--namespace", releaseNamespace, "--kube-version", kubeVersion}, tc.args...)
			out, err := runErr(helm, args...)
			if err == nil {
				t.Fatalf("helm template %s succeeded; want an error containing %q\n%s", strings.Join(tc.args, " "), tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
		})
	}
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func envValue(env []corev1.EnvVar, name string) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q: %+v", c.Name, name, c.Ports)
	return 0
}

func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(l))
}

func unstructuredMap(obj map[string]any, path ...string) (map[string]any, bool, error) {
	cur := obj
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = next
	}
	return cur, true, nil
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func names(paths []string) string {
	var n []string
	for _, p := range paths {
		n = append(n, filepath.Base(p))
	}
	slices.Sort(n)
	return strings.Join(n, ", ")
}

// copyTree copies a file or a directory tree, keeping file modes.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// diffTrees reports files that differ, or exist on one side only, between two directories.
func diffTrees(t *testing.T, want, got, hint string) {
	t.Helper()
	read := func(dir string) map[string][]byte {
		m := map[string][]byte{}
		_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				rel, _ := filepath.Rel(dir, path)
				m[rel], _ = os.ReadFile(path)
			}
			return nil
		})
		return m
	}
	w, g := read(want), read(got)
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if gv, ok := g[k]; !ok {
			t.Errorf("charts/portico/%s would be deleted%s", k, hint)
		} else if !bytes.Equal(gv, w[k]) {
			t.Errorf("charts/portico/%s is stale%s", k, hint)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("charts/portico/%s is missing%s", k, hint)
		}
	}
}
