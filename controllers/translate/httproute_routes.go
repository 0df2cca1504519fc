package translate

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// routeTranslator carries the state of one HTTPRoute translation.
type routeTranslator struct {
	env   *gatewayEnv
	route *gwapiv1.HTTPRoute
	// rules are the route's rules; one rule matching everything when it has none, as the API
	// server defaults it.
	rules    []gwapiv1.HTTPRouteRule
	hosts    []string
	nsLabels map[string]string
	backends []ruleBackends
	resolved verdict
	ruleSets map[string]*ruleSet
}

func newRouteTranslator(in GatewayInput) *routeTranslator {
	env := newGatewayEnv(in.Gateways, in.GatewayClasses, in.EdgeProxies, in.Namespaces, in.ReferenceGrants, in.Services, in.Secrets)
	return newRouteTranslatorIn(env, in.Route)
}

func newRouteTranslatorIn(env *gatewayEnv, route *gwapiv1.HTTPRoute) *routeTranslator {
	t := &routeTranslator{env: env, route: route, rules: route.Spec.Rules, ruleSets: map[string]*ruleSet{}}
	if len(t.rules) == 0 {
		t.rules = []gwapiv1.HTTPRouteRule{{}}
	}
	for _, h := range route.Spec.Hostnames {
		if h := strings.ToLower(string(h)); !containsString(t.hosts, h) {
			t.hosts = append(t.hosts, h)
		}
	}
	t.nsLabels = env.namespaceLabels(route.Namespace)
	var errs problems
	t.backends, errs = t.resolveBackends()
	t.resolved = errs.verdict(string(gwapiv1.RouteReasonResolvedRefs), "all references resolved")
	return t
}

// parentOutcome is how the route fares with one parentRef that names a Portico Gateway.
type parentOutcome struct {
	ref         *gwapiv1.ParentReference
	view        *gatewayView
	attachments []attachment
	accepted    verdict
	rules       *ruleSet
}

// parents evaluates every parentRef naming a Gateway of Portico's class, in spec order.
func (t *routeTranslator) parents() []parentOutcome {
	var out []parentOutcome
	for i := range t.route.Spec.ParentRefs {
		ref := &t.route.Spec.ParentRefs[i]
		key, ok := gatewayRef(ref, t.route.Namespace)
		if !ok {
			continue
		}
		v := t.env.gateway(key)
		if v == nil {
			continue
		}
		o := parentOutcome{ref: ref, view: v}
		o.attachments, o.accepted = attach(v, ref, t.route.Namespace, t.hosts, t.nsLabels)
		if o.accepted.ok {
			o.rules = t.rulesFor(v)
			if o.rules.served == 0 {
				o.attachments = nil
				o.accepted = refuse(gwapiv1.RouteReasonUnsupportedValue, "no rule can be served: %s", strings.Join(o.rules.invalid, "; "))
			}
		}
		out = append(out, o)
	}
	return out
}

func (t *routeTranslator) translate() GatewayResult {
	var res GatewayResult
	gen := t.route.Generation
	// Attachments to one Gateway through several parentRefs make one set of routes.
	var order []*gatewayView
	byGateway := map[*gatewayView][]attachment{}
	for _, o := range t.parents() {
		st := gwapiv1.RouteParentStatus{
			ParentRef:      *o.ref.DeepCopy(),
			ControllerName: edgev1alpha1.GatewayControllerName,
			Conditions: []metav1.Condition{
				condition(gwapiv1.RouteConditionAccepted, o.accepted.ok, o.accepted.reason, o.accepted.msg, gen),
				condition(gwapiv1.RouteConditionResolvedRefs, t.resolved.ok, t.resolved.reason, t.resolved.msg, gen),
			},
		}
		if o.accepted.ok && len(o.rules.invalid) > 0 {
			st.Conditions = append(st.Conditions, condition(gwapiv1.RouteConditionPartiallyInvalid, true, gwapiv1.RouteReasonUnsupportedValue,
				"Dropped Rule(s), the requests they match are answered 500: "+strings.Join(o.rules.invalid, "; "), gen))
		}
		res.Parents = append(res.Parents, st)
		if len(o.attachments) == 0 {
			continue
		}
		if _, seen := byGateway[o.view]; !seen {
			order = append(order, o.view)
		}
		for _, a := range o.attachments {
			if !hasAttachment(byGateway[o.view], a.listener) {
				byGateway[o.view] = append(byGateway[o.view], a)
			}
		}
	}
	for _, v := range order {
		t.buildRoutes(v, byGateway[v], &res)
	}
	return res
}

func hasAttachment(list []attachment, l *listenerView) bool {
	for _, a := range list {
		if a.listener == l {
			return true
		}
	}
	return false
}

// certificate is a Secret serving some hosts on an HTTPS listener.
type certificate struct {
	listener string
	// specificity of the listener's hostname: a host matching several listeners takes the
	// certificate of the most specific one (exact, then the longest wildcard, then none).
	specificity int
	secret      types.NamespacedName
	hosts       []string
}

