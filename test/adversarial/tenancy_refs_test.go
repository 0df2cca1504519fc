package adversarial

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
)

// TestTenancyCrossNamespaceBackend: a route of namespace xref-app with two rules, /own (its own
// Service) and /shared (a Service of xref-shared). Without a ReferenceGrant the reference is
// refused (ResolvedRefs=False, RefNotPermitted), /shared answers 500 (Gateway API: a request to an
// invalid backend gets 500) and /own keeps serving; with the grant /shared is served; deleting the
// grant revokes it. Both transitions are timed (bar: ≤ 5 s).
func TestTenancyCrossNamespaceBackend(t *testing.T) {
	cl := tenancyCluster(t)
	const nsApp, nsShared, host = "xref-app", "xref-shared", "shop.xref.example"
	tn := cl.newTenant(t, "xref", "xref.example", nsApp)
	cl.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsShared}})
	own := cl.backend(t, nsApp, "own")
	shared := cl.backend(t, nsShared, "api")
	p := cl.proxy(t, tn, "p-1")
	cl.create(t, route(nsApp, "site", tn.name, []string{host}, prefixRule("/own", "", "own"), prefixRule("/shared", nsShared, "api")))

	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	ownServes := func() error {
		code, body, err := fetch(c, p, host, "/own")
		if err != nil || code != 200 || body != nsApp+"/own" {
			return fmt.Errorf("/own: %d %q %v", code, body, err)
		}
		return nil
	}
	sharedIs := func(want int) func() error {
		return func() error {
			if err := ownServes(); err != nil {
				t.Errorf("the other rule of the route broke: %v", err)
			}
			code, body, err := fetch(c, p, host, "/shared")
			if err != nil {
				return err
			}
			if code != want || want == 200 && body != nsShared+"/api" {
				return fmt.Errorf("/shared: %d %q", code, body)
			}
			return nil
		}
	}

	// Refused: the route is accepted (its own rule serves), the reference is not.
	cl.waitCondition(t, nsApp, "site", edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted, 30*time.Second)
	waitServes(t, p, host, "/own", 200, nsApp+"/own", 30*time.Second)
	poll(t, "refused backend answers 500", 30*time.Second, sharedIs(http.StatusInternalServerError))
	for range 20 {
		if err := sharedIs(http.StatusInternalServerError)(); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
	if n := shared.count(); n != 0 {
		t.Errorf("the refused Service was reached %d times", n)
	}
	t.Logf("without a ReferenceGrant: ResolvedRefs=False RefNotPermitted; /shared → 500, /own → 200; %s/api reached 0 times", nsShared)

	grant := &gwapiv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: nsShared, Name: "from-app"},
		Spec: gwapiv1beta1.ReferenceGrantSpec{
			From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.Group(edgev1alpha1.GroupVersion.Group), Kind: "TenantRoute", Namespace: nsApp}},
			To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: ptr.To(gwapiv1.ObjectName("api"))}}}}
	cl.create(t, grant)
	served := poll(t, "granted backend served", 30*time.Second, sharedIs(200))
	cl.waitCondition(t, nsApp, "site", edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, 30*time.Second)

	if err := cl.c.Delete(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	revoked := poll(t, "revoked backend answers 500", 30*time.Second, sharedIs(http.StatusInternalServerError))
	before := shared.count()
	for range 20 {
		if err := sharedIs(http.StatusInternalServerError)(); err != nil {
			t.Errorf("revoked: %v", err)
		}
	}
	if n := shared.count() - before; n != 0 {
		t.Errorf("revoked Service reached %d times after the revocation was observed", n)
	}
	cl.waitCondition(t, nsApp, "site", edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted, 30*time.Second)
	t.Logf("ReferenceGrant created → /shared served after %v; deleted → /shared 500 after %v; /own served throughout (%d requests)",
		served.Round(time.Millisecond), revoked.Round(time.Millisecond), own.count())
	for what, d := range map[string]time.Duration{"grant": served, "revocation": revoked} {
		if d > 5*time.Second {
			t.Errorf("%s took %v; bar 5 s", what, d)
		}
	}
}

