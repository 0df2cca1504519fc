package certificates

import (
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var secret = types.NamespacedName{Namespace: "app", Name: "web-tls"}

func edgeProxy(issuer *edgev1alpha1.IssuerReference, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.EdgeProxy {
	ep := &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "ep"}}
	ep.Spec.Hostnames = hosts
	if issuer != nil {
		ep.Spec.TLS = &edgev1alpha1.TLSDefaults{Issuer: issuer}
	}
	return ep
}

func route(name string, age time.Duration, admitted bool, tls edgev1alpha1.RouteTLS, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.TenantRoute {
	tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{
		Namespace: "app", Name: name, UID: types.UID("uid-" + name), Generation: 1,
		CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0).Add(-age)),
	}}
	tr.Spec.EdgeProxy = "ep"
	tr.Spec.Hostnames = hosts
	tr.Spec.TLS = []edgev1alpha1.RouteTLS{tls}
	st := metav1.ConditionFalse
	if admitted {
		st = metav1.ConditionTrue
	}
	tr.Status.Conditions = []metav1.Condition{{Type: "Accepted", Status: st, Reason: "Accepted", ObservedGeneration: 1}}
	return tr
}

var clusterIssuer = &edgev1alpha1.IssuerReference{Name: "default-ca"}

func TestDecideMergesAdmittedAllowedHostsOldestOwns(t *testing.T) {
	ep := edgeProxy(clusterIssuer, "a.example.com", "*.example.com")
	tls := edgev1alpha1.RouteTLS{SecretName: "web-tls"}
	in := Input{Secret: secret, Routes: []Route{
		{Route: route("young", time.Minute, true, tls, "b.example.com"), EdgeProxy: ep},
		{Route: route("old", time.Hour, true, tls, "a.example.com", "*.Example.com"), EdgeProxy: ep},
		{Route: route("refused", 2*time.Hour, false, tls, "c.example.com"), EdgeProxy: ep},
		{Route: route("disallowed", 3*time.Hour, true, tls, "evil.org"), EdgeProxy: ep},
	}}
	d := Decide(in)
	c := d.Desired
	if c == nil || d.External != "" {
		t.Fatalf("want a Certificate, got %+v", d)
	}
	if got := strings.Join(c.Spec.DNSNames, ","); got != "*.example.com,a.example.com,b.example.com" {
		t.Errorf("dnsNames %s", got)
	}
	if c.Name != "portico-web-tls" || c.Spec.SecretName != "web-tls" {
		t.Errorf("name %s secret %s", c.Name, c.Spec.SecretName)
	}
	if r := c.Spec.IssuerRef; r.Name != "default-ca" || r.Kind != "Issuer" || r.Group != "cert-manager.io" {
		t.Errorf("issuerRef %+v (kind and group must be explicit)", r)
	}
	// "disallowed" is the oldest admitted route but contributes no host: it still co-owns.
	ctl := metav1.GetControllerOf(c)
	if ctl == nil || ctl.Name != "disallowed" || len(c.OwnerReferences) != 3 {
		t.Errorf("owners %+v", c.OwnerReferences)
	}
	if !Owned(c) {
		t.Error("our own Certificate is not recognised as ours")
	}
}