// buildRoutes lowers the route for one Gateway: one TenantRoute for the hostnames of every listener
// it attached to (split past 64), and one without hostnames when a listener and the route both
// name none. HTTPS listeners add their certificate for their hosts.
func (t *routeTranslator) buildRoutes(v *gatewayView, atts []attachment, res *GatewayResult) {
	rs := t.rulesFor(v)
	for _, w := range rs.warnings {
		if !containsString(res.Warnings, w) {
			res.Warnings = append(res.Warnings, w)
		}
	}
	var hosts []string
	var certs []*certificate
	catchAll := false
	for _, a := range atts {
		catchAll = catchAll || a.catchAll
		for _, h := range a.hosts {
			if !containsString(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		l := a.listener
		if l.spec.Protocol != gwapiv1.HTTPSProtocolType {
			continue
		}
		if !l.certified {
			res.Warnings = append(res.Warnings, fmt.Sprintf("listener %s has no usable certificate (%s): HTTPS is not served for this route there",
				v.listenerName(l), l.resolved.msg))
			continue
		}
		if a.catchAll {
			res.Warnings = append(res.Warnings, fmt.Sprintf("listener %s and the route name no hostname: Portico serves a certificate "+
				"by host name, so HTTPS is not served for this route there; name a hostname on the listener or the route", v.listenerName(l)))
			continue
		}
		c := certFor(&certs, v.listenerName(l), l.hostname, *l.cert)
		for _, h := range a.hosts {
			if !containsString(c.hosts, h) {
				c.hosts = append(c.hosts, h)
			}
		}
	}
	base := GatewayRouteName(t.route.Name, v.gw.Namespace, v.gw.Name)
	if len(hosts) > 0 {
		for i, part := range chunk(hosts, maxHostnames) {
			r := t.newRoute(chunkRouteName(base, i), v, part, rs)
			t.addTLS(r, part, certs, res)
			res.Routes = append(res.Routes, r)
		}
	}
	if catchAll {
		res.Routes = append(res.Routes, t.newRoute(base+catchAllSuffix, v, nil, rs))
	}
}

func certFor(certs *[]*certificate, listener, hostname string, secret types.NamespacedName) *certificate {
	for _, c := range *certs {
		if c.listener == listener {
			return c
		}
	}
	c := &certificate{listener: listener, secret: secret, specificity: len(hostname)}
	if hostname != "" && !strings.HasPrefix(hostname, "*") {
		c.specificity += 1000
	}
	*certs = append(*certs, c)
	slices.SortStableFunc(*certs, func(a, b *certificate) int { return b.specificity - a.specificity })
	return c
}

// addTLS gives a route the certificates of its hosts: in spec.tls when the Secret is in the
// route's namespace, else in the result's Certificates for the snapshot builder. A host served by
// several HTTPS listeners takes the certificate of the most specific one.
func (t *routeTranslator) addTLS(r *edgev1alpha1.TenantRoute, hosts []string, certs []*certificate, res *GatewayResult) {
	done := map[string]bool{}
	for _, c := range certs {
		var mine []edgev1alpha1.Hostname
		for _, h := range c.hosts {
			if containsString(hosts, h) && !done[h] {
				done[h] = true
				mine = append(mine, edgev1alpha1.Hostname(h))
			}
		}
		if len(mine) == 0 {
			continue
		}
		if c.secret.Namespace == r.Namespace {
			r.Spec.TLS = append(r.Spec.TLS, edgev1alpha1.RouteTLS{Hosts: mine, SecretName: c.secret.Name})
			continue
		}
		res.Certificates = append(res.Certificates, RouteCertificate{
			Route: r.Name, Listener: c.listener, Hosts: mine, SecretNamespace: c.secret.Namespace, SecretName: c.secret.Name,
		})
	}
}

func (t *routeTranslator) newRoute(name string, v *gatewayView, hosts []string, rs *ruleSet) *edgev1alpha1.TenantRoute {
	rules := make([]edgev1alpha1.TenantRouteRule, len(rs.rules))
	for i := range rs.rules {
		rules[i] = *rs.rules[i].DeepCopy()
	}
	r := &edgev1alpha1.TenantRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "TenantRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: t.route.Namespace,
			Labels: map[string]string{
				edgev1alpha1.LabelSourceKind: httpRouteKind,
				edgev1alpha1.LabelSourceName: labelValue(t.route.Name),
				edgev1alpha1.LabelEdgeProxy:  labelValue(v.proxy.Name),
				LabelGatewayNamespace:        v.gw.Namespace,
				LabelGatewayName:             labelValue(v.gw.Name),
			},
		},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: v.proxy.Name,
			Rules:     rules,
			Policy:    rs.policy.DeepCopy(),
		},
	}
	for _, h := range hosts {
		r.Spec.Hostnames = append(r.Spec.Hostnames, edgev1alpha1.Hostname(h))
	}
	// A route read from a file (portico proxy --files) has no UID, and an owner reference without
	// one would be refused by the API server.
	if t.route.UID != "" {
		r.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         gwapiv1.GroupVersion.String(),
			Kind:               httpRouteKind,
			Name:               t.route.Name,
			UID:                t.route.UID,
			Controller:         ptrTo(true),
			BlockOwnerDeletion: ptrTo(true),
		}}
	}
	return r
}