// TestTenancyCrossNamespaceSecret: a Gateway's HTTPS listener names a Secret of another namespace.
// A TenantRoute cannot name one at all (spec.tls[].secretName is always of the route's own
// namespace), so the listener's certificateRefs are the one cross-namespace Secret reference. Without
// a ReferenceGrant the listener is ResolvedRefs=False RefNotPermitted and the proxy has no
// certificate for the host (TLS handshake: unrecognized_name); with it the handshake presents the
// Secret's certificate; deleting the grant revokes it. Both transitions are timed.
func TestTenancyCrossNamespaceSecret(t *testing.T) {
	cl := tenancyCluster(t)
	const nsApp, nsGW, nsCerts, host = "xsec-app", "xsec-gateway", "xsec-certs", "www.xsec.example"
	tn := cl.newTenant(t, "xsec", "xsec.example", nsApp)
	for _, ns := range []string{nsGW, nsCerts} {
		cl.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	cl.backend(t, nsApp, "web")
	ca := dpt.NewCA(t)
	crt, key, cert := ca.Issue(t, "*.xsec.example")
	cl.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nsCerts, Name: "wildcard"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}})
	cl.create(t, &gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "xsec"},
		Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}})
	gw := &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: nsGW, Name: "public"},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "xsec",
			Infrastructure: &gwapiv1.GatewayInfrastructure{ParametersRef: &gwapiv1.LocalParametersReference{
				Group: gwapiv1.Group(edgev1alpha1.GroupVersion.Group), Kind: "EdgeProxy", Name: tn.name}},
			Listeners: []gwapiv1.Listener{{Name: "https", Protocol: gwapiv1.HTTPSProtocolType, Port: 443,
				TLS: &gwapiv1.ListenerTLSConfig{CertificateRefs: []gwapiv1.SecretObjectReference{
					{Name: "wildcard", Namespace: ptr.To(gwapiv1.Namespace(nsCerts))}}},
				AllowedRoutes: &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(gwapiv1.NamespacesFromAll)}}}}}}
	cl.create(t, gw)
	cl.create(t, &gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: nsApp, Name: "www"},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "public",
				Namespace: ptr.To(gwapiv1.Namespace(nsGW))}}},
			Hostnames: []gwapiv1.Hostname{host},
			Rules: []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
				BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web", Port: ptr.To(gwapiv1.PortNumber(80))}}}}}},
		}})
	p := cl.proxy(t, tn, "p-1")

	listener := func(status metav1.ConditionStatus, reason gwapiv1.ListenerConditionReason) func() error {
		return func() error {
			cur := &gwapiv1.Gateway{}
			if err := cl.c.Get(context.Background(), client.ObjectKeyFromObject(gw), cur); err != nil {
				return err
			}
			for _, l := range cur.Status.Listeners {
				c := apimeta.FindStatusCondition(l.Conditions, string(gwapiv1.ListenerConditionResolvedRefs))
				if c != nil && c.Status == status && c.Reason == string(reason) && c.ObservedGeneration == cur.Generation {
					return nil
				}
				return fmt.Errorf("listener ResolvedRefs: %+v", c)
			}
			return fmt.Errorf("no listener status")
		}
	}
	// handshake: nil when the proxy presents the Secret's certificate for host; errNoCert when it
	// refuses the SNI (unrecognized_name).
	errNoCert := fmt.Errorf("no certificate (unrecognized_name)")
	handshake := func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.HTTPS,
			&tls.Config{ServerName: host, RootCAs: ca.Pool()})
		if err != nil {
			if strings.Contains(err.Error(), "unrecognized name") {
				return errNoCert
			}
			return err
		}
		defer conn.Close()
		if !bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, cert.Certificate[0]) {
			return fmt.Errorf("another certificate")
		}
		return nil
	}
	is := func(want error) func() error {
		return func() error {
			if err := handshake(); err != want {
				return fmt.Errorf("handshake: %v, want %v", err, want)
			}
			return nil
		}
	}

	poll(t, "listener refused", 30*time.Second, listener(metav1.ConditionFalse, gwapiv1.ListenerReasonRefNotPermitted))
	waitServes(t, p, host, "/", 200, nsApp+"/web", 30*time.Second)
	for range 10 {
		if err := is(errNoCert)(); err != nil {
			t.Fatalf("without a grant: %v", err)
		}
	}
	grant := &gwapiv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: nsCerts, Name: "gateways"},
		Spec: gwapiv1beta1.ReferenceGrantSpec{
			From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.GroupName, Kind: "Gateway", Namespace: nsGW}},
			To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Secret", Name: ptr.To(gwapiv1.ObjectName("wildcard"))}}}}
	cl.create(t, grant)
	served := poll(t, "certificate served once granted", 30*time.Second, is(nil))
	poll(t, "listener resolved", 30*time.Second, listener(metav1.ConditionTrue, gwapiv1.ListenerReasonResolvedRefs))
	if err := cl.c.Delete(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	revoked := poll(t, "certificate revoked with the grant", 30*time.Second, is(errNoCert))
	poll(t, "listener refused again", 30*time.Second, listener(metav1.ConditionFalse, gwapiv1.ListenerReasonRefNotPermitted))
	t.Logf("listener Secret in another namespace: refused (RefNotPermitted, unrecognized_name) → served %v after the grant → revoked %v after its deletion",
		served.Round(time.Millisecond), revoked.Round(time.Millisecond))
	for what, d := range map[string]time.Duration{"grant": served, "revocation": revoked} {
		if d > 5*time.Second {
			t.Errorf("%s took %v; bar 5 s", what, d)
		}
	}
}
