package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// createCAChain creates what a platform team sets up for cert-manager: a SelfSigned ClusterIssuer,
// a CA Certificate it signs, and a CA ClusterIssuer called name that signs with it. It returns the
// CA certificate (PEM) once cert-manager has issued it.
func createCAChain(ctx context.Context, name string) []byte {
	GinkgoHelper()
	ref := func(n string) cmmeta.IssuerReference {
		return cmmeta.IssuerReference{Name: n, Kind: cmv1.ClusterIssuerKind, Group: "cert-manager.io"}
	}
	selfSigned := &cmv1.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: name + "-selfsigned"},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}}
	caIssuer := &cmv1.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: name + "-ca"}}}}
	for _, o := range []client.Object{selfSigned, caIssuer} {
		if err := k8s.Create(ctx, o); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	}
	// cert-manager v1.11 can race its key manager against its request manager on a loaded machine
	// ("CSR not signed by referenced private key") and then backs the Certificate off for an hour;
	// a fresh Certificate starts over, so a stuck attempt is replaced (up to three times).
	var caPEM []byte
	for attempt := 1; attempt <= 3 && caPEM == nil; attempt++ {
		ca := &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "cert-manager", Name: name + "-ca"},
			Spec: cmv1.CertificateSpec{IsCA: true, CommonName: "Portico e2e CA " + name, SecretName: name + "-ca",
				IssuerRef: ref(selfSigned.Name), PrivateKey: &cmv1.CertificatePrivateKey{Algorithm: cmv1.ECDSAKeyAlgorithm, Size: 256}}}
		if err := k8s.Create(ctx, ca); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		failures := InterceptGomegaFailures(func() {
			Eventually(ctx, func(g Gomega) {
				s := &corev1.Secret{}
				g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: "cert-manager", Name: ca.Spec.SecretName}, s)).To(Succeed())
				g.Expect(s.Data[corev1.TLSCertKey]).NotTo(BeEmpty())
				caPEM = s.Data[corev1.TLSCertKey]
			}).WithTimeout(45 * time.Second).WithPolling(poll).Should(Succeed())
		})
		if caPEM == nil {
			fmt.Fprintf(GinkgoWriter, "CA certificate not issued on attempt %d (%v); recreating it\n", attempt, failures)
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, ca))).To(Succeed())
			Eventually(ctx, func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(ca), &cmv1.Certificate{}))
			}).WithTimeout(20 * time.Second).WithPolling(poll).Should(BeTrue())
		}
	}
	Expect(caPEM).NotTo(BeEmpty(), "cert-manager did not issue the CA certificate in three attempts")
	return caPEM
}

func certPool(pemCerts ...[]byte) *x509.CertPool {
	GinkgoHelper()
	p := x509.NewCertPool()
	for _, c := range pemCerts {
		Expect(p.AppendCertsFromPEM(c)).To(BeTrue())
	}
	return p
}

// tlsConn is one kept-alive HTTPS connection to a proxy, as a browser holds it: a real TLS client
// with SNI host that verifies the proxy's certificate against roots.
type tlsConn struct {
	host string
	conn *tls.Conn
	r    *bufio.Reader
}

func dialTLS(addr, host string, roots *x509.CertPool) (*tlsConn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", net.JoinHostPort(addr, "443"),
		&tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	return &tlsConn{host: host, conn: conn, r: bufio.NewReader(conn)}, nil
}

// leaf is the certificate the proxy presented on this connection.
func (c *tlsConn) leaf() *x509.Certificate { return c.conn.ConnectionState().PeerCertificates[0] }

// get sends GET path on the connection and reads the whole response.
func (c *tlsConn) get(path string) (int, error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, c.host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

func (c *tlsConn) Close() { _ = c.conn.Close() }

// servedLeaf makes a new verified handshake with host and returns the certificate presented.
func servedLeaf(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := dialTLS(addr, host, roots)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.leaf(), nil
}

// renewCertificate asks cert-manager to re-issue a Certificate now, as `cmctl renew` does: the
// Issuing condition set True with reason ManuallyTriggered.
func renewCertificate(ctx context.Context, key types.NamespacedName) {
	GinkgoHelper()
	Eventually(ctx, func() error {
		crt := &cmv1.Certificate{}
		if err := k8s.Get(ctx, key, crt); err != nil {
			return err
		}
		now := metav1.Now()
		conds := crt.Status.Conditions[:0:0]
		for _, c := range crt.Status.Conditions {
			if c.Type != cmv1.CertificateConditionIssuing {
				conds = append(conds, c)
			}
		}
		crt.Status.Conditions = append(conds, cmv1.CertificateCondition{Type: cmv1.CertificateConditionIssuing,
			Status: cmmeta.ConditionTrue, Reason: "ManuallyTriggered", Message: "Certificate re-issuance manually triggered by the e2e suite",
			LastTransitionTime: &now, ObservedGeneration: crt.Generation})
		return k8s.Status().Update(ctx, crt)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}
