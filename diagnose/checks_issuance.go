package diagnose

import (
	"fmt"
	"sort"
	"strings"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// issuance explains why a Certificate is not Ready from cert-manager's issuance objects: its newest
// CertificateRequest and, for ACME, that request's Order and the Order's Challenges. It returns the
// evidence and, when the objects name one, a more precise cause and fix (empty otherwise).
func issuance(s *State, c *cmv1.Certificate) (evidence []string, cause, fix string) {
	ns := c.Namespace
	if _, failed := s.Errs[keyCertificateRequests(ns)]; failed {
		return []string{couldNotCheck(keyCertificateRequests(ns), s.Errs[keyCertificateRequests(ns)])}, "", ""
	}
	cr := newestRequest(s.CertificateRequests[ns], c)
	if cr == nil {
		return []string{"no CertificateRequest for this Certificate"},
			"cert-manager failure: no CertificateRequest was created for the Certificate (cert-manager not running, or the Certificate is not being issued yet)",
			fmt.Sprintf("kubectl describe certificate %s -n %s; kubectl logs -n cert-manager deploy/cert-manager", c.Name, ns)
	}
	crLine := "CertificateRequest " + cr.Name
	var crReady, denied, invalid *cmv1.CertificateRequestCondition
	for i := range cr.Status.Conditions {
		cond := &cr.Status.Conditions[i]
		crLine += fmt.Sprintf(", %s=%s", cond.Type, cond.Status)
		if cond.Reason != "" || cond.Message != "" {
			crLine += fmt.Sprintf(" (%s: %s)", cond.Reason, cond.Message)
		}
		switch {
		case cond.Type == cmv1.CertificateRequestConditionReady:
			crReady = cond
		case cond.Type == cmv1.CertificateRequestConditionDenied && cond.Status == cmmeta.ConditionTrue:
			denied = cond
		case cond.Type == cmv1.CertificateRequestConditionInvalidRequest && cond.Status == cmmeta.ConditionTrue:
			invalid = cond
		}
	}
	if len(cr.Status.Conditions) == 0 {
		crLine += ", no conditions yet"
	}
	evidence = append(evidence, crLine)
	describeCR := fmt.Sprintf("kubectl describe certificaterequest %s -n %s", cr.Name, ns)
	switch {
	case denied != nil:
		return evidence, "cert-manager failure: the CertificateRequest was denied by an approver: " + denied.Message,
			describeCR + "; check the approver policy"
	case invalid != nil:
		return evidence, "cert-manager failure: the CertificateRequest is invalid: " + invalid.Message, describeCR
	case crReady != nil && crReady.Status == cmmeta.ConditionFalse && crReady.Reason == cmv1.CertificateRequestReasonFailed:
		cause = "cert-manager failure: the issuer failed the CertificateRequest: " + crReady.Message
		fix = describeCR + "; check the Issuer's status"
	}

	// ACME: the Order the request created, then its Challenges.
	if _, failed := s.Errs[keyOrders(ns)]; failed {
		return append(evidence, couldNotCheck(keyOrders(ns), s.Errs[keyOrders(ns)])), cause, fix
	}
	order := ownedOrder(s.Orders[ns], cr)
	if order == nil {
		return evidence, cause, fix // not ACME, or the Order is not created yet
	}
	oLine := fmt.Sprintf("Order %s state %s", order.Name, stateWord(order.Status.State))
	if order.Status.Reason != "" {
		oLine += ": " + order.Status.Reason
	}
	evidence = append(evidence, oLine)
	describeOrder := fmt.Sprintf("kubectl describe order %s -n %s", order.Name, ns)
	switch order.Status.State {
	case acmev1.Invalid, acmev1.Errored, acmev1.Expired:
		cause = fmt.Sprintf("cert-manager failure: ACME order %s: %s", order.Status.State, orWord(order.Status.Reason, "the ACME server refused it"))
		fix = describeOrder + "; cert-manager retries with a new Order after a back-off (delete the CertificateRequest to retry now)"
	}
	if _, failed := s.Errs[keyChallenges(ns)]; failed {
		return append(evidence, couldNotCheck(keyChallenges(ns), s.Errs[keyChallenges(ns)])), cause, fix
	}
	for _, ch := range ownedChallenges(s.Challenges[ns], order) {
		line := fmt.Sprintf("Challenge %s %s for %s: state %s, presented %t, processing %t",
			ch.Name, ch.Spec.Type, ch.Spec.DNSName, stateWord(ch.Status.State), ch.Status.Presented, ch.Status.Processing)
		if ch.Status.Reason != "" {
			line += ": " + ch.Status.Reason
		}
		evidence = append(evidence, line)
		if cause != "" && !strings.HasPrefix(cause, "cert-manager failure: ACME order") {
			continue
		}
		describeCh := fmt.Sprintf("kubectl describe challenge %s -n %s", ch.Name, ns)
		switch ch.Status.State {
		case acmev1.Valid:
		case acmev1.Invalid, acmev1.Errored, acmev1.Expired:
			cause = fmt.Sprintf("cert-manager failure: ACME challenge %s for %s %s: %s", ch.Spec.Type, ch.Spec.DNSName,
				ch.Status.State, orWord(ch.Status.Reason, "the ACME server could not validate it"))
			fix = describeCh
			if ch.Spec.Type == acmev1.ACMEChallengeTypeHTTP01 {
				fix += fmt.Sprintf("; the ACME server must reach http://%s/.well-known/acme-challenge/ on port 80 through this proxy", ch.Spec.DNSName)
			}
		default: // pending, processing, unknown
			if ch.Spec.Type == acmev1.ACMEChallengeTypeHTTP01 {
				cause = fmt.Sprintf("cert-manager failure: ACME challenge pending: HTTP-01 self-check for %s failing: DNS or the Ingress does not reach the proxy "+
					"(the host must resolve to the EdgeProxy's address and the solver's /.well-known/acme-challenge/ route must be served on port 80)", ch.Spec.DNSName)
				fix = describeCh + fmt.Sprintf("; dig %s; curl -v http://%s/.well-known/acme-challenge/%s", ch.Spec.DNSName, ch.Spec.DNSName, ch.Spec.Token)
			} else {
				cause = fmt.Sprintf("cert-manager failure: ACME challenge pending: %s propagation check for %s failing (TXT record not visible: DNS provider credentials or zone)",
					ch.Spec.Type, ch.Spec.DNSName)
				fix = describeCh + fmt.Sprintf("; dig TXT _acme-challenge.%s", ch.Spec.DNSName)
			}
		}
	}
	return evidence, cause, fix
}

// newestRequest is the newest CertificateRequest of the Certificate: owned by it, or annotated with its name.
func newestRequest(crs []cmv1.CertificateRequest, c *cmv1.Certificate) *cmv1.CertificateRequest {
	var mine []*cmv1.CertificateRequest
	for i := range crs {
		cr := &crs[i]
		if cr.Annotations[cmv1.CertificateNameKey] == c.Name || ownedBy(cr.OwnerReferences, "Certificate", c.Name, c.UID) {
			mine = append(mine, cr)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	sort.SliceStable(mine, func(i, j int) bool {
		ri, rj := revision(mine[i]), revision(mine[j])
		if ri != rj {
			return ri > rj
		}
		return mine[j].CreationTimestamp.Before(&mine[i].CreationTimestamp)
	})
	return mine[0]
}

func revision(cr *cmv1.CertificateRequest) int {
	var n int
	_, _ = fmt.Sscanf(cr.Annotations[cmv1.CertificateRequestRevisionAnnotationKey], "%d", &n)
	return n
}

func ownedOrder(orders []acmev1.Order, cr *cmv1.CertificateRequest) *acmev1.Order {
	var best *acmev1.Order
	for i := range orders {
		o := &orders[i]
		if ownedBy(o.OwnerReferences, "CertificateRequest", cr.Name, cr.UID) &&
			(best == nil || best.CreationTimestamp.Before(&o.CreationTimestamp)) {
			best = o
		}
	}
	return best
}

func ownedChallenges(chs []acmev1.Challenge, o *acmev1.Order) []acmev1.Challenge {
	var out []acmev1.Challenge
	for _, ch := range chs {
		if ownedBy(ch.OwnerReferences, "Order", o.Name, o.UID) {
			out = append(out, ch)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func ownedBy(refs []metav1.OwnerReference, kind, name string, uid types.UID) bool {
	for _, ref := range refs {
		if ref.Kind == kind && ref.Name == name && (uid == "" || ref.UID == "" || ref.UID == uid) {
			return true
		}
	}
	return false
}

func stateWord(s acmev1.State) string { return orWord(string(s), "unknown") }

func orWord(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
