package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Scenario 5: two tenants, each with its own proxies; B cannot take A's host or certificate.
var _ = Describe("two tenants", Ordered, func() {
	const host = "shop.a.example.com"
	var epA, epB *edgev1alpha1.EdgeProxy
	var addrA, addrB string

	ingress := func(ns, name, class, tlsSecret string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "shop", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
		}
		if tlsSecret != "" {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: tlsSecret}}
		}
		return ing
	}

	BeforeAll(func(ctx SpecContext) {
		epA = edgeProxy(ctx, "tenant-a", "tenant-a-edge", "tenant-a", []string{"team-a"}, "*.a.example.com")
		epB = edgeProxy(ctx, "tenant-b", "tenant-b-edge", "tenant-b", []string{"team-b"}, "*.b.example.com")
		echoBackend(ctx, "team-a", "shop", 1)
		echoBackend(ctx, "team-b", "shop", 1)
		certPEM, keyPEM := selfSigned(host)
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-tls", Namespace: "team-a"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		})).To(Succeed())
		Expect(k8s.Create(ctx, ingress("team-a", "shop", "tenant-a", "shop-tls"))).To(Succeed())
		addrA, addrB = proxyAddress(ctx, epA), proxyAddress(ctx, epB)
		expectServed(ctx, addrA, host, "/", "shop")
	})

	It("gives each EdgeProxy its own proxies and address", func(ctx SpecContext) {
		Expect(addrA).NotTo(Equal(addrB))
		var ips []string
		for key, p := range cluster.Pods() {
			if key.Namespace == epA.Spec.ProxyNamespace || key.Namespace == epB.Spec.ProxyNamespace {
				ips = append(ips, key.Namespace+"="+p.IP)
			}
		}
		Expect(ips).To(HaveLen(2), "one proxy pod per tenant: %v", ips)
	})

	It("rejects B's Ingress for A's host and leaves A's traffic alone", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, ingress("team-b", "steal", "tenant-b", ""))).To(Succeed())
		Eventually(ctx, func() string {
			c := routeCondition(ctx, "team-b", "ingress-steal", string(edgev1alpha1.RouteConditionAccepted))
			if c == nil || c.Status != metav1.ConditionFalse {
				return ""
			}
			return c.Reason
		}).WithTimeout(timeout).WithPolling(poll).Should(Equal(string(edgev1alpha1.RouteReasonHostnameNotAllowed)))
		e := expectServed(ctx, addrA, host, "/", "shop")
		Expect(e.Namespace).To(Equal("team-a"))
		expectStatus(ctx, addrB, host, "/", http.StatusNotFound)
	})

	It("serves A's certificate from A's proxies only", func(ctx SpecContext) {
		Eventually(ctx, func() (string, error) { return peerCN(addrA, host) }).
			WithTimeout(timeout).WithPolling(poll).Should(Equal(host))
		cn, err := peerCN(addrB, host)
		if err == nil {
			Expect(cn).NotTo(Equal(host), "tenant B's proxy presented tenant A's certificate")
		}
	})
})

// peerCert connects with TLS (SNI host) to addr:443 and returns the leaf certificate, unverified.
func peerCert(addr, host string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", net.JoinHostPort(addr, "443"),
		&tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // the test inspects the certificate
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// peerCN connects with TLS (SNI host) to addr:443 and returns the leaf certificate's common name.
func peerCN(addr, host string) (string, error) {
	c, err := peerCert(addr, host)
	if err != nil {
		return "", err
	}
	return c.Subject.CommonName, nil
}

func selfSigned(host string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	kb, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
