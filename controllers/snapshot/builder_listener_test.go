package snapshot

import (
	"bytes"
	"crypto/tls"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/snapshotclient"
	"github.com/portico-dev/portico/dataplane/tlsstore"
)

// listenerInput: Gateway gateway-system/public-gateway served by EdgeProxy acme, with an HTTPS
// listener "api" (hostname api.example.com, Secret in the Gateway's namespace) and an HTTPS
// listener "shared" without hostname whose Secret lives in namespace certs (ReferenceGrant
// needed). HTTPRoutes of namespace app attach to both; their TenantRoutes are admitted.
type listenerFixture struct {
	in                Input
	apiCert, wildCert *tls.Certificate
}

func tlsSecret(t *testing.T, ca *dataplanetest.CA, ns, name string, hosts ...string) (*corev1.Secret, *tls.Certificate) {
	crt, key, c := ca.Issue(t, hosts...)
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}, c
}

func admitted(ns, name string, created time.Time, hosts ...string) edgev1alpha1.TenantRoute {
	tr := route(ns, name, "acme", 1, true, backendRef("", "web", 80))
	tr.UID = types.UID(ns + "-" + name)
	tr.CreationTimestamp = metav1.NewTime(created)
	tr.Spec.Hostnames = nil
	for _, h := range hosts {
		tr.Spec.Hostnames = append(tr.Spec.Hostnames, edgev1alpha1.Hostname(h))
	}
	return tr
}

func httpRoute(ns, name, section string, hosts ...string) gwapiv1.HTTPRoute {
	r := gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	r.Spec.ParentRefs = []gwapiv1.ParentReference{{Name: "public-gateway", Namespace: ptr.To(gwapiv1.Namespace("gateway-system")),
		SectionName: ptr.To(gwapiv1.SectionName(section))}}
	for _, h := range hosts {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gwapiv1.Hostname(h))
	}
	return r
}

func newListenerFixture(t *testing.T) *listenerFixture {
	ca := dataplanetest.NewCA(t)
	apiSecret, apiCert := tlsSecret(t, ca, "gateway-system", "api-example-com-tls", "api.example.com")
	wildSecret, wildCert := tlsSecret(t, ca, "certs", "shared-tls", "*.example.com")
	listener := func(name, host string, ref gwapiv1.SecretObjectReference) gwapiv1.Listener {
		l := gwapiv1.Listener{Name: gwapiv1.SectionName(name), Protocol: gwapiv1.HTTPSProtocolType, Port: 443,
			TLS:           &gwapiv1.ListenerTLSConfig{CertificateRefs: []gwapiv1.SecretObjectReference{ref}},
			AllowedRoutes: &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(gwapiv1.NamespacesFromAll)}}}
		if host != "" {
			l.Hostname = ptr.To(gwapiv1.Hostname(host))
		}
		return l
	}
	gw := gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "gateway-system", Name: "public-gateway"},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "portico",
			Infrastructure: &gwapiv1.GatewayInfrastructure{ParametersRef: &gwapiv1.LocalParametersReference{
				Group: gwapiv1.Group(edgev1alpha1.GroupVersion.Group), Kind: "EdgeProxy", Name: "acme"}},
			Listeners: []gwapiv1.Listener{
				listener("api", "api.example.com", gwapiv1.SecretObjectReference{Name: "api-example-com-tls"}),
				listener("shared", "", gwapiv1.SecretObjectReference{Name: "shared-tls", Namespace: ptr.To(gwapiv1.Namespace("certs"))}),
			}}}
	ep := &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: edgev1alpha1.EdgeProxySpec{
		ProxyNamespace: "acme-edge", Hostnames: []edgev1alpha1.Hostname{"*.example.com"}}}
	t0 := time.Now().Add(-time.Hour)
	return &listenerFixture{apiCert: apiCert, wildCert: wildCert, in: Input{
		EdgeProxy: ep,
		Routes: []edgev1alpha1.TenantRoute{
			admitted("app", "httproute-web", t0, "api.example.com"),
			admitted("app", "httproute-www", t0.Add(time.Second), "www.example.com"),
		},
		Secrets: map[types.NamespacedName]*corev1.Secret{
			{Namespace: "gateway-system", Name: "api-example-com-tls"}: apiSecret,
			{Namespace: "certs", Name: "shared-tls"}:                   wildSecret,
		},
		Now:            time.Now(),
		Gateways:       []gwapiv1.Gateway{gw},
		GatewayClasses: []gwapiv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}},
		HTTPRoutes:     []gwapiv1.HTTPRoute{httpRoute("app", "web", "api", "api.example.com"), httpRoute("app", "www", "shared", "www.example.com")},
	}}
}

// serve decodes the snapshot as a proxy does and returns its certificate store.
func serve(t *testing.T, in Input) *tlsstore.Store {
	t.Helper()
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	msg := fullMessage(s, 1).GetSnapshot()
	d, err := snapshotclient.Decode(msg, proxy.Settings{}, in.Now)
	if err != nil {
		t.Fatalf("a proxy refuses the snapshot: %v", err)
	}
	st := tlsstore.New()
	st.Set(d.Table, d.Keypairs)
	return st
}

func servesCert(st *tlsstore.Store, host string, want *tls.Certificate) bool {
	got, ok := st.Certificate(host)
	return ok && want != nil && bytes.Equal(got.Certificate[0], want.Certificate[0])
}

