package diagnose

import (
	"strings"
	"testing"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Row "HTTPS fails: cert-manager failure": the Certificate is not Ready because its ACME HTTP-01
// challenge is pending (the self-check cannot reach the solver). The test plays cert-manager: it
// writes the CertificateRequest, Order and Challenge and their statuses.
func TestSymptomCertificateChallengePending(t *testing.T) {
	ctx := needEnv(t)
	// diagnose's own scheme knows the ACME kinds (the CLI uses it).
	c, err := client.New(testEnv.Config, client.Options{Scheme: Scheme()})
	must(t, err)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	tn.route(t, ctx, tlsRoute, metav1.Condition{Type: "CertificateReady", Status: "False", Reason: "CertificatePending", Message: "waiting for cert-manager"})

	issuer := cmmeta.IssuerReference{Kind: "ClusterIssuer", Name: "letsencrypt", Group: "cert-manager.io"}
	cert := &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "web"},
		Spec: cmv1.CertificateSpec{SecretName: "web-tls", DNSNames: []string{tn.host}, IssuerRef: issuer}}
	must(t, c.Create(ctx, cert))
	cert.Status.Conditions = []cmv1.CertificateCondition{{Type: cmv1.CertificateConditionReady, Status: cmmeta.ConditionFalse,
		Reason: "DoesNotExist", Message: "Issuing certificate as Secret does not exist"}}
	must(t, c.Status().Update(ctx, cert))

	// An older request of a previous revision, then the current one.
	for i, name := range []string{"web-1", "web-2"} {
		cr := &cmv1.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name,
			Annotations:     map[string]string{cmv1.CertificateNameKey: "web", cmv1.CertificateRequestRevisionAnnotationKey: []string{"1", "2"}[i]},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "cert-manager.io/v1", Kind: "Certificate", Name: "web", UID: cert.UID}}},
			Spec: cmv1.CertificateRequestSpec{Request: []byte("csr"), IssuerRef: issuer}}
		must(t, c.Create(ctx, cr))
		cr.Status.Conditions = []cmv1.CertificateRequestCondition{
			{Type: cmv1.CertificateRequestConditionApproved, Status: cmmeta.ConditionTrue, Reason: "cert-manager.io", Message: "approved"},
			{Type: cmv1.CertificateRequestConditionReady, Status: cmmeta.ConditionFalse, Reason: cmv1.CertificateRequestReasonPending,
				Message: "Waiting on certificate issuance from order " + tn.ns + "/" + name + "-1234: \"pending\""}}
		must(t, c.Status().Update(ctx, cr))
		if name == "web-1" {
			continue
		}
		order := &acmev1.Order{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name + "-1234",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "cert-manager.io/v1", Kind: "CertificateRequest", Name: name, UID: cr.UID}}},
			Spec: acmev1.OrderSpec{Request: []byte("csr"), IssuerRef: issuer, DNSNames: []string{tn.host}}}
		must(t, c.Create(ctx, order))
		order.Status.State, order.Status.URL = acmev1.Pending, "https://acme.example/order/1"
		must(t, c.Status().Update(ctx, order))
		ch := &acmev1.Challenge{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name + "-1234-5678",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "acme.cert-manager.io/v1", Kind: "Order", Name: order.Name, UID: order.UID}}},
			Spec: acmev1.ChallengeSpec{URL: "https://acme.example/chall/1", AuthorizationURL: "https://acme.example/authz/1",
				DNSName: tn.host, Type: acmev1.ACMEChallengeTypeHTTP01, Token: "tok", Key: "tok.key", IssuerRef: issuer,
				Solver: acmev1.ACMEChallengeSolver{HTTP01: &acmev1.ACMEChallengeSolverHTTP01{Ingress: &acmev1.ACMEChallengeSolverHTTP01Ingress{}}}}}
		must(t, c.Create(ctx, ch))
		ch.Status = acmev1.ChallengeStatus{Processing: true, Presented: true, State: acmev1.Pending,
			Reason: "Waiting for HTTP-01 challenge propagation: wrong status code '404', expected '200'"}
		must(t, c.Status().Update(ctx, ch))
	}

	r, err := TenantRoute(ctx, c, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "cert-manager Certificate "+tn.ns+"/web", Failed, "challenge pending: HTTP-01 self-check for "+tn.host+" failing")
	st := r.Find("cert-manager Certificate " + tn.ns + "/web")[0]
	for _, want := range []string{"CertificateRequest web-2", "Order web-2-1234 state pending",
		"Challenge web-2-1234-5678 HTTP-01 for " + tn.host + ": state pending", "wrong status code '404'"} {
		if !containsSub(st.Evidence, want) {
			t.Errorf("evidence %q lacks %q", st.Evidence, want)
		}
	}
	if containsSub(st.Evidence, "CertificateRequest web-1") {
		t.Errorf("evidence %q names the older CertificateRequest", st.Evidence)
	}
	if !strings.Contains(st.Fix, "kubectl describe challenge web-2-1234-5678") {
		t.Errorf("fix %q does not name the challenge", st.Fix)
	}
}

