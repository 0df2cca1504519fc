package packaging

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/internal/manifest"
)

// TestInstalledOperatorBecomesReady installs the chart (default values) and, separately,
// `kustomize build config/default` into a real kube-apiserver, then runs the operator the way the
// rendered Deployment would: the Dockerfile-built binary, the Deployment's args and environment, and
// the credentials of the Deployment's ServiceAccount (a token from the TokenRequest API), so that the
// RBAC the install grants is the RBAC the operator gets. There is no kubelet here; the process stands
// in for the pod. It must become ready, win the leader-election lease, provision an EdgeProxy and
// write its status, and never be refused by RBAC.
func TestInstalledOperatorBecomesReady(t *testing.T) {
	skipWithoutEnvtest(t)
	bin := portico(t)[0].path
	for _, src := range []struct {
		name   string
		render func(t *testing.T) []manifest.Object
	}{
		{"helm", func(t *testing.T) []manifest.Object { return helmTemplate(t) }},
		{"kustomize", func(t *testing.T) []manifest.Object { return kustomizeBuild(t, "config/default") }},
	} {
		t.Run(src.name, func(t *testing.T) {
			objs := src.render(t)
			cfg, c, _ := startControlPlane(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			install(ctx, t, c, objs)
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", ""))
			runOperator(ctx, t, cfg, c, bin, d)
		})
	}
}

// install creates every object for real (server-side apply, so the CRDs the control plane already
// has are updated to the rendered ones), namespaces first.
func install(ctx context.Context, t *testing.T, c client.Client, objs []manifest.Object) {
	t.Helper()
	if err := createNamespace(ctx, c, releaseNamespace); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := createNamespace(ctx, c, o.GetName()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, o := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.ForceOwnership, client.FieldOwner("portico-packaging-test")); err != nil {
			t.Fatalf("install %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// syncBuffer is the operator's output, written by the process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runOperator(ctx context.Context, t *testing.T, cfg *rest.Config, c client.Client, bin string, d *appsv1.Deployment) {
	t.Helper()
	container := d.Spec.Template.Spec.Containers[0]
	ns, sa := d.Namespace, d.Spec.Template.Spec.ServiceAccountName
	kubeconfig := serviceAccountKubeconfig(ctx, t, cfg, ns, sa)
	waitForRBAC(ctx, t, cfg, ns, sa)

	// The Deployment's args, with the listeners moved to free loopback ports (other tests run in
	// parallel on this machine) and --kubeconfig added, since there is no in-cluster config here.
	healthPort, metricsPort := freePort(t), freePort(t)
	var args []string
	for _, a := range container.Args {
		switch {
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(healthPort)
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort)
		}
		args = append(args, a)
	}
	// Flags the manifests leave at their defaults (":8080", ":8081") are set too.
	for flag, port := range map[string]int{"--health-probe-bind-address": healthPort, "--metrics-bind-address": metricsPort} {
		if !flagPresent(args, flag) {
			args = append(args, flag+"=127.0.0.1:"+strconv.Itoa(port))
		}
	}
	args = append(args, "--kubeconfig="+kubeconfig)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, e := range container.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+ns)
		default:
			t.Fatalf("env %s: this test cannot stand in for %+v", e.Name, e.ValueFrom)
		}
	}
	t.Logf("running: portico %s", strings.Join(args, " "))
	var logs syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process has exited, with its error in exitErr: several places wait
	// for it (a receive from a plain channel would let only the first one see the exit).
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return exitErr
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("the operator did not stop within 30 s of SIGTERM")
		}
	}
	defer func() {
		_ = stop()
		if t.Failed() {
			t.Logf("operator output (last lines):\n%s", tail(logs.String(), 40, 600))
		}
	}()

	poll := func(what string, timeout time.Duration, cond func(context.Context) (bool, error)) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			select {
			case <-exited:
				return false, fmt.Errorf("the operator exited: %v", exitErr)
			default:
			}
			if out := logs.String(); strings.Contains(out, "forbidden") {
				return false, fmt.Errorf("the operator was refused by RBAC:\n%s", tail(grepLines(out, "forbidden"), 5, 600))
			}
			return cond(ctx)
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	poll("readiness (/readyz)", time.Minute, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if flagPresent(container.Args, "--leader-elect") {
		poll("leader election in "+ns, time.Minute, func(ctx context.Context) (bool, error) {
			var lease coordinationv1.Lease
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "operator.edge.portico.dev"}, &lease); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return ptr.Deref(lease.Spec.HolderIdentity, "") != "", nil
		})
	}

	// A tenant: the operator provisions its fleet and reports on it.
	if err := createNamespace(ctx, c, "team-a-edge"); err != nil {
		t.Fatal(err)
	}
	ep := &edgev1alpha1.EdgeProxy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
		Spec: edgev1alpha1.EdgeProxySpec{
			TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: []string{"team-a"}},
			Hostnames:        []edgev1alpha1.Hostname{"team-a.example.com"},
			ProxyNamespace:   "team-a-edge",
		},
	}
	if err := c.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	poll("EdgeProxy status", time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ep), ep); err != nil {
			return false, err
		}
		return ep.Status.ObservedGeneration == ep.Generation && len(ep.Status.Conditions) > 0, nil
	})
	var fleet appsv1.DeploymentList
	if err := c.List(ctx, &fleet, client.InNamespace("team-a-edge"), client.MatchingLabels{edgev1alpha1.LabelEdgeProxy: "team-a"}); err != nil {
		t.Fatal(err)
	}
	if len(fleet.Items) != 1 {
		t.Errorf("want the proxy Deployment of EdgeProxy team-a in team-a-edge, found %d", len(fleet.Items))
	}
	var services corev1.ServiceList
	if err := c.List(ctx, &services, client.InNamespace("team-a-edge"), client.MatchingLabels{edgev1alpha1.LabelEdgeProxy: "team-a"}); err != nil {
		t.Fatal(err)
	}
	if len(services.Items) != 1 {
		t.Errorf("want the proxy Service of EdgeProxy team-a in team-a-edge, found %d", len(services.Items))
	}

	if err := stop(); err != nil {
		t.Errorf("operator stop: %v", err)
	}
	if out := logs.String(); strings.Contains(out, "forbidden") {
		t.Errorf("the operator was refused by RBAC (its ServiceAccount lacks a permission the code needs):\n%s", tail(grepLines(out, "forbidden"), 10, 600))
	}
}

// serviceAccountKubeconfig writes a kubeconfig authenticating as the ServiceAccount, with a token
// from the TokenRequest API: what the pod's projected token would be.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, cfg *rest.Config, ns, sa string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: sa, Namespace: ns}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitForRBAC waits until the API server's authorizer lets the ServiceAccount list EdgeProxies
// cluster-wide (the install's bindings have reached it), and fails fast, saying so, when it never does.
func waitForRBAC(ctx context.Context, t *testing.T, cfg *rest.Config, ns, sa string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: edgev1alpha1.GroupVersion.Group, Resource: "edgeproxies", Verb: "list",
		},
	}}
	var last *authorizationv1.SubjectAccessReview
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		last, err = cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return last.Status.Allowed, nil
	})
	if err != nil {
		reason := ""
		if last != nil {
			reason = last.Status.Reason
		}
		t.Fatalf("ServiceAccount %s/%s, which the Deployment runs as, may not list EdgeProxies: the install's (Cluster)RoleBindings do not grant it the operator's ClusterRole (%v; %s)", ns, sa, err, reason)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func flagPresent(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// tail returns the last n lines of s, each cut at width characters (stack traces are long).
func tail(s string, n, width int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > width {
			lines[i] = l[:width] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
