package diagnose

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// advice is the likely cause and fix of a False condition with this reason.
var advice = map[edgev1alpha1.ConditionReason][2]string{
	edgev1alpha1.RouteReasonHostnameNotAllowed: {"404: the host is outside the EdgeProxy's allow-list", "use an allowed hostname or ask the platform team to allow it"},
	edgev1alpha1.RouteReasonHostnameConflict:   {"404: an older route of another namespace owns the host", "use another hostname, or have the owner release it"},
	edgev1alpha1.RouteReasonNamespaceNotServed: {"404: the EdgeProxy does not serve this namespace", "ask the platform team to add it to spec.tenantNamespaces"},
	edgev1alpha1.RouteReasonEdgeProxyNotFound:  {"no address / 404: no EdgeProxy of that name", "fix spec.edgeProxy or the IngressClass"},
	edgev1alpha1.RouteReasonInvalid:            {"the route does not compile; it is not served", "fix the field named in the message"},
	edgev1alpha1.RouteReasonBackendNotFound:    {"502/503: a backend Service does not exist", "create it or fix the backend name"},
	edgev1alpha1.RouteReasonRefNotPermitted:    {"503: a cross-namespace backend without a ReferenceGrant (or an ExternalName Service)", "add a ReferenceGrant in the backend's namespace"},
	edgev1alpha1.RouteReasonSecretNotFound:     {"TLS certificate mismatch / HTTPS fails: the TLS Secret does not exist (cert-manager not issued yet?)", "create the Secret or see the certificate steps below"},
	edgev1alpha1.RouteReasonInvalidCertificate: {"TLS certificate mismatch / HTTPS fails: the Secret is not a valid key pair covering the hosts", "see the certificate steps below"},
	edgev1alpha1.RouteReasonRejected:           {"a proxy refused the snapshot containing this route", "read the proxy logs (kubectl logs -n PROXY_NS deploy/portico-EDGEPROXY)"},
	edgev1alpha1.RouteReasonPending:            {"the proxies have not yet acknowledged a configuration containing this route (no proxy connected, or rolling out)", "check the EdgeProxy's ready replicas below"},
}

// checkConditions reports Accepted, ResolvedRefs, CertificateReady, Programmed and Translated.
func checkConditions(r *Report, tr *edgev1alpha1.TenantRoute) {
	for _, t := range []edgev1alpha1.ConditionType{edgev1alpha1.RouteConditionAccepted, edgev1alpha1.RouteConditionResolvedRefs,
		edgev1alpha1.RouteConditionCertificateReady, edgev1alpha1.RouteConditionProgrammed, edgev1alpha1.RouteConditionTranslated} {
		title := fmt.Sprintf("%s %s", routeName(tr), t)
		c := apimeta.FindStatusCondition(tr.Status.Conditions, string(t))
		if c == nil {
			if t == edgev1alpha1.RouteConditionTranslated {
				continue // only routes generated from an Ingress have it
			}
			r.add(Step{Section: "conditions", Title: title, Status: Warning,
				Evidence: []string{"the condition is not set"},
				Cause:    "the operator has not reconciled this route (is it running? does the route name an EdgeProxy it serves?)",
				Fix:      "kubectl get pods -A -l app.kubernetes.io/name=portico; kubectl logs the operator"})
			continue
		}
		st := Step{Section: "conditions", Title: title, Status: OK,
			Evidence: []string{fmt.Sprintf("%s (%s): %s", c.Status, c.Reason, c.Message)}}
		if c.ObservedGeneration != tr.Generation {
			st.Status = Warning
			st.Evidence = append(st.Evidence, fmt.Sprintf("observedGeneration %d, the route is at %d: the status is stale", c.ObservedGeneration, tr.Generation))
			st.Cause = "the operator has not caught up with the latest change"
		}
		reason := edgev1alpha1.ConditionReason(c.Reason)
		switch {
		case t == edgev1alpha1.RouteConditionTranslated && reason == edgev1alpha1.RouteReasonUnsupportedAnnotation:
			st.Status = Warning
			st.Cause = "some ingress-nginx annotation is ignored or only approximated; behaviour differs from ingress-nginx"
			st.Fix = "read the message; see docs for each annotation"
		case c.Status == metav1.ConditionTrue:
		case t == edgev1alpha1.RouteConditionCertificateReady && reason == edgev1alpha1.RouteReasonCertificatePending:
			st.Status = Warning
			st.Cause = "HTTPS fails until cert-manager issues the certificate"
			st.Fix = "kubectl get certificate,certificaterequest,order,challenge -n " + tr.Namespace
		case reason == edgev1alpha1.RouteReasonPending:
			st.Status = Warning
			st.Cause, st.Fix = advice[reason][0], advice[reason][1]
		default:
			st.Status = Failed
			if a, ok := advice[reason]; ok {
				st.Cause, st.Fix = a[0], a[1]
			}
		}
		r.add(st)
	}
}