func TestDecideIssuerResolutionMostSpecificFirst(t *testing.T) {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web", Annotations: map[string]string{
		cmv1.IngressClusterIssuerNameAnnotationKey: "from-ingress",
		cmv1.DurationAnnotationKey:                 "2160h",
		cmv1.PrivateKeyAlgorithmAnnotationKey:      "ECDSA",
		cmv1.PrivateKeyRotationPolicyAnnotationKey: "Always",
		secretTemplate:                `{"labels":{"team":"web"}}`,
		cmv1.RenewBeforeAnnotationKey: "soon",
	}}}
	ing.Spec.TLS = []networkingv1.IngressTLS{{SecretName: "web-tls"}}
	ep := edgeProxy(&edgev1alpha1.IssuerReference{Name: "ep-default", Kind: "ClusterIssuer", Group: "cert-manager.io"}, "a.example.com")
	tr := route("r", 0, true, edgev1alpha1.RouteTLS{SecretName: "web-tls"}, "a.example.com")

	// Shim in charge: the annotated Ingress belongs to cert-manager's ingress-shim.
	d := Decide(Input{Secret: secret, ShimInCharge: true, Routes: []Route{{Route: tr, EdgeProxy: ep, Ingress: ing}}})
	if d.Desired != nil || !strings.Contains(d.External, "ingress-shim") {
		t.Fatalf("shim in charge: %+v", d)
	}
	// Shim off: the Ingress annotation beats the EdgeProxy default, and its overrides apply.
	d = Decide(Input{Secret: secret, Routes: []Route{{Route: tr, EdgeProxy: ep, Ingress: ing}}})
	c := d.Desired
	if c == nil || c.Spec.IssuerRef.Name != "from-ingress" || c.Spec.IssuerRef.Kind != "ClusterIssuer" {
		t.Fatalf("ingress issuer: %+v", d)
	}
	if c.Spec.Duration == nil || c.Spec.Duration.Duration != 2160*time.Hour || c.Spec.RenewBefore != nil {
		t.Errorf("duration %v renewBefore %v", c.Spec.Duration, c.Spec.RenewBefore)
	}
	if c.Spec.PrivateKey == nil || c.Spec.PrivateKey.Algorithm != cmv1.ECDSAKeyAlgorithm || c.Spec.PrivateKey.RotationPolicy != cmv1.RotationPolicyAlways {
		t.Errorf("private key %+v", c.Spec.PrivateKey)
	}
	if c.Spec.SecretTemplate == nil || c.Spec.SecretTemplate.Labels["team"] != "web" {
		t.Errorf("secret template %+v", c.Spec.SecretTemplate)
	}
	if len(d.Notices) != 1 || !strings.Contains(d.Notices[0], "renew-before") {
		t.Errorf("notices %v", d.Notices)
	}
	// The route's own issuer beats both.
	tr2 := tr.DeepCopy()
	tr2.Spec.TLS[0].Issuer = &edgev1alpha1.IssuerReference{Name: "own", Kind: "Issuer", Group: "example.io"}
	d = Decide(Input{Secret: secret, Routes: []Route{{Route: tr2, EdgeProxy: ep, Ingress: ing}}})
	if r := d.Desired.Spec.IssuerRef; r.Name != "own" || r.Kind != "Issuer" || r.Group != "example.io" {
		t.Errorf("route issuer %+v", r)
	}
	// EdgeProxy default alone.
	d = Decide(Input{Secret: secret, Routes: []Route{{Route: tr, EdgeProxy: ep}}})
	if d.Desired == nil || d.Desired.Spec.IssuerRef.Name != "ep-default" {
		t.Errorf("edgeproxy issuer %+v", d)
	}
	// No issuer anywhere: no Certificate, the Secret is the tenant's.
	d = Decide(Input{Secret: secret, Routes: []Route{{Route: tr, EdgeProxy: edgeProxy(nil, "a.example.com")}}})
	if d.Desired != nil || d.External != "" {
		t.Errorf("no issuer: %+v", d)
	}
}

func TestDecideNeverASecondWriter(t *testing.T) {
	ep := edgeProxy(clusterIssuer, "a.example.com")
	tr := route("r", 0, true, edgev1alpha1.RouteTLS{SecretName: "web-tls"}, "a.example.com")
	mine := Decide(Input{Secret: secret, Routes: []Route{{Route: tr, EdgeProxy: ep}}}).Desired
	foreign := cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-tls"}}
	foreign.Spec.SecretName = "web-tls"

	d := Decide(Input{Secret: secret, Routes: []Route{{Route: tr, EdgeProxy: ep}}, Certificates: []cmv1.Certificate{*mine, foreign}})
	if d.Desired != nil || !strings.Contains(d.External, "app/web-tls") {
		t.Fatalf("foreign certificate: %+v", d)
	}
	if len(d.Delete) != 1 || d.Delete[0] != mine.Name {
		t.Errorf("ours must go when another writer exists: %v", d.Delete)
	}
	// A Certificate merely labelled like ours, controlled by something else, is not ours.
	fake := foreign.DeepCopy()
	fake.Labels = map[string]string{LabelSecret: SecretHash("web-tls")}
	if Owned(fake) {
		t.Error("label alone must not make a Certificate ours")
	}
	// Route no longer admitted: ours is deleted.
	gone := tr.DeepCopy()
	gone.Status.Conditions[0].Status = metav1.ConditionFalse
	d = Decide(Input{Secret: secret, Routes: []Route{{Route: gone, EdgeProxy: ep}}, Certificates: []cmv1.Certificate{*mine}})
	if d.Desired != nil || len(d.Delete) != 1 {
		t.Errorf("unadmitted: %+v", d)
	}
}

func TestNameIsBounded(t *testing.T) {
	long := strings.Repeat("a", 253)
	if n := Name(long); len(n) != 253 || n == Name(long[:252]+"b") {
		t.Errorf("name %d %s", len(n), n)
	}
}