// A not-Ready Certificate whose Order is invalid names the order's reason; without ACME read access
// the step says it could not check, not guesses; without any request it says so.
func TestIssuanceOrderInvalidAndUnreadable(t *testing.T) {
	cert := &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}}
	cr := cmv1.CertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", UID: "u2",
		OwnerReferences: []metav1.OwnerReference{{Kind: "Certificate", Name: "web", UID: "u1"}}}}
	order := acmev1.Order{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1-1", UID: "u3",
		OwnerReferences: []metav1.OwnerReference{{Kind: "CertificateRequest", Name: "web-1", UID: "u2"}}},
		Status: acmev1.OrderStatus{State: acmev1.Invalid, Reason: "urn:ietf:params:acme:error:rejectedIdentifier"}}
	s := NewState(metav1.Now().Time)
	s.CertificateRequests["ns"] = []cmv1.CertificateRequest{cr}
	s.Orders["ns"] = []acmev1.Order{order}
	s.Challenges["ns"] = nil
	ev, cause, _ := issuance(s, cert)
	if !strings.Contains(cause, "ACME order invalid: urn:ietf:params:acme:error:rejectedIdentifier") {
		t.Errorf("cause %q", cause)
	}
	if !containsSub(ev, "Order web-1-1 state invalid") {
		t.Errorf("evidence %q", ev)
	}

	s.Errs[keyOrders("ns")] = apierrors.NewForbidden(schema.GroupResource{Group: "acme.cert-manager.io", Resource: "orders"}, "", nil)
	ev, cause, _ = issuance(s, cert)
	if cause != "" || !containsSub(ev, "could not check (RBAC)") {
		t.Errorf("unreadable orders: cause %q, evidence %q", cause, ev)
	}

	s = NewState(metav1.Now().Time)
	s.CertificateRequests["ns"] = nil
	_, cause, _ = issuance(s, cert)
	if !strings.Contains(cause, "no CertificateRequest") {
		t.Errorf("no request: cause %q", cause)
	}
}

func TestProxiesStep(t *testing.T) {
	ep := func(ready, connected int32, proxies ...edgev1alpha1.ConnectedProxy) *edgev1alpha1.EdgeProxy {
		return &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: edgev1alpha1.EdgeProxySpec{ProxyNamespace: "edge"},
			Status: edgev1alpha1.EdgeProxyStatus{ReadyReplicas: ready, ConnectedProxies: connected, Proxies: proxies}}
	}
	a := edgev1alpha1.ConnectedProxy{Pod: "proxy-a", Version: "7", ConnectedSince: metav1.Now()}
	b := edgev1alpha1.ConnectedProxy{Pod: "proxy-b", Version: "6", RejectedVersion: "7", ConnectedSince: metav1.Now()}

	st := proxiesStep(ep(2, 2, a, a))
	if st.Status != OK || !containsSub(st.Evidence, "connected proxies 2 of 2 ready") || !containsSub(st.Evidence, "proxy-a: version 7") {
		t.Errorf("healthy: %+v", st)
	}
	st = proxiesStep(ep(3, 1, a))
	if st.Status != Warning || !strings.Contains(st.Cause, "2 of 3 ready proxies are not connected") {
		t.Errorf("partly connected: %+v", st)
	}
	st = proxiesStep(ep(2, 2, a, b))
	if st.Status != Failed || !strings.Contains(st.Cause, "proxy-b rejected version 7") || !strings.Contains(st.Cause, "NACK") {
		t.Errorf("rejected: %+v", st)
	}
	if !containsSub(st.Evidence, "proxy-b: version 6, rejected version 7") {
		t.Errorf("rejected evidence: %q", st.Evidence)
	}
}

// The EdgeProxy report names a replica that NACKed a snapshot, from the status the operator wrote.
func TestSymptomProxyRejectedSnapshot(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	ep := &edgev1alpha1.EdgeProxy{}
	must(t, k8sClient.Get(ctx, types.NamespacedName{Name: tn.ep}, ep))
	ep.Status.Proxies[1].RejectedVersion = "42"
	must(t, k8sClient.Status().Update(ctx, ep))
	r, err := EdgeProxy(ctx, k8sClient, tn.ep, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "EdgeProxy "+tn.ep+" proxies connected", Failed, tn.ep+"-proxy-b rejected version 42")

	ep.Status.Proxies = ep.Status.Proxies[:1]
	ep.Status.ConnectedProxies = 1
	must(t, k8sClient.Status().Update(ctx, ep))
	r, err = EdgeProxy(ctx, k8sClient, tn.ep, Options{})
	must(t, err)
	wantStep(t, r, "EdgeProxy "+tn.ep+" proxies connected", Warning, "1 of 2 ready proxies are not connected to the operator")
}

func containsSub(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