// checkTLS: each TLS Secret exists, is a valid key pair, is not expired, and covers the hosts; the
// cert-manager Certificate writing it is Ready.
func checkTLS(r *Report, s *State, tr *edgev1alpha1.TenantRoute) {
	refs := admission.SecretRefs(tr)
	if len(refs) == 0 {
		r.add(Step{Section: "tls", Title: routeName(tr) + " TLS", Status: OK,
			Evidence: []string{"no spec.tls: served over plain HTTP only; HTTPS requests for these hosts fail the handshake (\"HTTP works, HTTPS fails\")"}})
		return
	}
	for _, ref := range refs {
		checkCertificate(r, s, ref)
		title := fmt.Sprintf("Secret %s for %s", ref.Secret, strings.Join(ref.Hosts, ", "))
		if st, ok := s.unknownStep("tls", title, keySecret(ref.Secret)); ok {
			st.Evidence = append(st.Evidence, "the route's ResolvedRefs condition says whether the operator found it valid")
			r.add(st)
			continue
		}
		sec := s.Secrets[ref.Secret]
		if sec == nil {
			r.add(Step{Section: "tls", Title: title, Status: Failed,
				Evidence: []string{"Secret not found"},
				Cause:    "HTTP works, HTTPS fails: the TLS Secret does not exist (cert-manager failure, or wrong secretName)",
				Fix:      "kubectl get certificate,certificaterequest,order,challenge -n " + ref.Secret.Namespace})
			continue
		}
		r.add(secretStep(s, sec, ref.Hosts, title))
	}
}

func secretStep(s *State, sec *corev1.Secret, hosts []string, title string) Step {
	st := Step{Section: "tls", Title: title, Status: OK}
	invalid := func(ev string) Step {
		st.Status = Failed
		st.Evidence = append(st.Evidence, ev)
		st.Cause = "HTTP works, HTTPS fails: Secret invalid; the proxy cannot serve this certificate"
		st.Fix = "recreate it with kubectl create secret tls NAME --cert=... --key=..., or let cert-manager write it"
		return st
	}
	if sec.Type != corev1.SecretTypeTLS {
		return invalid(fmt.Sprintf("type is %q, want kubernetes.io/tls", sec.Type))
	}
	if _, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return invalid("tls.crt and tls.key are not a valid key pair: " + err.Error())
	}
	block, _ := pem.Decode(sec.Data[corev1.TLSCertKey])
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return invalid("tls.crt: " + err.Error())
	}
	st.Evidence = append(st.Evidence, fmt.Sprintf("certificate: subject %q, SANs %v, issuer %q, valid %s to %s",
		leaf.Subject.CommonName, leaf.DNSNames, leaf.Issuer.CommonName,
		leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly)))
	switch left := leaf.NotAfter.Sub(s.Now); {
	case left <= 0 || s.Now.Before(leaf.NotBefore):
		st.Status = Failed
		st.Cause = "TLS certificate mismatch: stale certificate (expired or not yet valid); the proxy refuses to load it"
		st.Fix = "renew it (cert-manager: kubectl describe certificate; cmctl renew)"
		return st
	case left < 14*24*time.Hour:
		st.Status = Warning
		st.Cause = fmt.Sprintf("the certificate expires in %s; renewal may be failing", left.Round(time.Hour))
		st.Fix = "check the cert-manager Certificate's Ready condition and the Issuer"
	}
	if err := admission.ValidateKeyPair(sec, hosts); err != nil {
		st.Status = Failed
		st.Evidence = append(st.Evidence, err.Error())
		st.Cause = "TLS certificate mismatch: wrong Secret or wrong host: the certificate's SANs do not cover the host (a wildcard host needs the same wildcard SAN)"
		st.Fix = "use the Secret issued for these hosts, or reissue the certificate with them; check: openssl s_client -connect HOST:443 -servername HOST"
	}
	return st
}

