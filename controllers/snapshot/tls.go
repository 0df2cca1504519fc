package snapshot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Creating the CA Secret (the operator namespace's portico-operator-ca) needs create on Secrets.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create

// CA is the operator's own certificate authority for the snapshot channel: one per installation,
// kept in a Secret of the operator namespace (created by whichever replica comes first), so that
// every replica serves a certificate the proxies verify with the same bundle.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// caValidity is the CA's lifetime; serving certificates live servingValidity and are renewed
// with every operator start.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	servingValidity = 365 * 24 * time.Hour
)

// EnsureCA reads the CA Secret, creating it when it does not exist.
func EnsureCA(ctx context.Context, r client.Reader, w client.Writer, key types.NamespacedName) (*CA, error) {
	for range 3 {
		s, err := getCASecret(ctx, r, key)
		if err == nil {
			return parseCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("get secret %s: %w", key, err)
		}
		certPEM, keyPEM, err := newCA(time.Now())
		if err != nil {
			return nil, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{"app.kubernetes.io/name": "portico", "app.kubernetes.io/component": "snapshot-ca"}},
			Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": certPEM},
		}
		switch err := w.Create(ctx, s); {
		case err == nil:
			return parseCA(certPEM, keyPEM)
		case apierrors.IsAlreadyExists(err): // another replica won; read its CA
		default:
			return nil, fmt.Errorf("create secret %s: %w", key, err)
		}
	}
	return nil, fmt.Errorf("secret %s: could not create or read the CA", key)
}

// CABundle returns ca.crt of the operator's CA Secret CASecretName in namespace: what the proxies
// verify the snapshot server with (the EdgeProxy reconciler copies it into each proxy namespace).
// It reads the Secret live even through a manager's cache-backed client (see getCASecret), and
// fails with a NotFound error until the first operator replica's server has created the CA.
func CABundle(ctx context.Context, r client.Reader, namespace string) ([]byte, error) {
	key := types.NamespacedName{Namespace: namespace, Name: CASecretName}
	s, err := getCASecret(ctx, r, key)
	if err != nil {
		return nil, err
	}
	bundle := s.Data["ca.crt"]
	if len(bundle) == 0 {
		bundle = s.Data[corev1.TLSCertKey]
	}
	if len(bundle) == 0 {
		return nil, fmt.Errorf("secret %s has neither ca.crt nor tls.crt", key)
	}
	return bundle, nil
}

// getCASecret reads the CA Secret as unstructured: controller-runtime's cache-backed client reads
// unstructured objects from the API server, so no informer on every Secret of the cluster starts
// (the operator caches Secrets' metadata only), whichever reader the caller has.
func getCASecret(ctx context.Context, r client.Reader, key types.NamespacedName) (*corev1.Secret, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, key, u); err != nil {
		return nil, err
	}
	s := &corev1.Secret{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		return nil, fmt.Errorf("decode secret %s: %w", key, err)
	}
	return s, nil
}

func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "portico-operator-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("snapshot CA: %w", err)
	}
	k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("snapshot CA: key is not ECDSA")
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: k, CertPEM: certPEM}, nil
}

// ServingCertificate issues this replica's server certificate for the given DNS names and IPs.
func (ca *CA) ServingCertificate(dnsNames []string, ips []net.IP, now time.Time) (tls.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "portico-operator"},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(servingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: k}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
