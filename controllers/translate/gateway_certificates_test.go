package translate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func testKeyPairSecret(t *testing.T, ns, name string) corev1.Secret {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{"*.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		}}
}

func TestListenerCertificates(t *testing.T) {
	https := func(name, host string, from gwapiv1.FromNamespaces, ref gwapiv1.SecretObjectReference) gwapiv1.Listener {
		l := gwapiv1.Listener{Name: gwapiv1.SectionName(name), Protocol: gwapiv1.HTTPSProtocolType, Port: 443,
			TLS:           &gwapiv1.ListenerTLSConfig{CertificateRefs: []gwapiv1.SecretObjectReference{ref}},
			AllowedRoutes: &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptrTo(from)}}}
		if host != "" {
			l.Hostname = ptrTo(gwapiv1.Hostname(host))
		}
		return l
	}
	gw := gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw"},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "portico", Listeners: []gwapiv1.Listener{
			https("api", "API.example.com", gwapiv1.NamespacesFromAll, gwapiv1.SecretObjectReference{Name: "api"}),
			https("same", "", gwapiv1.NamespacesFromSame, gwapiv1.SecretObjectReference{Name: "same"}),
			https("other", "*.example.com", gwapiv1.NamespacesFromAll, gwapiv1.SecretObjectReference{Name: "other", Namespace: ptrTo(gwapiv1.Namespace("certs"))}),
			{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: 80},
		}}}
	route := func(ns, name string, hosts ...gwapiv1.Hostname) gwapiv1.HTTPRoute {
		return gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gw", Namespace: ptrTo(gwapiv1.Namespace("infra"))}}},
			Hostnames:       hosts}}
	}
	in := ListenerCertificatesInput{
		EdgeProxy:      GatewayEdgeProxyName(&gw),
		Gateways:       []gwapiv1.Gateway{gw},
		GatewayClasses: []gwapiv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}},
		Secrets:        []corev1.Secret{testKeyPairSecret(t, "infra", "api"), testKeyPairSecret(t, "infra", "same"), testKeyPairSecret(t, "certs", "other")},
		Routes: []gwapiv1.HTTPRoute{
			route("app", "a", "api.example.com", "www.example.com"),
			route("infra", "b", "b.example.com"),
			route("app", "none"),
		},
	}
	want := []ListenerCertificate{
		{Listener: "infra/gw/api", Secret: types.NamespacedName{Namespace: "infra", Name: "api"}, Hostname: "api.example.com",
			Attached: []AttachedHosts{{Namespace: "app", Hosts: []string{"api.example.com"}}}},
		{Listener: "infra/gw/same", Secret: types.NamespacedName{Namespace: "infra", Name: "same"},
			Attached: []AttachedHosts{{Namespace: "infra", Hosts: []string{"b.example.com"}}}},
	}
	if got := ListenerCertificates(in); !cmp.Equal(got, want) {
		t.Fatalf("without a grant for certs/other:\n%s", cmp.Diff(want, got))
	}
	in.ReferenceGrants = []gwapiv1beta1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Namespace: "certs", Name: "g"},
		Spec: gwapiv1beta1.ReferenceGrantSpec{
			From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.GroupName, Kind: "Gateway", Namespace: "infra"}},
			To:   []gwapiv1beta1.ReferenceGrantTo{{Kind: "Secret"}}}}}
	want = append(want, ListenerCertificate{Listener: "infra/gw/other", Secret: types.NamespacedName{Namespace: "certs", Name: "other"}, Hostname: "*.example.com",
		Attached: []AttachedHosts{
			// app/none names no hostname: the listener's.
			{Namespace: "app", Hosts: []string{"api.example.com", "www.example.com", "*.example.com"}},
			{Namespace: "infra", Hosts: []string{"b.example.com"}},
		}})
	if got := ListenerCertificates(in); !cmp.Equal(got, want) {
		t.Fatalf("with a grant:\n%s", cmp.Diff(want, got))
	}
	in.EdgeProxy = "another"
	if got := ListenerCertificates(in); len(got) != 0 {
		t.Fatalf("another EdgeProxy: %v", got)
	}
}
