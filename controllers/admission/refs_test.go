package admission

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// keyPair returns a self-signed certificate for hosts and its key, PEM-encoded.
func keyPair(t *testing.T, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func tlsSecret(ns, name string, cert, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}
}

func svc(ns, name string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Type: typ}}
}

func grant(ns, fromNS string, to *string) gwapiv1beta1.ReferenceGrant {
	g := gwapiv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "g"}}
	g.Spec.From = []gwapiv1beta1.ReferenceGrantFrom{{Group: ReferenceGrantGroup, Kind: ReferenceGrantKind, Namespace: gwapiv1.Namespace(fromNS)}}
	g.Spec.To = []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: (*gwapiv1.ObjectName)(to)}}
	return g
}

func withBackend(tr *edgev1alpha1.TenantRoute, ns, name string) *edgev1alpha1.TenantRoute {
	ref := gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
		Name: gwapiv1.ObjectName(name), Port: ptr.To(gwapiv1.PortNumber(80)),
	}}}
	if ns != "" {
		ref.Namespace = ptr.To(gwapiv1.Namespace(ns))
	}
	tr.Spec.Rules[0].BackendRefs = append(tr.Spec.Rules[0].BackendRefs, ref)
	return tr
}

func TestResolveRefs(t *testing.T) {
	cert, key := keyPair(t, "a.example.com", "*.a.example.com")
	otherCert, otherKey := keyPair(t, "other.example.org")
	key2 := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	services := map[types.NamespacedName]*corev1.Service{
		key2("team-a", "web"):    svc("team-a", "web", corev1.ServiceTypeClusterIP),
		key2("team-a", "ext"):    svc("team-a", "ext", corev1.ServiceTypeExternalName),
		key2("shared", "search"): svc("shared", "search", corev1.ServiceTypeClusterIP),
	}
	withTLS := func(secret string, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.TenantRoute {
		tr := route("team-a", "r", "a.example.com", "*.a.example.com")
		tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: secret, Hosts: hosts}}
		return tr
	}
	cases := []struct {
		name     string
		route    *edgev1alpha1.TenantRoute
		refs     Refs
		reason   edgev1alpha1.ConditionReason
		inReason []string
	}{
		{name: "all present", route: route("team-a", "r", "a.example.com"), refs: Refs{Services: services}, reason: edgev1alpha1.RouteReasonResolvedRefs},
		{
			name: "no ready endpoints", route: route("team-a", "r", "a.example.com"),
			refs:   Refs{Services: services, ReadyEndpoints: map[BackendPort]int{{Service: key2("team-a", "web"), Port: 80}: 0}},
			reason: edgev1alpha1.RouteReasonNoReadyEndpoints, inReason: []string{"spec.rules[0].backendRefs[0]", `Service "web"`, "503"},
		},
		{
			name: "ready endpoints", route: route("team-a", "r", "a.example.com"),
			refs:   Refs{Services: services, ReadyEndpoints: map[BackendPort]int{{Service: key2("team-a", "web"), Port: 80}: 2}},
			reason: edgev1alpha1.RouteReasonResolvedRefs,
		},
		{
			name: "a missing backend is said before no ready endpoints", route: withBackend(route("team-a", "r", "a.example.com"), "", "gone"),
			refs:   Refs{Services: services, ReadyEndpoints: map[BackendPort]int{{Service: key2("team-a", "web"), Port: 80}: 0}},
			reason: edgev1alpha1.RouteReasonBackendNotFound,
		},
		{
			name: "backend missing", route: withBackend(route("team-a", "r", "a.example.com"), "", "gone"),
			refs: Refs{Services: services}, reason: edgev1alpha1.RouteReasonBackendNotFound,
			inReason: []string{"spec.rules[0].backendRefs[1]", `Service "gone"`},
		},
		{
			name: "cross namespace without grant", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
			inReason: []string{"spec.rules[0].backendRefs[1]", `namespace "shared"`},
		},
		{
			name:  "cross namespace, missing, without grant: not permitted (existence is not revealed)",
			route: withBackend(route("team-a", "r", "a.example.com"), "shared", "nope"),
			refs:  Refs{Services: services}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
		},
		{
			name: "cross namespace with grant for every Service", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services, Grants: []gwapiv1beta1.ReferenceGrant{grant("shared", "team-a", nil)}}, reason: edgev1alpha1.RouteReasonResolvedRefs,
		},
		{
			name: "cross namespace with grant for that Service", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services, Grants: []gwapiv1beta1.ReferenceGrant{grant("shared", "team-a", ptr.To("search"))}}, reason: edgev1alpha1.RouteReasonResolvedRefs,
		},
		{
			name: "grant for another Service", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services, Grants: []gwapiv1beta1.ReferenceGrant{grant("shared", "team-a", ptr.To("other"))}}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
		},
		{
			name: "grant to another namespace", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services, Grants: []gwapiv1beta1.ReferenceGrant{grant("shared", "team-b", nil)}}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
		},
		{
			name: "grant living in the wrong namespace", route: withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			refs: Refs{Services: services, Grants: []gwapiv1beta1.ReferenceGrant{grant("team-a", "team-a", nil)}}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
		},
		{
			name: "ExternalName refused", route: withBackend(route("team-a", "r", "a.example.com"), "", "ext"),
			refs: Refs{Services: services}, reason: edgev1alpha1.RouteReasonRefNotPermitted,
			inReason: []string{"ExternalName", "spec.allowExternalNameServices"},
		},
		{
			name: "ExternalName allowed", route: withBackend(route("team-a", "r", "a.example.com"), "", "ext"),
			refs: Refs{Services: services, AllowExternalName: true}, reason: edgev1alpha1.RouteReasonResolvedRefs,
		},
		{
			name: "tls secret valid", route: withTLS("tls"),
			refs:   Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): tlsSecret("team-a", "tls", cert, key)}},
			reason: edgev1alpha1.RouteReasonResolvedRefs,
		},
		{
			name: "tls secret missing", route: withTLS("tls"), refs: Refs{Services: services},
			reason: edgev1alpha1.RouteReasonSecretNotFound, inReason: []string{"spec.tls[0].secretName", `Secret "tls"`},
		},
		{
			name: "tls secret for other hosts", route: withTLS("tls"),
			refs:   Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): tlsSecret("team-a", "tls", otherCert, otherKey)}},
			reason: edgev1alpha1.RouteReasonInvalidCertificate, inReason: []string{"spec.tls[0].secretName", "does not cover"},
		},
		{
			name: "tls key does not match the certificate", route: withTLS("tls"),
			refs:   Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): tlsSecret("team-a", "tls", cert, otherKey)}},
			reason: edgev1alpha1.RouteReasonInvalidCertificate, inReason: []string{"not a valid key pair"},
		},
		{
			name: "tls secret of the wrong type", route: withTLS("tls"),
			refs: Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): func() *corev1.Secret {
				s := tlsSecret("team-a", "tls", cert, key)
				s.Type = corev1.SecretTypeOpaque
				return s
			}()}},
			reason: edgev1alpha1.RouteReasonInvalidCertificate, inReason: []string{`"Opaque"`},
		},
		{
			name: "tls secret garbage", route: withTLS("tls"),
			refs:   Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): tlsSecret("team-a", "tls", []byte("x"), []byte("y"))}},
			reason: edgev1alpha1.RouteReasonInvalidCertificate,
		},
		{
			name: "wildcard host needs the wildcard in the certificate", route: withTLS("tls", "*.a.example.com"),
			refs:   Refs{Services: services, Secrets: map[types.NamespacedName]*corev1.Secret{key2("team-a", "tls"): tlsSecret("team-a", "tls", otherCert, otherKey)}},
			reason: edgev1alpha1.RouteReasonInvalidCertificate, inReason: []string{`"*.a.example.com"`},
		},
		{
			name: "first problem gives the reason, every problem is listed",
			route: func() *edgev1alpha1.TenantRoute {
				tr := withBackend(withTLS("tls"), "", "gone")
				return withBackend(tr, "shared", "search")
			}(),
			refs:     Refs{Services: services},
			reason:   edgev1alpha1.RouteReasonBackendNotFound,
			inReason: []string{"backendRefs[1]", "backendRefs[2]", "spec.tls[0]"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := ResolveRefs(tc.route, tc.refs)
			if v.Reason != tc.reason || v.OK != (tc.reason == edgev1alpha1.RouteReasonResolvedRefs) {
				t.Fatalf("ResolveRefs = %+v, want reason %s", v, tc.reason)
			}
			for _, s := range tc.inReason {
				if !strings.Contains(v.Message, s) {
					t.Errorf("message %q does not contain %q", v.Message, s)
				}
			}
		})
	}
}

