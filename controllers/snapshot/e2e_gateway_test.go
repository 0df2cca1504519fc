package snapshot_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
	"github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/runner"
)

// TestListenerCertificates: a Gateway's listener certificates reach the proxies of the EdgeProxy
// serving it, from the Gateway's namespace or (with a ReferenceGrant) a third one, follow the
// Secret and the grant, and never follow what a tenant writes on a TenantRoute.
func TestListenerCertificates(t *testing.T) {
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.proxies = []runner.Started{e.startProxy(ctx, "proxy-1"), e.startProxy(ctx, "proxy-2")}
	bg := context.Background()
	const gwNS, certNS, evilNS = "gateway-system", "certs", "evil"
	for _, ns := range []string{gwNS, certNS, evilNS} {
		must(t, e.c.Create(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	// The operator writes the EdgeProxy too (status, finalizer): re-read and retry on a conflict.
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ep := &edgev1alpha1.EdgeProxy{}
		if err := e.c.Get(bg, client.ObjectKey{Name: epName}, ep); err != nil {
			return err
		}
		ep.Spec.TenantNamespaces.Names = append(ep.Spec.TenantNamespaces.Names, evilNS)
		return e.c.Update(bg, ep)
	}))

	ca := dataplanetest.NewCA(t)
	secret := func(ns, name string, hosts ...string) (*corev1.Secret, *tls.Certificate) {
		crt, key, c := ca.Issue(t, hosts...)
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}, c
	}
	apiSecret, apiCert := secret(gwNS, "api-example-com-tls", "api.example.com")
	sharedSecret, sharedCert := secret(certNS, "shared-tls", "*.example.com")
	must(t, e.c.Create(bg, apiSecret))
	must(t, e.c.Create(bg, sharedSecret))

	must(t, e.c.Create(bg, &gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}))
	listener := func(name, host string, ref gwapiv1.SecretObjectReference) gwapiv1.Listener {
		l := gwapiv1.Listener{Name: gwapiv1.SectionName(name), Protocol: gwapiv1.HTTPSProtocolType, Port: 443,
			TLS:           &gwapiv1.ListenerTLSConfig{CertificateRefs: []gwapiv1.SecretObjectReference{ref}},
			AllowedRoutes: &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(gwapiv1.NamespacesFromAll)}}}
		if host != "" {
			l.Hostname = ptr.To(gwapiv1.Hostname(host))
		}
		return l
	}
	gw := &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: gwNS, Name: "public-gateway"},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "portico",
			Infrastructure: &gwapiv1.GatewayInfrastructure{ParametersRef: &gwapiv1.LocalParametersReference{
				Group: gwapiv1.Group(edgev1alpha1.GroupVersion.Group), Kind: "EdgeProxy", Name: epName}},
			Listeners: []gwapiv1.Listener{
				listener("api", "api.example.com", gwapiv1.SecretObjectReference{Name: "api-example-com-tls"}),
				listener("shared", "", gwapiv1.SecretObjectReference{Name: "shared-tls", Namespace: ptr.To(gwapiv1.Namespace(certNS))}),
			}}}
	must(t, e.c.Create(bg, gw))
	must(t, e.c.Create(bg, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}))
	httpRoute := func(ns, name, section, host string) *gwapiv1.HTTPRoute {
		return &gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: gwapiv1.HTTPRouteSpec{
				CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: gwapiv1.ObjectName(gw.Name),
					Namespace: ptr.To(gwapiv1.Namespace(gwNS)), SectionName: ptr.To(gwapiv1.SectionName(section))}}},
				Hostnames: []gwapiv1.Hostname{gwapiv1.Hostname(host)},
				Rules: []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
					BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web", Port: ptr.To(gwapiv1.PortNumber(80))}}}}}},
			}}
	}
	must(t, e.c.Create(bg, httpRoute(tenantNS, "web", "api", "api.example.com")))
	must(t, e.c.Create(bg, httpRoute(tenantNS, "www", "shared", "www.example.com")))

	// serves waits until both proxies answer SNI host with cert (nil: with no certificate).
	serves := func(what, host string, want *tls.Certificate) {
		t.Helper()
		for i, p := range e.proxies {
			eventually(t, fmt.Sprintf("proxy %d: %s", i, what), 30*time.Second, func() error {
				got, ok := p.Dataplane.TLS.Certificate(host)
				switch {
				case want == nil && ok:
					return fmt.Errorf("%s has a certificate (%s)", host, got.Leaf.Subject.CommonName)
				case want != nil && !ok:
					return fmt.Errorf("%s has no certificate", host)
				case want != nil && !bytes.Equal(got.Certificate[0], want.Certificate[0]):
					return fmt.Errorf("%s has another certificate (%s)", host, got.Leaf.Subject.CommonName)
				}
				return nil
			})
		}
	}
	listenerResolved := func(name string, status metav1.ConditionStatus, reason gwapiv1.ListenerConditionReason) {
		t.Helper()
		eventually(t, fmt.Sprintf("listener %s ResolvedRefs=%s %s", name, status, reason), 30*time.Second, func() error {
			cur := &gwapiv1.Gateway{}
			if err := e.c.Get(bg, client.ObjectKeyFromObject(gw), cur); err != nil {
				return err
			}
			for _, l := range cur.Status.Listeners {
				if string(l.Name) != name {
					continue
				}
				c := apimeta.FindStatusCondition(l.Conditions, string(gwapiv1.ListenerConditionResolvedRefs))
				if c == nil || c.Status != status || c.Reason != string(reason) || c.ObservedGeneration != cur.Generation {
					return fmt.Errorf("ResolvedRefs: %+v", c)
				}
				return nil
			}
			return fmt.Errorf("no status for listener %s: %+v", name, cur.Status.Listeners)
		})
	}

	t.Run("Secret in the Gateway's namespace is served for the listener's hostname", func(t *testing.T) {
		serves("api.example.com served with the Gateway's Secret", "api.example.com", apiCert)
		listenerResolved("api", metav1.ConditionTrue, gwapiv1.ListenerReasonResolvedRefs)
	})

	t.Run("Secret in a third namespace needs a ReferenceGrant; deleting it revokes", func(t *testing.T) {
		listenerResolved("shared", metav1.ConditionFalse, gwapiv1.ListenerReasonRefNotPermitted)
		serves("www.example.com not served without a grant", "www.example.com", nil)
		grant := &gwapiv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: certNS, Name: "gateways"},
			Spec: gwapiv1beta1.ReferenceGrantSpec{
				From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.GroupName, Kind: "Gateway", Namespace: gwNS}},
				To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Secret", Name: ptr.To(gwapiv1.ObjectName("shared-tls"))}}}}
		must(t, e.c.Create(bg, grant))
		serves("www.example.com served once granted (the attached route's host)", "www.example.com", sharedCert)
		listenerResolved("shared", metav1.ConditionTrue, gwapiv1.ListenerReasonResolvedRefs)
		// A listener without hostname answers every name: its certificate is the default one.
		serves("other.example.com: the listener's default certificate", "other.example.com", sharedCert)
		must(t, e.c.Delete(bg, grant))
		serves("www.example.com revoked with the grant", "www.example.com", nil)
		serves("other.example.com revoked with the grant", "other.example.com", nil)
		listenerResolved("shared", metav1.ConditionFalse, gwapiv1.ListenerReasonRefNotPermitted)
		serves("api.example.com still served", "api.example.com", apiCert)
	})

	t.Run("a tenant's TenantRoute cannot get the key pair", func(t *testing.T) {
		alias := snapshot.ListenerCertificateAlias(types.NamespacedName{Namespace: gwNS, Name: "api-example-com-tls"})
		for _, tls := range [][]edgev1alpha1.RouteTLS{
			{{Hosts: []edgev1alpha1.Hostname{"steal.example.com"}, SecretName: alias}},
			{{Hosts: []edgev1alpha1.Hostname{"steal.example.com"}, SecretName: "api-example-com-tls"}},
		} {
			steal := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "steal",
				// Looking like a route generated for the Gateway changes nothing either.
				Labels: map[string]string{"edge.portico.dev/gateway-namespace": gwNS, "edge.portico.dev/gateway-name": gw.Name}},
				Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: epName, Hostnames: []edgev1alpha1.Hostname{"steal.example.com"},
					TLS: tls, Rules: []edgev1alpha1.TenantRouteRule{redirectRule()}}}
			must(t, e.c.Create(bg, steal))
			eventually(t, "steal admitted and live", 30*time.Second, func() error {
				for i, p := range e.proxies {
					if code, err := get(p, "steal.example.com", "/redirect"); code != 302 {
						return fmt.Errorf("proxy %d: %d %v", i, code, err)
					}
				}
				return nil
			})
			serves("steal.example.com gets no certificate", "steal.example.com", nil)
			serves("api.example.com still served", "api.example.com", apiCert)
			must(t, e.c.Delete(bg, steal))
			eventually(t, "steal deleted", 30*time.Second, func() error {
				err := e.c.Get(bg, client.ObjectKeyFromObject(steal), &edgev1alpha1.TenantRoute{})
				return client.IgnoreNotFound(err)
			})
		}
	})

	t.Run("the Secret's rotation and deletion follow", func(t *testing.T) {
		rotated, rotatedCert := secret(gwNS, "api-example-com-tls", "api.example.com")
		cur := &corev1.Secret{}
		must(t, e.c.Get(bg, client.ObjectKeyFromObject(apiSecret), cur))
		cur.Data = rotated.Data
		must(t, e.c.Update(bg, cur))
		serves("api.example.com served with the rotated key pair", "api.example.com", rotatedCert)
		must(t, e.c.Delete(bg, cur))
		serves("api.example.com no longer served", "api.example.com", nil)
		listenerResolved("api", metav1.ConditionFalse, gwapiv1.ListenerReasonInvalidCertificateRef)
	})
	e.stopOperator()
}
