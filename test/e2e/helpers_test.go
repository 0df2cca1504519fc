package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/internal/testenv"
	"github.com/portico-dev/portico/test/e2e/harness"
)

const (
	timeout = 90 * time.Second // a loaded 2-core machine
	poll    = 250 * time.Millisecond
)

func sourceExample(name string) string {
	return filepath.Join(testenv.RepoRoot(), "test", "testdata", "source-examples", name)
}

// edgeProxy creates a one-replica tenant and returns it.
func edgeProxy(ctx context.Context, name, proxyNS, class string, namespaces []string, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.EdgeProxy {
	Expect(cluster.EnsureNamespace(ctx, proxyNS)).To(Succeed())
	ep := &edgev1alpha1.EdgeProxy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: edgev1alpha1.EdgeProxySpec{
			TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: namespaces},
			Hostnames:        hosts,
			ProxyNamespace:   proxyNS,
			IngressClass:     &edgev1alpha1.IngressClassSpec{Name: class},
			Deployment:       &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To(int32(1))},
		},
	}
	Expect(k8s.Create(ctx, ep)).To(Succeed())
	return ep
}

// createOrKeep creates o unless it exists: scenarios that share the source documents' namespaces
// (app) share their backends, whichever runs first creates them.
func createOrKeep(ctx context.Context, o client.Object) error {
	if err := k8s.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// echoBackend creates a Deployment of the echo image and a Service (port 80 → 8080) named name.
func echoBackend(ctx context.Context, ns, name string, replicas int32) {
	echoDeployment(ctx, ns, name, replicas)
	Expect(createOrKeep(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	})).To(Succeed())
}

// echoDeployment creates a Deployment of the echo image whose pods carry the label app=name.
func echoDeployment(ctx context.Context, ns, name string, replicas int32) {
	Expect(cluster.EnsureNamespace(ctx, ns)).To(Succeed())
	labels := map[string]string{"app": name}
	Expect(createOrKeep(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "echo", Image: harness.EchoImage + ":latest",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Env: []corev1.EnvVar{
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
				}}},
			},
		},
	})).To(Succeed())
}

// expectIngressAddress waits until the Ingress's status carries exactly the address want (the
// load-balancer address of its proxies' Service).
func expectIngressAddress(ctx context.Context, ns, name, want string) {
	GinkgoHelper()
	Eventually(ctx, func(g Gomega) []networkingv1.IngressLoadBalancerIngress {
		ing := &networkingv1.Ingress{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ing)).To(Succeed())
		return ing.Status.LoadBalancer.Ingress
	}).WithTimeout(timeout).WithPolling(poll).Should(ConsistOf(networkingv1.IngressLoadBalancerIngress{IP: want}))
}

// proxyAddress is the load-balancer address of an EdgeProxy's Service.
func proxyAddress(ctx context.Context, ep *edgev1alpha1.EdgeProxy) string {
	var addr string
	Eventually(ctx, func(g Gomega) {
		svc := &corev1.Service{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ep.Spec.ProxyNamespace, Name: "portico-" + ep.Name}, svc)).To(Succeed())
		g.Expect(svc.Status.LoadBalancer.Ingress).NotTo(BeEmpty())
		addr = svc.Status.LoadBalancer.Ingress[0].IP
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return addr
}

// response of one request.
type response struct {
	code int
	echo harness.EchoResponse
	body string
}

// get is `curl --resolve host:80:addr http://host/path`: the connection goes to addr, Host and
// SNI are host.
func get(addr, scheme, host, path string) (response, error) {
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return getFrom(addr, port, scheme, host, path)
}

// getPort is get over plain HTTP to addr:port (a pod's own address and container port).
func getPort(addr string, port int32, host, path string) (response, error) {
	return getFrom(addr, strconv.Itoa(int(port)), "http", host, path)
}

func getFrom(addr, port, scheme, host, path string) (response, error) {
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort(addr, port))
		},
		TLSClientConfig:   &tls.Config{ServerName: host, InsecureSkipVerify: true}, //nolint:gosec // tests read the certificate themselves
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(fmt.Sprintf("%s://%s%s", scheme, host, path))
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := response{code: resp.StatusCode, body: string(body)}
	if resp.Header.Get("X-Echo-Pod") != "" {
		_ = json.Unmarshal(body, &r.echo)
	}
	return r, nil
}

// expectServed waits until GET http://host/path through addr reaches a pod of backend (Deployment
// name) and returns the echo.
func expectServed(ctx context.Context, addr, host, path, backend string) harness.EchoResponse {
	GinkgoHelper()
	var out harness.EchoResponse
	Eventually(ctx, func(g Gomega) {
		r, err := get(addr, "http", host, path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.code).To(Equal(http.StatusOK), "GET http://%s%s via %s: %s", host, path, addr, r.body)
		g.Expect(r.echo.Pod).To(HavePrefix(backend+"-"), "GET http://%s%s went to the wrong backend", host, path)
		out = r.echo
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return out
}

// expectStatus waits until GET http://host/path through addr answers code.
func expectStatus(ctx context.Context, addr, host, path string, code int) {
	GinkgoHelper()
	Eventually(ctx, func(g Gomega) {
		r, err := get(addr, "http", host, path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.code).To(Equal(code), "GET http://%s%s via %s: %s", host, path, addr, r.body)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// routeCondition returns a TenantRoute's condition of type t (nil when absent).
func routeCondition(ctx context.Context, ns, name, t string) *metav1.Condition {
	tr := &edgev1alpha1.TenantRoute{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tr); err != nil {
		return nil
	}
	for i := range tr.Status.Conditions {
		if tr.Status.Conditions[i].Type == t {
			return &tr.Status.Conditions[i]
		}
	}
	return nil
}