// A TenantRoute generated from an HTTPRoute is granted what the HTTPRoute is: grants from
// gateway.networking.k8s.io HTTPRoute. A hand-written TenantRoute, even labelled as generated,
// still needs a grant from TenantRoute.
func TestResolveRefsGrantsOfGeneratedRoutes(t *testing.T) {
	key2 := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	services := map[types.NamespacedName]*corev1.Service{
		key2("team-a", "web"):    svc("team-a", "web", corev1.ServiceTypeClusterIP),
		key2("shared", "search"): svc("shared", "search", corev1.ServiceTypeClusterIP),
	}
	fromHTTPRoute := grant("shared", "team-a", nil)
	fromHTTPRoute.Spec.From[0].Group, fromHTTPRoute.Spec.From[0].Kind = "gateway.networking.k8s.io", "HTTPRoute"
	generated := func() *edgev1alpha1.TenantRoute {
		tr := withBackend(route("team-a", "r", "a.example.com"), "shared", "search")
		tr.Labels = map[string]string{edgev1alpha1.LabelSourceKind: "HTTPRoute"}
		tr.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute", Name: "web", UID: "u", Controller: ptr.To(true),
		}}
		return tr
	}
	labelledOnly := func() *edgev1alpha1.TenantRoute {
		tr := generated()
		tr.OwnerReferences = nil
		return tr
	}
	cases := []struct {
		name   string
		route  *edgev1alpha1.TenantRoute
		grants []gwapiv1beta1.ReferenceGrant
		reason edgev1alpha1.ConditionReason
	}{
		{"generated, grant from HTTPRoute", generated(), []gwapiv1beta1.ReferenceGrant{fromHTTPRoute}, edgev1alpha1.RouteReasonResolvedRefs},
		{"generated, grant from TenantRoute only", generated(), []gwapiv1beta1.ReferenceGrant{grant("shared", "team-a", nil)}, edgev1alpha1.RouteReasonRefNotPermitted},
		{"generated, no grant", generated(), nil, edgev1alpha1.RouteReasonRefNotPermitted},
		{"labelled but not owned by an HTTPRoute", labelledOnly(), []gwapiv1beta1.ReferenceGrant{fromHTTPRoute}, edgev1alpha1.RouteReasonRefNotPermitted},
		{"hand-written, grant from HTTPRoute", withBackend(route("team-a", "r", "a.example.com"), "shared", "search"),
			[]gwapiv1beta1.ReferenceGrant{fromHTTPRoute}, edgev1alpha1.RouteReasonRefNotPermitted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := ResolveRefs(tc.route, Refs{Services: services, Grants: tc.grants})
			if v.Reason != tc.reason {
				t.Fatalf("reason = %s (%s), want %s", v.Reason, v.Message, tc.reason)
			}
		})
	}
	if !IsGrantSubject("gateway.networking.k8s.io", "HTTPRoute") || !IsGrantSubject(ReferenceGrantGroup, ReferenceGrantKind) || IsGrantSubject("gateway.networking.k8s.io", "Gateway") {
		t.Error("IsGrantSubject")
	}
}