// checkCertificate reports the cert-manager Certificate that writes the Secret, when there is one.
func checkCertificate(r *Report, s *State, ref admission.SecretRef) {
	ns := ref.Secret.Namespace
	if _, failed := s.Errs[keyCertificates(ns)]; failed {
		st, _ := s.unknownStep("tls", "cert-manager Certificate for Secret "+ref.Secret.String(), keyCertificates(ns))
		r.add(st)
		return
	}
	for _, c := range s.Certificates[ns] {
		if c.Spec.SecretName != ref.Secret.Name {
			continue
		}
		st := Step{Section: "tls", Title: fmt.Sprintf("cert-manager Certificate %s/%s", ns, c.Name), Status: OK}
		st.Evidence = append(st.Evidence, fmt.Sprintf("dnsNames %v, issuer %s %s", c.Spec.DNSNames, c.Spec.IssuerRef.Kind, c.Spec.IssuerRef.Name))
		if c.Status.NotAfter != nil {
			st.Evidence = append(st.Evidence, "notAfter "+c.Status.NotAfter.UTC().Format(time.RFC3339))
		}
		ready := false
		for _, cond := range c.Status.Conditions {
			if cond.Type == "Ready" {
				st.Evidence = append(st.Evidence, fmt.Sprintf("Ready=%s (%s): %s", cond.Status, cond.Reason, cond.Message))
				ready = cond.Status == cmmeta.ConditionTrue
			}
		}
		if !ready {
			st.Status = Failed
			st.Cause = "TLS certificate mismatch / HTTPS fails: cert-manager failure: the Certificate is not Ready (issuer, ACME order or challenge stuck)"
			st.Fix = fmt.Sprintf("kubectl describe certificate %s -n %s; kubectl get certificaterequest,order,challenge -n %s", c.Name, ns, ns)
			ev, cause, fix := issuance(s, &c)
			st.Evidence = append(st.Evidence, ev...)
			if cause != "" {
				st.Cause = "TLS certificate mismatch / HTTPS fails: " + cause
				st.Fix = fix
			}
		}
		for _, h := range ref.Hosts {
			covered := false
			for _, n := range c.Spec.DNSNames {
				covered = covered || strings.EqualFold(n, h) || admission.HostnameAllowed([]edgev1alpha1.Hostname{edgev1alpha1.Hostname(n)}, h)
			}
			if !covered && st.Status == OK {
				st.Status = Warning
				st.Cause = fmt.Sprintf("the Certificate's dnsNames do not include %q: the next issuance will not cover it", h)
				st.Fix = "add the host to the Certificate (or the Ingress's tls hosts)"
			}
		}
		r.add(st)
	}
}

// CheckEdgeProxy reports the EdgeProxy's Ready condition, replicas and external address.
func CheckEdgeProxy(r *Report, s *State, ep *edgev1alpha1.EdgeProxy) {
	for _, done := range r.Steps {
		if done.Section == "edgeproxy" && strings.HasPrefix(done.Title, "EdgeProxy "+ep.Name+" ") {
			return // one report, one fleet check per EdgeProxy
		}
	}
	st := Step{Section: "edgeproxy", Title: "EdgeProxy " + ep.Name + " Ready", Status: OK}
	c := apimeta.FindStatusCondition(ep.Status.Conditions, string(edgev1alpha1.EdgeProxyConditionReady))
	switch {
	case c == nil:
		st.Status, st.Cause = Warning, "the operator has not reported on this EdgeProxy (is it running?)"
	case c.Status != metav1.ConditionTrue:
		st.Status = Failed
		st.Evidence = append(st.Evidence, fmt.Sprintf("Ready=%s (%s): %s", c.Status, c.Reason, c.Message))
		st.Cause = "missing controller: the tenant's proxy fleet is not ready"
		st.Fix = fmt.Sprintf("kubectl describe edgeproxy %s; kubectl get pods -n %s", ep.Name, ep.Spec.ProxyNamespace)
	default:
		st.Evidence = append(st.Evidence, fmt.Sprintf("Ready=True (%s)", c.Reason))
	}
	st.Evidence = append(st.Evidence, fmt.Sprintf("replicas %d, ready %d; routes accepted %d, rejected %d",
		ep.Status.Replicas, ep.Status.ReadyReplicas, ep.Status.AcceptedRoutes, ep.Status.RejectedRoutes))
	if ep.Status.ReadyReplicas == 0 && st.Status == OK {
		st.Status = Failed
		st.Cause = "missing controller: no proxy replica is ready, nothing receives traffic"
		st.Fix = fmt.Sprintf("kubectl get pods -n %s; kubectl logs -n %s deploy/%s", ep.Spec.ProxyNamespace, ep.Spec.ProxyNamespace, proxyObjectName(ep))
	}
	r.add(st)
	r.add(proxiesStep(ep))
	r.add(addressStep(s, ep))
}

