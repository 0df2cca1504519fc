// Package admission decides whether a TenantRoute may be served: its EdgeProxy exists and serves its
// namespace, its hostnames are allowed and not owned by another namespace, it compiles, and its
// backends and TLS Secrets resolve. It is pure: the reconciler gathers objects, this package decides,
// the reconciler writes status and Events. Compile is dataplane/routing's, the very function the
// proxy builds its table with, so status cannot disagree with behaviour.
package admission

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

// Verdict is the outcome of one admission question: OK, or the condition reason and a message that
// names the offending field.
type Verdict struct {
	OK      bool
	Reason  edgev1alpha1.ConditionReason
	Message string
}

func ok(reason edgev1alpha1.ConditionReason, msg string) Verdict {
	return Verdict{OK: true, Reason: reason, Message: msg}
}

func refuse(reason edgev1alpha1.ConditionReason, format string, args ...any) Verdict {
	return Verdict{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Defaults are the routing defaults an EdgeProxy sets for its routes.
func Defaults(ep *edgev1alpha1.EdgeProxy) routing.Defaults {
	var d routing.Defaults
	if ep == nil || ep.Spec.Traffic == nil {
		return d
	}
	t := ep.Spec.Traffic
	if t.MaxRequestBodySize != nil {
		d.MaxRequestBodyBytes = t.MaxRequestBodySize.Value()
	}
	if t.RequestTimeout != nil {
		d.RequestTimeout = t.RequestTimeout.Duration
	}
	if t.BackendTimeout != nil {
		d.BackendTimeout = t.BackendTimeout.Duration
	}
	return d
}

// NamespaceServed reports whether ep serves the namespace called name with these labels: it is
// listed by name or matches the selector.
func NamespaceServed(ep *edgev1alpha1.EdgeProxy, name string, nsLabels map[string]string) (bool, error) {
	for _, n := range ep.Spec.TenantNamespaces.Names {
		if n == name {
			return true, nil
		}
	}
	if ep.Spec.TenantNamespaces.Selector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ep.Spec.TenantNamespaces.Selector)
	if err != nil {
		return false, fmt.Errorf("EdgeProxy %s has an invalid spec.tenantNamespaces.selector: %w", ep.Name, err)
	}
	return sel.Matches(labels.Set(nsLabels)), nil
}

// Input is what the per-route checks need. EdgeProxy is nil when the route's EdgeProxy does not exist.
type Input struct {
	Route           *edgev1alpha1.TenantRoute
	EdgeProxy       *edgev1alpha1.EdgeProxy
	NamespaceLabels map[string]string
}

// Checked is the outcome of the checks that depend on the route alone (and its EdgeProxy and
// namespace). A route that passes them still has to win its hostnames (Resolve).
type Checked struct {
	Verdict
	// Compiled is the compiled route when it compiled.
	Compiled *routing.Route
	// Claim is the route's claim on hostnames; only meaningful when Verdict.OK.
	Claim Claim
}

// Check runs, in this order, the Accepted checks that do not depend on other routes:
// EdgeProxyNotFound, NamespaceNotServed, HostnameNotAllowed, Invalid.
func Check(in Input) Checked {
	tr, ep := in.Route, in.EdgeProxy
	if ep == nil {
		return Checked{Verdict: refuse(edgev1alpha1.RouteReasonEdgeProxyNotFound,
			"spec.edgeProxy: EdgeProxy %q not found", tr.Spec.EdgeProxy)}
	}
	served, err := NamespaceServed(ep, tr.Namespace, in.NamespaceLabels)
	if err != nil {
		return Checked{Verdict: refuse(edgev1alpha1.RouteReasonNamespaceNotServed, "%v", err)}
	}
	if !served {
		return Checked{Verdict: refuse(edgev1alpha1.RouteReasonNamespaceNotServed,
			"spec.edgeProxy: EdgeProxy %q does not serve namespace %q", ep.Name, tr.Namespace)}
	}
	if v := hostnamesAllowed(tr, ep); !v.OK {
		return Checked{Verdict: v}
	}
	compiled, errs := routing.Compile(tr, Defaults(ep))
	if len(errs) > 0 {
		return Checked{Verdict: refuse(edgev1alpha1.RouteReasonInvalid, "%s", describeErrors(errs))}
	}
	return Checked{
		Verdict:  ok(edgev1alpha1.RouteReasonAccepted, "accepted"),
		Compiled: compiled,
		Claim:    ClaimOf(tr),
	}
}

func hostnamesAllowed(tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy) Verdict {
	notAllowed := func(p *field.Path, h edgev1alpha1.Hostname) Verdict {
		return refuse(edgev1alpha1.RouteReasonHostnameNotAllowed,
			"%s: hostname %q is not allowed by EdgeProxy %q (spec.hostnames)", p, string(h), ep.Name)
	}
	hp := field.NewPath("spec", "hostnames")
	for i, h := range tr.Spec.Hostnames {
		if !HostnameAllowed(ep.Spec.Hostnames, string(h)) {
			return notAllowed(hp.Index(i), h)
		}
	}
	tp := field.NewPath("spec", "tls")
	for i, t := range tr.Spec.TLS {
		for j, h := range t.Hosts {
			if !HostnameAllowed(ep.Spec.Hostnames, string(h)) {
				return notAllowed(tp.Index(i).Child("hosts").Index(j), h)
			}
		}
	}
	return ok(edgev1alpha1.RouteReasonAccepted, "")
}

// maxReportedErrors caps the field errors quoted in one condition message.
const maxReportedErrors = 5

func describeErrors(errs field.ErrorList) string {
	var b strings.Builder
	for i, e := range errs {
		if i == maxReportedErrors {
			fmt.Fprintf(&b, "; and %d more", len(errs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
