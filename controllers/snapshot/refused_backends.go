package snapshot

import (
	"slices"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// refusedBackends reports whether the route names a Service of another namespace that admission
// did not permit (no ReferenceGrant: ResolvedRefs is not True). Such a backend must not travel:
// its endpoints are withheld (Build) and so is the reference itself (withoutRefusedBackends).
func refusedBackends(tr *edgev1alpha1.TenantRoute) bool {
	if refsResolved(tr) {
		return false
	}
	for _, k := range BackendKeys(tr) {
		if k.Namespace != tr.Namespace {
			return true
		}
	}
	return false
}

// withoutRefusedBackends returns the route's rules without their backendRefs to other namespaces.
// A rule left with no backend (or only zero-weight ones) loses them all, and the proxy answers
// its requests 500 (the Gateway API's answer for an invalid backendRef) while the route's other
// rules keep serving. Without this the rule kept a backend with no endpoints, answered 503 as if
// it were merely down, and began serving as soon as endpoints appeared for it in the snapshot.
// A rule that splits traffic between a permitted and a refused backend sends it all to the
// permitted one (the Gateway API wants the refused share answered 500).
func withoutRefusedBackends(tr *edgev1alpha1.TenantRoute) []edgev1alpha1.TenantRouteRule {
	rules := slices.Clone(tr.Spec.Rules)
	for i := range rules {
		kept := rules[i].BackendRefs[:0:0]
		weighted := false
		for _, b := range rules[i].BackendRefs {
			if b.Namespace != nil && *b.Namespace != "" && string(*b.Namespace) != tr.Namespace {
				continue
			}
			kept = append(kept, b)
			weighted = weighted || b.Weight == nil || *b.Weight > 0
		}
		if len(kept) == len(rules[i].BackendRefs) {
			continue
		}
		if !weighted {
			kept = nil
		}
		rules[i].BackendRefs = kept
	}
	return rules
}