// proxiesStep reports the proxy replicas connected to the operator and the configuration version
// each serves: fewer connected than ready means some replicas serve no (or stale) configuration; a
// rejectedVersion means a replica refused (NACKed) a snapshot and kept serving the older one.
func proxiesStep(ep *edgev1alpha1.EdgeProxy) Step {
	st := Step{Section: "edgeproxy", Title: "EdgeProxy " + ep.Name + " proxies connected", Status: OK}
	st.Evidence = append(st.Evidence, fmt.Sprintf("connected proxies %d of %d ready", ep.Status.ConnectedProxies, ep.Status.ReadyReplicas))
	var rejected []string
	for _, p := range ep.Status.Proxies {
		line := fmt.Sprintf("%s: version %s", p.Pod, orWord(p.Version, "(none applied yet)"))
		if p.RejectedVersion != "" {
			line += ", rejected version " + p.RejectedVersion
			rejected = append(rejected, fmt.Sprintf("%s rejected version %s", p.Pod, p.RejectedVersion))
		}
		if !p.ConnectedSince.IsZero() {
			line += ", connected since " + p.ConnectedSince.UTC().Format(time.RFC3339)
		}
		st.Evidence = append(st.Evidence, line)
	}
	if n := int(ep.Status.ConnectedProxies) - len(ep.Status.Proxies); n > 0 && len(ep.Status.Proxies) > 0 {
		st.Evidence = append(st.Evidence, fmt.Sprintf("(%d more not listed)", n))
	}
	logs := fmt.Sprintf("kubectl logs -n %s deploy/%s", ep.Spec.ProxyNamespace, proxyObjectName(ep))
	switch {
	case len(rejected) > 0:
		st.Status = Failed
		st.Cause = "configuration rejected: " + strings.Join(rejected, "; ") +
			" (snapshot NACKed: the replica keeps serving its previous configuration, so recent route changes are not live there)"
		st.Fix = logs + " (the NACK reason), and the operator's logs for the snapshot it built"
	case ep.Status.ConnectedProxies < ep.Status.ReadyReplicas:
		st.Status = Warning
		st.Cause = fmt.Sprintf("%d of %d ready proxies are not connected to the operator: they serve no or stale configuration (404s, old routes)",
			ep.Status.ReadyReplicas-ep.Status.ConnectedProxies, ep.Status.ReadyReplicas)
		st.Fix = logs + "; check that the operator is running and reachable from the proxy namespace (NetworkPolicy, Service)"
	}
	return st
}

// addressStep explains the external address, or why there is none.
func addressStep(s *State, ep *edgev1alpha1.EdgeProxy) Step {
	st := Step{Section: "edgeproxy", Title: "EdgeProxy " + ep.Name + " external address", Status: OK}
	for _, a := range ep.Status.Addresses {
		st.Evidence = append(st.Evidence, fmt.Sprintf("%s %s", a.Type, a.Value))
	}
	svc := s.ProxyServices[ep.Name]
	if svc == nil {
		if u, ok := s.unknownStep("edgeproxy", st.Title, keyProxyService(ep.Name)); ok {
			if len(ep.Status.Addresses) > 0 {
				u.Status = OK
			}
			u.Evidence = append(st.Evidence, u.Evidence...)
			return u
		}
		st.Status = Failed
		st.Evidence = append(st.Evidence, fmt.Sprintf("Service %s/%s not found", ep.Spec.ProxyNamespace, proxyObjectName(ep)))
		st.Cause = "Ingress has no external address: the proxy Service does not exist (operator not running, or ApplyFailed)"
		st.Fix = "kubectl describe edgeproxy " + ep.Name
		return st
	}
	st.Evidence = append(st.Evidence, fmt.Sprintf("Service %s/%s type %s, ports %s", svc.Namespace, svc.Name, svc.Spec.Type, describePorts(svc)))
	hasHTTPS := false
	for _, p := range svc.Spec.Ports {
		hasHTTPS = hasHTTPS || p.Name == "https"
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		var lb []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			lb = append(lb, in.IP+in.Hostname)
		}
		if len(lb) == 0 {
			st.Status = Failed
			st.Evidence = append(st.Evidence, "status.loadBalancer.ingress is empty (<pending>)")
			st.Cause = "Ingress has no external address: controller Service pending: no cloud controller allocates load balancers here, " +
				"the loadBalancerClass is not served, or the cloud LB failed (quota, annotations)"
			st.Fix = fmt.Sprintf("kubectl describe svc %s -n %s (Events), the cloud controller's logs; on bare metal install MetalLB or set spec.service.type: NodePort",
				svc.Name, svc.Namespace)
		} else {
			st.Evidence = append(st.Evidence, "load balancer: "+strings.Join(lb, ", "))
		}
	}
	if !hasHTTPS && st.Status == OK {
		st.Status = Failed
		st.Cause = "HTTP works, HTTPS fails: the proxy Service has no https port (TLS listener missing)"
		st.Fix = "kubectl describe edgeproxy " + ep.Name + "; the operator renders it, check for ApplyFailed"
	}
	return st
}
