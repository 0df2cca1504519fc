package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// setRouteSummary sets a TenantRoute's kstatus summary conditions (Ready, and Stalled or
// Reconciling, "abnormal-true": present only while True) from its other conditions, which must
// already be set for generation gen. It reads nothing else, so every writer of route status
// (writeStatus, reconcileProgrammed) calls it last; it reports whether anything changed.
//
// Stalled (kstatus Failed): Accepted or ResolvedRefs False (except ResolvedRefs NoReadyEndpoints,
// which clears when a backend Pod is Ready: Reconciling), CertificateReady False for a reason
// other than waiting (Pending, CertificateManagedExternally), or Programmed False because the
// proxies rejected the route: none of these goes away without a human. Reconciling (kstatus
// InProgress): otherwise, while Accepted, ResolvedRefs or Programmed is not True for generation gen,
// or the certificate is on its way. The verdicts match the Argo CD health check
// (docs/gitops/argocd/.../TenantRoute/health.lua).
func setRouteSummary(conds *[]metav1.Condition, gen int64) bool {
	stalled, waiting := routeSummary(*conds, gen)
	changed := false
	switch {
	case stalled != nil:
		reason, msg := edgev1alpha1.ConditionReason(stalled.Reason), describeCondition(stalled)
		changed = setCondition(conds, edgev1alpha1.RouteConditionStalled, metav1.ConditionTrue, reason, msg, gen) || changed
		changed = meta.RemoveStatusCondition(conds, string(edgev1alpha1.RouteConditionReconciling)) || changed
		changed = setCondition(conds, edgev1alpha1.RouteConditionReady, metav1.ConditionFalse, reason, msg, gen) || changed
	case waiting != nil:
		reason := edgev1alpha1.RouteReasonProgressing
		if waiting.Reason == string(edgev1alpha1.RouteReasonPending) || clearsByItself(waiting) {
			reason = edgev1alpha1.ConditionReason(waiting.Reason)
		}
		msg := describeCondition(waiting)
		changed = meta.RemoveStatusCondition(conds, string(edgev1alpha1.RouteConditionStalled)) || changed
		changed = setCondition(conds, edgev1alpha1.RouteConditionReconciling, metav1.ConditionTrue, reason, msg, gen) || changed
		changed = setCondition(conds, edgev1alpha1.RouteConditionReady, metav1.ConditionFalse, reason, msg, gen) || changed
	default:
		changed = meta.RemoveStatusCondition(conds, string(edgev1alpha1.RouteConditionStalled)) || changed
		changed = meta.RemoveStatusCondition(conds, string(edgev1alpha1.RouteConditionReconciling)) || changed
		changed = setCondition(conds, edgev1alpha1.RouteConditionReady, metav1.ConditionTrue, edgev1alpha1.RouteReasonReady,
			"accepted, references resolved and served by every proxy replica", gen) || changed
	}
	return changed
}

// routeSummary returns the condition that stalls the route, or else the one it waits on (a
// placeholder when that condition is missing or describes an older generation), or neither.
func routeSummary(conds []metav1.Condition, gen int64) (stalled, waiting *metav1.Condition) {
	current := func(t edgev1alpha1.ConditionType) *metav1.Condition {
		c := findCondition(conds, t)
		if c == nil || c.ObservedGeneration < gen {
			return nil
		}
		return c
	}
	accepted := current(edgev1alpha1.RouteConditionAccepted)
	resolved := current(edgev1alpha1.RouteConditionResolvedRefs)
	cert := current(edgev1alpha1.RouteConditionCertificateReady)
	programmed := current(edgev1alpha1.RouteConditionProgrammed)

	for _, c := range []*metav1.Condition{accepted, resolved} {
		if c != nil && c.Status == metav1.ConditionFalse && !clearsByItself(c) {
			return c, nil
		}
	}
	certWaiting := cert != nil && cert.Status == metav1.ConditionFalse &&
		(cert.Reason == string(edgev1alpha1.RouteReasonCertificatePending) ||
			cert.Reason == string(edgev1alpha1.RouteReasonCertificateManagedExternally))
	if cert != nil && cert.Status == metav1.ConditionFalse && !certWaiting {
		return cert, nil
	}
	if programmed != nil && programmed.Status == metav1.ConditionFalse && programmed.Reason == string(edgev1alpha1.RouteReasonRejected) {
		return programmed, nil
	}

	for _, t := range []edgev1alpha1.ConditionType{edgev1alpha1.RouteConditionAccepted, edgev1alpha1.RouteConditionResolvedRefs} {
		if c := current(t); c == nil || c.Status != metav1.ConditionTrue {
			return nil, orPlaceholder(c, t)
		}
	}
	if certWaiting {
		return nil, cert
	}
	if programmed == nil || programmed.Status != metav1.ConditionTrue {
		return nil, orPlaceholder(programmed, edgev1alpha1.RouteConditionProgrammed)
	}
	return nil, nil
}

// clearsByItself: a False condition that needs no human, only time (a backend's Pods becoming Ready).
func clearsByItself(c *metav1.Condition) bool {
	return c.Reason == string(edgev1alpha1.RouteReasonNoReadyEndpoints)
}

// orPlaceholder stands in for a condition not yet written for the current generation.
func orPlaceholder(c *metav1.Condition, t edgev1alpha1.ConditionType) *metav1.Condition {
	if c != nil {
		return c
	}
	return &metav1.Condition{Type: string(t), Status: metav1.ConditionUnknown, Reason: string(edgev1alpha1.RouteReasonProgressing),
		Message: "not yet determined for the current generation"}
}

// describeCondition names a condition in a summary message: "Accepted=False (HostnameConflict): ...".
func describeCondition(c *metav1.Condition) string {
	s := c.Type + "=" + string(c.Status) + " (" + c.Reason + ")"
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}