func TestBuildServesListenerCertificates(t *testing.T) {
	f := newListenerFixture(t)
	st := serve(t, f.in)
	if !servesCert(st, "api.example.com", f.apiCert) {
		t.Error("api.example.com: the listener's certificate (Secret in the Gateway's namespace) is not served")
	}
	if _, ok := st.Certificate("www.example.com"); ok {
		t.Error("www.example.com: served a Secret of another namespace without a ReferenceGrant")
	}

	// A ReferenceGrant in the Secret's namespace from Gateways of gateway-system.
	grant := gwapiv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "certs", Name: "gateways"},
		Spec: gwapiv1beta1.ReferenceGrantSpec{
			From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.GroupName, Kind: "Gateway", Namespace: "gateway-system"}},
			To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Secret"}}}}
	f.in.ReferenceGrants = []gwapiv1beta1.ReferenceGrant{grant}
	st = serve(t, f.in)
	if !servesCert(st, "www.example.com", f.wildCert) {
		t.Error("www.example.com: the granted listener certificate (no listener hostname: the attached route's host) is not served")
	}
	if !servesCert(st, "api.example.com", f.apiCert) {
		t.Error("api.example.com: lost its certificate")
	}
	// A listener without hostname answers every name (Gateway API: HTTPRouteHTTPSListener): its
	// certificate is the listener default, served for names no route's TLS covers.
	if !servesCert(st, "other.example.com", f.wildCert) {
		t.Error("other.example.com: the certificate of the listener without hostname is not served as the default")
	}
	// A grant from another namespace's Gateways, or naming another Secret, does not count.
	grant.Spec.To[0].Name = ptr.To(gwapiv1.ObjectName("other-secret"))
	f.in.ReferenceGrants = []gwapiv1beta1.ReferenceGrant{grant}
	if _, ok := serve(t, f.in).Certificate("www.example.com"); ok {
		t.Error("www.example.com: served with a grant for another Secret")
	}
}

func TestBuildListenerCertificatesNeverFollowTenantRoutes(t *testing.T) {
	f := newListenerFixture(t)
	alias := ListenerCertificateAlias(types.NamespacedName{Namespace: "gateway-system", Name: "api-example-com-tls"})
	// A tenant names the Secret the listener's key pair travels under, in its own namespace and in
	// the carrier's, and names the Gateway's Secret across namespaces. It is older than every
	// other route, attaches an HTTPRoute to the listener, and holds hosts the certificate covers.
	steal := admitted("evil", "steal", time.Now().Add(-48*time.Hour), "steal.example.com")
	steal.Spec.TLS = []edgev1alpha1.RouteTLS{{Hosts: []edgev1alpha1.Hostname{"steal.example.com"}, SecretName: alias}}
	squat := admitted("app", "squat", time.Now().Add(-48*time.Hour), "squat.example.com")
	squat.Spec.TLS = []edgev1alpha1.RouteTLS{{Hosts: []edgev1alpha1.Hostname{"squat.example.com"}, SecretName: alias}}
	f.in.Routes = append(f.in.Routes, steal)
	f.in.HTTPRoutes = append(f.in.HTTPRoutes, httpRoute("evil", "steal", "api", "api.example.com"))
	st := serve(t, f.in)
	if _, ok := st.Certificate("steal.example.com"); ok {
		t.Error("steal.example.com: a TenantRoute naming the alias got the listener's key pair")
	}
	if !servesCert(st, "api.example.com", f.apiCert) {
		t.Error("api.example.com: not served once a tenant squats the alias")
	}
	f.in.Routes = append(f.in.Routes, squat)
	st = serve(t, f.in)
	for _, h := range []string{"steal.example.com", "squat.example.com"} {
		if _, ok := st.Certificate(h); ok {
			t.Errorf("%s: a TenantRoute naming the alias got the listener's key pair", h)
		}
	}
	// No namespace left to carry it: not served (the owner of api.example.com squats it too).
	if _, ok := st.Certificate("api.example.com"); ok {
		t.Error("api.example.com: served from a namespace whose own route names the alias")
	}
	// Any other namespace's route carries it then.
	f.in.Routes = append(f.in.Routes, admitted("shop", "a", time.Now(), "shop.example.com"))
	if !servesCert(serve(t, f.in), "api.example.com", f.apiCert) {
		t.Error("api.example.com: not served with a namespace free to carry it")
	}
	// Without the Gateway nothing is served, whatever the routes say.
	f.in.Gateways = nil
	if _, ok := serve(t, f.in).Certificate("api.example.com"); ok {
		t.Error("api.example.com: served without a Gateway")
	}
}

func TestBuildListenerCertificateRules(t *testing.T) {
	f := newListenerFixture(t)
	// Not Portico's Gateway (another EdgeProxy): not served.
	other := f.in
	other.EdgeProxy = &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "globex"}, Spec: f.in.EdgeProxy.Spec}
	if _, ok := serve(t, other).Certificate("api.example.com"); ok {
		t.Error("served by an EdgeProxy that does not serve the Gateway")
	}
	// An expired key pair would make every proxy refuse the snapshot: left out.
	late := f.in
	late.Now = time.Now().Add(48 * time.Hour)
	if _, ok := serve(t, late).Certificate("api.example.com"); ok {
		t.Error("an expired listener certificate is served")
	}
	// A Secret that is missing: the listener has no certificate.
	missing := f.in
	missing.Secrets = map[types.NamespacedName]*corev1.Secret{}
	if _, ok := serve(t, missing).Certificate("api.example.com"); ok {
		t.Error("served without the Secret")
	}
	// The route cache gives the same version and bytes as a fresh build.
	cached := f.in
	cached.Encoded = &RouteCache{}
	a, _ := Build(cached)
	b, _ := Build(cached)
	c, _ := Build(f.in)
	if a.Version != c.Version || b.Version != c.Version {
		t.Errorf("versions with and without the route cache differ: %s %s %s", a.Version, b.Version, c.Version)
	}
}
