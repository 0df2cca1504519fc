package translate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

// ruleBackends are one rule's backendRefs that resolved, lowered for a TenantRoute.
type ruleBackends struct {
	refs []gwapiv1.HTTPBackendRef
	// unsupported says why the rule cannot be served as written (per-backend filters).
	unsupported string
}

// resolveBackends checks every backendRef of the route, in spec order: a Service (InvalidKind
// otherwise), of the route's namespace or granted by a ReferenceGrant (RefNotPermitted, checked
// before existence so that a route cannot probe other namespaces), that exists with that port
// (BackendNotFound). Invalid ones are left out of the TenantRoute: the requests they would have had
// are answered 500 when a rule has no valid backend left.
func (t *routeTranslator) resolveBackends() ([]ruleBackends, problems) {
	var out []ruleBackends
	var errs problems
	rt := t.route
	for i := range t.rules {
		var rb ruleBackends
		for j := range t.rules[i].BackendRefs {
			b := &t.rules[i].BackendRefs[j]
			at := fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j)
			if len(b.Filters) > 0 && rb.unsupported == "" {
				rb.unsupported = at + ".filters: per-backend filters are not supported; use the rule's filters"
			}
			group, kind := "", "Service"
			if b.Group != nil {
				group = string(*b.Group)
			}
			if b.Kind != nil {
				kind = string(*b.Kind)
			}
			key := types.NamespacedName{Namespace: rt.Namespace, Name: string(b.Name)}
			if b.Namespace != nil && *b.Namespace != "" {
				key.Namespace = string(*b.Namespace)
			}
			switch {
			case group != "" || kind != "Service":
				errs = append(errs, refuse(gwapiv1.RouteReasonInvalidKind,
					"%s: %s is not supported: Portico sends traffic to Services", at, groupKind(group, kind)))
				continue
			case key.Namespace != rt.Namespace && !t.env.granted(httpRouteKind, rt.Namespace, "", "Service", key.Namespace, key.Name):
				errs = append(errs, refuse(gwapiv1.RouteReasonRefNotPermitted,
					"%s: no ReferenceGrant in namespace %q lets HTTPRoutes of namespace %q use Service %q", at, key.Namespace, rt.Namespace, key.Name))
				continue
			}
			svc := t.env.services[key]
			if why := checkServicePort(svc, key, b.Port); why != "" {
				errs = append(errs, refuse(gwapiv1.RouteReasonBackendNotFound, "%s: %s", at, why))
				continue
			}
			ref := gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{
				BackendObjectReference: gwapiv1.BackendObjectReference{Name: b.Name, Port: ptrTo(*b.Port)},
				Weight:                 b.Weight,
			}}
			if key.Namespace != rt.Namespace {
				ref.Namespace = ptrTo(gwapiv1.Namespace(key.Namespace))
			}
			rb.refs = append(rb.refs, ref)
		}
		out = append(out, rb)
	}
	return out, errs
}

func checkServicePort(svc *corev1.Service, key types.NamespacedName, port *gwapiv1.PortNumber) string {
	switch {
	case svc == nil:
		return fmt.Sprintf("Service %s not found", key)
	case port == nil:
		return "a Service backend needs a port"
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "" // ExternalName Services often list no ports; the EdgeProxy decides whether they are allowed
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == *port {
			return ""
		}
	}
	return fmt.Sprintf("Service %s has no port %d", key, *port)
}

// ruleSet is the route's rules lowered for one EdgeProxy (whose defaults decide what compiles).
type ruleSet struct {
	rules  []edgev1alpha1.TenantRouteRule
	policy *edgev1alpha1.RoutePolicy
	// invalid names the rules not served as written, and why: they answer 500 (or, when even
	// their matches are invalid, are left out).
	invalid []string
	// served counts the rules served as written (invalid backends aside).
	served int
	// warnings say where Portico serves the rules differently from what they ask.
	warnings []string
}

