package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/test/e2e/harness"
)

// Scenarios 6, 7 and 8: zero downtime across route updates and a certificate renewal, an operator
// restart, and a proxy pod replaced. One tenant with two proxy replicas; a steady request loop runs
// across each event and must see no failed request.
var _ = Describe("zero downtime", Ordered, func() {
	const (
		ns    = "steady"
		host  = "live.steady.example.com"
		after = "after.steady.example.com"
	)
	var ep *edgev1alpha1.EdgeProxy
	var addr string

	ingress := func(name, h string, paths ...string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		var ps []networkingv1.HTTPIngressPath
		for _, p := range paths {
			backend := "echo"
			if p == "/final" {
				backend = "echo2"
			}
			ps = append(ps, networkingv1.HTTPIngressPath{Path: p, PathType: &prefix, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: backend, Port: networkingv1.ServiceBackendPort{Number: 80}}}})
		}
		class := "steady"
		return &networkingv1.Ingress{
			// The load runs over plain HTTP: no redirect to HTTPS although the route has TLS.
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Annotations: map[string]string{"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
			Spec: networkingv1.IngressSpec{IngressClassName: &class,
				TLS: []networkingv1.IngressTLS{{Hosts: []string{h}, SecretName: name + "-tls"}},
				Rules: []networkingv1.IngressRule{{Host: h, IngressRuleValue: networkingv1.IngressRuleValue{
					HTTP: &networkingv1.HTTPIngressRuleValue{Paths: ps}}}}},
		}
	}
	tlsSecret := func(name, h string) *corev1.Secret {
		certPEM, keyPEM := selfSigned(h)
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
	}

	BeforeAll(func(ctx SpecContext) {
		ep = edgeProxy(ctx, "steady", "steady-edge", "steady", []string{ns}, "*.steady.example.com")
		Eventually(ctx, func() error {
			cur := &edgev1alpha1.EdgeProxy{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), cur); err != nil {
				return err
			}
			cur.Spec.Deployment.Replicas = ptr.To(int32(2))
			return k8s.Update(ctx, cur)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		echoBackend(ctx, ns, "echo", 2)
		echoBackend(ctx, ns, "echo2", 1)
		Expect(k8s.Create(ctx, tlsSecret("live-tls", host))).To(Succeed())
		Expect(k8s.Create(ctx, ingress("live", host, "/"))).To(Succeed())
		addr = proxyAddress(ctx, ep)
		expectServed(ctx, addr, host, "/", "echo")
		Eventually(ctx, func() int { return len(readyProxyPods(ctx, ep)) }).WithTimeout(timeout).WithPolling(poll).Should(Equal(2))
	})

	It("serves every request and keeps a WebSocket open across 100 route updates and a certificate renewal", func(ctx SpecContext) {
		ws, err := openWebSocket(addr, host)
		Expect(err).NotTo(HaveOccurred())
		defer ws.Close()
		Expect(echoOnce(ws, "hello")).To(Succeed())
		var wsErr error
		var wsMessages int
		wsStop, wsDone := make(chan struct{}), make(chan struct{})
		go func() { // a message every 50 ms for as long as the updates go on
			defer close(wsDone)
			for i := 0; ; i++ {
				select {
				case <-wsStop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if wsErr = echoOnce(ws, "m"+strconv.Itoa(i)); wsErr != nil {
					return
				}
				wsMessages++
			}
		}()
		first, err := peerCert(addr, host)
		Expect(err).NotTo(HaveOccurred())

		l := startLoad(addr, host, "/")
		l.waitFor(50)
		paths := []string{"/"}
		for i := 1; i <= 100; i++ {
			paths = append(paths, "/v"+strconv.Itoa(i))
			if i == 100 {
				paths = append(paths, "/final")
			}
			Eventually(ctx, func() error {
				cur := &networkingv1.Ingress{}
				if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "live"}, cur); err != nil {
					return err
				}
				cur.Spec = ingress("live", host, paths...).Spec
				return k8s.Update(ctx, cur)
			}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
			if i == 50 {
				By("renewing the certificate halfway")
				Expect(k8s.Update(ctx, tlsSecret("live-tls", host))).To(Succeed())
			}
		}
		expectServed(ctx, addr, host, "/final", "echo2")
		Eventually(ctx, func(g Gomega) {
			c, err := peerCert(addr, host)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.SerialNumber).NotTo(Equal(first.SerialNumber), "the renewed certificate is not served")
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		l.waitFor(50)
		close(wsStop)
		<-wsDone
		failures := l.finish()
		fmt.Fprintf(GinkgoWriter, "%d requests and %d WebSocket round trips across 100 updates and a renewal\n", l.ok.Load(), wsMessages)
		Expect(failures).To(BeEmpty())
		Expect(wsErr).NotTo(HaveOccurred(), "the WebSocket broke")
		Expect(wsMessages).To(BeNumerically(">", 0))
		Expect(echoOnce(ws, "still open")).To(Succeed())
	})

	It("keeps serving while the operator restarts, and converges a change made after", func(ctx SpecContext) {
		l := startLoad(addr, host, "/")
		l.waitFor(50)
		By("stopping the operator")
		operator.Stop(30 * time.Second)
		l.waitFor(200)
		By("creating a route while no operator runs, and starting the operator again")
		Expect(k8s.Create(ctx, tlsSecret("after-tls", after))).To(Succeed())
		Expect(k8s.Create(ctx, ingress("after", after, "/"))).To(Succeed())
		var err error
		operator, err = cluster.StartOperator(ctx, harness.OperatorOptions{Binary: operatorBinary, Namespace: operatorNamespace,
			ProxyImage: harness.PorticoImageRepository + ":e2e"})
		Expect(err).NotTo(HaveOccurred())
		expectServed(ctx, addr, after, "/", "echo")
		l.waitFor(50)
		Expect(l.finish()).To(BeEmpty())
	})

	It("keeps serving through the other replica while a proxy pod is replaced; the new one is Ready only with the full snapshot", func(ctx SpecContext) {
		before := readyProxyPods(ctx, ep)
		Expect(before).To(HaveLen(2))
		l := startLoad(addr, host, "/")
		l.waitFor(50)
		victim := before[0]
		By("deleting proxy pod " + victim.Name)
		Expect(k8s.Delete(ctx, &victim)).To(Succeed())

		var fresh corev1.Pod
		Eventually(ctx, func(g Gomega) {
			pods := readyProxyPods(ctx, ep)
			found := false
			for _, p := range pods {
				if p.Name != before[0].Name && p.Name != before[1].Name {
					fresh, found = p, true
				}
			}
			g.Expect(found).To(BeTrue(), "no new Ready proxy pod yet")
		}).WithTimeout(timeout).WithPolling(50 * time.Millisecond).Should(Succeed())
		By("the first request straight to the new pod, the moment it is Ready, is served with the full table")
		for _, h := range []struct{ host, path, backend string }{{host, "/final", "echo2"}, {host, "/v7", "echo"}, {after, "/", "echo"}} {
			r, err := getPort(fresh.Status.PodIP, render.PortHTTP, h.host, h.path)
			Expect(err).NotTo(HaveOccurred())
			Expect(r.code).To(Equal(http.StatusOK), "new pod %s answered %d for http://%s%s: %s", fresh.Name, r.code, h.host, h.path, r.body)
			Expect(r.echo.Pod).To(HavePrefix(h.backend + "-"))
		}
		l.waitFor(100)
		Expect(l.finish()).To(BeEmpty())
	})
})

// readyProxyPods lists the EdgeProxy's proxy pods that are Ready and not being deleted.
func readyProxyPods(ctx context.Context, ep *edgev1alpha1.EdgeProxy) []corev1.Pod {
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(ep.Spec.ProxyNamespace)); err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if !p.DeletionTimestamp.IsZero() || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}