// rulesFor lowers the route's rules, checking each with routing.Compile under the EdgeProxy's
// defaults: a rule the proxy would refuse, or using a filter or field Portico does not support, is
// invalid, and the rest of the route is still served (the Gateway API's "PartiallyInvalid").
func (t *routeTranslator) rulesFor(v *gatewayView) *ruleSet {
	if rs, ok := t.ruleSets[v.proxy.Name]; ok {
		return rs
	}
	rs := t.lowerRules(routingDefaults(v.edgeProxy))
	t.ruleSets[v.proxy.Name] = rs
	return rs
}

func (t *routeTranslator) lowerRules(d routing.Defaults) *ruleSet {
	rs := &ruleSet{policy: &edgev1alpha1.RoutePolicy{Websocket: true}}
	if why := t.checkLimits(); why != "" {
		rs.invalid = []string{why}
		return rs
	}
	cors, corsWhy := t.liftCORS(d)
	rs.policy.CORS = cors
	names := t.ruleNames()
	for i := range t.rules {
		in := &t.rules[i]
		out := edgev1alpha1.TenantRouteRule{Name: ptrTo(gwapiv1.SectionName(names[i]))}
		var why []string
		at := fmt.Sprintf("spec.rules[%d]", i)
		if in.Retry != nil {
			why = append(why, at+".retry: not supported")
		}
		if in.SessionPersistence != nil {
			why = append(why, at+".sessionPersistence: not supported")
		}
		if u := t.backends[i].unsupported; u != "" {
			why = append(why, u)
		}
		for j := range in.Matches {
			out.Matches = append(out.Matches, *in.Matches[j].DeepCopy())
		}
		for j := range in.Filters {
			f := &in.Filters[j]
			switch f.Type {
			case gwapiv1.HTTPRouteFilterRequestHeaderModifier, gwapiv1.HTTPRouteFilterResponseHeaderModifier,
				gwapiv1.HTTPRouteFilterRequestRedirect, gwapiv1.HTTPRouteFilterURLRewrite:
				out.Filters = append(out.Filters, *f.DeepCopy())
			case gwapiv1.HTTPRouteFilterCORS:
				if cors == nil {
					why = append(why, fmt.Sprintf("%s.filters[%d]: %s", at, j, corsWhy))
				}
			default:
				why = append(why, fmt.Sprintf("%s.filters[%d]: filter type %s is not supported", at, j, f.Type))
			}
		}
		out.BackendRefs = t.backends[i].refs
		if n := len(in.BackendRefs); len(out.BackendRefs) > 0 && len(out.BackendRefs) < n {
			rs.warnings = append(rs.warnings, fmt.Sprintf("rule %s: %d of its %d backends are invalid (see ResolvedRefs); the valid ones "+
				"take all of its traffic, where the Gateway API answers 500 to the invalid ones' share", names[i], n-len(out.BackendRefs), n))
		}
		if allZeroWeights(out.BackendRefs) {
			out.BackendRefs = nil // the Gateway API answers 500 when every weight is 0
		}
		out.Timeouts = in.Timeouts.DeepCopy()
		if len(why) == 0 {
			if err := compileRule(t.route.Namespace, i, out, rs.policy, d); err != "" {
				why = append(why, err)
			}
		}
		if len(why) == 0 {
			rs.rules = append(rs.rules, out)
			rs.served++
			continue
		}
		rs.invalid = append(rs.invalid, fmt.Sprintf("rule %s: %s", names[i], strings.Join(why, "; ")))
		// The requests the rule matches are answered 500, not left to other rules (a filter Portico
		// cannot apply must not be skipped); a rule whose very matches are invalid is left out.
		standIn := edgev1alpha1.TenantRouteRule{Name: out.Name, Matches: out.Matches}
		if compileRule(t.route.Namespace, i, standIn, rs.policy, d) == "" {
			rs.rules = append(rs.rules, standIn)
		}
	}
	return rs
}

// checkLimits: a TenantRoute holds what an HTTPRoute may (16 rules, 64 matches per rule, 128 in all).
func (t *routeTranslator) checkLimits() string {
	total := 0
	for i, r := range t.rules {
		if len(r.Matches) > maxMatchesPerRule {
			return fmt.Sprintf("spec.rules[%d] has %d matches, more than %d", i, len(r.Matches), maxMatchesPerRule)
		}
		total += len(r.Matches)
	}
	switch {
	case len(t.rules) > maxRulesPerRoute:
		return fmt.Sprintf("the route has %d rules, more than %d", len(t.rules), maxRulesPerRoute)
	case total > maxMatchesPerRoute:
		return fmt.Sprintf("the route has %d matches, more than %d", total, maxMatchesPerRoute)
	}
	return ""
}

// ruleNames keeps the rules' names and calls the others rule-<index>, unique in the route.
func (t *routeTranslator) ruleNames() []string {
	namer := ruleNamer{}
	names := make([]string, len(t.rules))
	for i, r := range t.rules {
		if r.Name != nil && *r.Name != "" {
			names[i] = namer.name(string(*r.Name))
		}
	}
	for i := range t.rules {
		if names[i] == "" {
			names[i] = namer.name(fmt.Sprintf("rule-%d", i))
		}
	}
	return names
}

// liftCORS: Portico answers CORS for a whole route (spec.policy.cors), so a CORS filter is served
// when every rule carries the same one. Otherwise the rules with one are invalid, and why says so.
func (t *routeTranslator) liftCORS(d routing.Defaults) (cors *gwapiv1.HTTPCORSFilter, why string) {
	with := 0
	for _, r := range t.rules {
		for j := range r.Filters {
			if f := r.Filters[j]; f.Type == gwapiv1.HTTPRouteFilterCORS {
				if f.CORS == nil {
					return nil, "a CORS filter needs its cors field"
				}
				if cors != nil && !equality.Semantic.DeepEqual(f.CORS, cors) {
					return nil, "Portico applies CORS to a whole route: every rule of the route must carry the same CORS filter"
				}
				cors = f.CORS
				with++
				break
			}
		}
	}
	switch {
	case cors == nil:
		return nil, ""
	case with < len(t.rules):
		return nil, "Portico applies CORS to a whole route: every rule of the route must carry the same CORS filter"
	}
	policy := &edgev1alpha1.RoutePolicy{CORS: cors.DeepCopy()}
	if err := compileRule(t.route.Namespace, 0, edgev1alpha1.TenantRouteRule{}, policy, d); err != "" {
		return nil, strings.ReplaceAll(err, "spec.policy.cors", "cors")
	}
	return policy.CORS, ""
}

// compileRule runs the proxy's own validation on one rule (and the route's policy); the error
// names the rule's fields as in the HTTPRoute.
func compileRule(namespace string, index int, rule edgev1alpha1.TenantRouteRule, policy *edgev1alpha1.RoutePolicy, d routing.Defaults) string {
	tr := &edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "rule-check"},
		Spec:       edgev1alpha1.TenantRouteSpec{EdgeProxy: "rule-check", Rules: []edgev1alpha1.TenantRouteRule{rule}, Policy: policy},
	}
	_, errs := routing.Compile(tr, d)
	if len(errs) == 0 {
		return ""
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, strings.Replace(e.Error(), "spec.rules[0]", fmt.Sprintf("spec.rules[%d]", index), 1))
	}
	return strings.Join(msgs, "; ")
}

func allZeroWeights(refs []gwapiv1.HTTPBackendRef) bool {
	for _, r := range refs {
		if r.Weight == nil || *r.Weight != 0 {
			return false
		}
	}
	return len(refs) > 0
}

// routingDefaults are the EdgeProxy's traffic defaults, as routing.Compile takes them.
func routingDefaults(ep *edgev1alpha1.EdgeProxy) routing.Defaults {
	var d routing.Defaults
	if ep == nil || ep.Spec.Traffic == nil {
		return d
	}
	tr := ep.Spec.Traffic
	if tr.MaxRequestBodySize != nil {
		d.MaxRequestBodyBytes = tr.MaxRequestBodySize.Value()
	}
	if tr.RequestTimeout != nil {
		d.RequestTimeout = tr.RequestTimeout.Duration
	}
	if tr.BackendTimeout != nil {
		d.BackendTimeout = tr.BackendTimeout.Duration
	}
	return d
}
