package routing

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

const (
	// defaultTimeout is the request and backend timeout when neither route nor EdgeProxy set one.
	defaultTimeout = 60 * time.Second
	// maxWeight is the Gateway API's maximum backend weight.
	maxWeight = 1_000_000
	maxRules  = 64
)

var (
	pathTypes   = []gwapiv1.PathMatchType{gwapiv1.PathMatchExact, gwapiv1.PathMatchPathPrefix, gwapiv1.PathMatchRegularExpression}
	matchTypes  = []string{"Exact", "RegularExpression"}
	httpMethods = []gwapiv1.HTTPMethod{
		gwapiv1.HTTPMethodGet, gwapiv1.HTTPMethodHead, gwapiv1.HTTPMethodPost, gwapiv1.HTTPMethodPut,
		gwapiv1.HTTPMethodDelete, gwapiv1.HTTPMethodConnect, gwapiv1.HTTPMethodOptions,
		gwapiv1.HTTPMethodTrace, gwapiv1.HTTPMethodPatch,
	}
)

// effective fills what the EdgeProxy left unset with Portico's defaults.
func (d Defaults) effective() Defaults {
	if d.MaxRequestBodyBytes <= 0 {
		d.MaxRequestBodyBytes = edgev1alpha1.DefaultMaxRequestBodyBytes
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = defaultTimeout
	}
	if d.BackendTimeout <= 0 {
		d.BackendTimeout = defaultTimeout
	}
	return d
}

// compiler carries the state of one Compile call.
type compiler struct {
	d    Defaults
	ns   string
	errs field.ErrorList
}

func (c *compiler) add(e *field.Error) { c.errs = append(c.errs, e) }

func compileRoute(tr *edgev1alpha1.TenantRoute, defaults Defaults) (*Route, field.ErrorList) {
	if tr == nil {
		return nil, field.ErrorList{field.Required(nil, "no TenantRoute")}
	}
	c := &compiler{d: defaults.effective(), ns: tr.Namespace}
	if tr.Namespace == "" {
		c.add(field.Required(field.NewPath("metadata", "namespace"), ""))
	}
	r := &Route{Namespace: tr.Namespace, Name: tr.Name, Created: tr.CreationTimestamp.Time}
	if s := tr.Status.Source; s != nil {
		r.SourceKind, r.SourceName = s.Kind, s.Name
	} else if tr.Labels != nil {
		r.SourceKind, r.SourceName = tr.Labels[edgev1alpha1.LabelSourceKind], tr.Labels[edgev1alpha1.LabelSourceName]
	}
	// The label is what the snapshot carries (status is not sent to proxies).
	r.DeepWildcards = r.SourceKind == sourceKindHTTPRoute || tr.Labels[edgev1alpha1.LabelSourceKind] == sourceKindHTTPRoute
	spec := rootPath("spec")

	hp := spec.child("hostnames")
	for i, h := range tr.Spec.Hostnames {
		name, why := checkHostname(string(h), true)
		switch {
		case why != "":
			c.add(field.Invalid(hp.atIndex(i), string(h), why))
		case contains(r.Hostnames, name):
			c.add(field.Duplicate(hp.atIndex(i), string(h)))
		default:
			r.Hostnames = append(r.Hostnames, name)
		}
	}
	tp := spec.child("tls")
	c.tls(r, tr.Spec.TLS, &tp)

	rp := spec.child("rules")
	switch n := len(tr.Spec.Rules); {
	case n == 0:
		c.add(field.Required(rp.get(), "a route needs at least one rule"))
	case n > maxRules:
		c.add(field.TooMany(rp.get(), n, maxRules))
	}
	// One allocation for all rules and one for all matches of the route: Build compiles thousands.
	nMatches := 0
	for i := range tr.Spec.Rules {
		nMatches += max(1, len(tr.Spec.Rules[i].Matches))
	}
	ruleArena, matchArena := make([]Rule, len(tr.Spec.Rules)), make([]RouteMatch, nMatches)
	r.Rules = make([]*Rule, 0, len(tr.Spec.Rules))
	for i := range tr.Spec.Rules {
		ip := rp.idx(i)
		n := max(1, len(tr.Spec.Rules[i].Matches))
		rule := &ruleArena[i]
		*rule = Rule{Route: r, Index: i, Matches: matchArena[:n:n]}
		matchArena = matchArena[n:]
		c.rule(rule, &tr.Spec.Rules[i], &ip)
		if rule.Name != "" {
			for _, prev := range r.Rules {
				if prev.Name == rule.Name {
					c.add(field.Duplicate(rp.atIndex(i, "name"), rule.Name))
				}
			}
		}
		r.Rules = append(r.Rules, rule)
	}
	pp := spec.child("policy")
	r.Policy = c.policy(tr.Spec.Policy, &pp)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return r, nil
}

// sourceKindHTTPRoute is the source kind of routes translated from Gateway API HTTPRoutes.
const sourceKindHTTPRoute = "HTTPRoute"

func (c *compiler) tls(r *Route, in []edgev1alpha1.RouteTLS, p *fpath) {
	for i, t := range in {
		if !isDNSSubdomain(t.SecretName) {
			c.add(field.Invalid(p.atIndex(i, "secretName"), t.SecretName, "must be a Secret name (RFC 1123 subdomain)"))
		}
		out := TLS{Secret: types.NamespacedName{Namespace: c.ns, Name: t.SecretName}}
		for j, h := range t.Hosts {
			name, why := checkHostname(string(h), true)
			if why != "" {
				c.add(field.Invalid(p.atIndex(i, "hosts").Index(j), string(h), why))
				continue
			}
			if !contains(out.Hosts, name) {
				out.Hosts = append(out.Hosts, name)
			}
		}
		if len(t.Hosts) == 0 {
			if len(r.Hostnames) == 0 {
				c.add(field.Required(p.atIndex(i, "hosts"), "the route has no hostnames to default them to"))
			}
			out.Hosts = r.Hostnames
		}
		r.TLS = append(r.TLS, out)
	}
}

// rule compiles in into rule, whose Matches has room for every match (one when in has none).
func (c *compiler) rule(rule *Rule, in *edgev1alpha1.TenantRouteRule, p *fpath) {
	if in.Name != nil {
		rule.Name = string(*in.Name)
		if !isDNSSubdomain(rule.Name) {
			c.add(field.Invalid(p.at("name"), rule.Name, "must be lower-case letters, digits, '-' and '.'"))
		}
	}
	if len(in.Matches) == 0 {
		rule.Matches[0] = RouteMatch{PathType: gwapiv1.PathMatchPathPrefix, Path: "/"}
	} else {
		mp := p.child("matches")
		for i := range in.Matches {
			ip := mp.idx(i)
			rule.Matches[i] = c.match(i, &in.Matches[i], &ip)
		}
	}
	fp := p.child("filters")
	prefixMod := c.filters(rule, in.Filters, &fp)
	if prefixMod.set {
		// ReplacePrefixMatch replaces the matched prefix: the rule must have exactly one, and a prefix.
		if len(rule.Matches) != 1 || rule.Matches[0].PathType != gwapiv1.PathMatchPathPrefix {
			c.add(field.Invalid(fp.atIndex(prefixMod.filter, prefixMod.field, "path", "type"), string(gwapiv1.PrefixMatchHTTPPathModifier),
				"ReplacePrefixMatch requires exactly one match, of type PathPrefix"))
		}
	}
	bp := p.child("backendRefs")
	c.backends(rule, in.BackendRefs, &bp)
	if rule.Redirect != nil && len(rule.Backends) > 0 {
		c.add(field.Forbidden(bp.get(), "a rule with a RequestRedirect filter must not have backendRefs"))
	}
	if in.RegexRewrite != nil {
		rp := p.child("regexRewrite")
		c.regexRewrite(rule, in, &rp)
	}
	tp := p.child("timeouts")
	rule.Timeouts = c.timeouts(in.Timeouts, &tp)
	if in.Retry != nil {
		if a := in.Retry.Attempts; a < 0 || a > 5 {
			c.add(field.Invalid(p.at("retry", "attempts"), a, "must be between 0 and 5"))
		} else {
			rule.RetryAttempts = int(a)
		}
	}
}

func (c *compiler) match(idx int, in *gwapiv1.HTTPRouteMatch, p *fpath) RouteMatch {
	m := RouteMatch{Index: idx, PathType: gwapiv1.PathMatchPathPrefix, Path: "/"}
	if in.Path != nil {
		if in.Path.Type != nil {
			m.PathType = *in.Path.Type
		}
		if in.Path.Value != nil {
			m.Path = *in.Path.Value
		}
	}
	pp := p.child("path")
	vp := pp.child("value")
	switch m.PathType {
	case gwapiv1.PathMatchExact, gwapiv1.PathMatchPathPrefix:
		if why := checkMatchPath(m.Path); why != "" {
			c.add(field.Invalid(vp.get(), m.Path, why))
		} else if m.PathType == gwapiv1.PathMatchPathPrefix && len(m.Path) > 1 && m.Path[len(m.Path)-1] == '/' {
			m.Path = m.Path[:len(m.Path)-1] // Gateway API: a trailing '/' of a prefix is ignored
		}
	case gwapiv1.PathMatchRegularExpression:
		m.PathRegex = c.regex(m.Path, &vp)
	default:
		c.add(field.NotSupported(pp.at("type"), string(m.PathType), pathTypes))
	}
	hsp := p.child("headers")
	for i, h := range in.Headers {
		hp := hsp.idx(i)
		name := string(h.Name)
		if !isToken(name) {
			c.add(field.Invalid(hp.at("name"), name, "must be a valid HTTP header name"))
			continue
		}
		hm := HeaderMatch{Name: http.CanonicalHeaderKey(name), Value: h.Value}
		var ok bool
		if hm.Regex, ok = c.valueMatch(deref(h.Type), h.Value, &hp); ok && !containsHeader(m.Headers, hm.Name) {
			m.Headers = append(m.Headers, hm) // only the first entry for a name counts
		}
	}
	qsp := p.child("queryParams")
	for i, q := range in.QueryParams {
		qp := qsp.idx(i)
		name := string(q.Name)
		if !isToken(name) {
			c.add(field.Invalid(qp.at("name"), name, "must be a valid query parameter name"))
			continue
		}
		qm := QueryMatch{Name: name, Value: q.Value}
		var ok bool
		if qm.Regex, ok = c.valueMatch(deref(q.Type), q.Value, &qp); ok && !containsQuery(m.QueryParams, qm.Name) {
			m.QueryParams = append(m.QueryParams, qm)
		}
	}
	if in.Method != nil {
		m.Method = string(*in.Method)
		if !containsMethod(m.Method) {
			c.add(field.NotSupported(p.at("method"), m.Method, httpMethods))
		}
	}
	return m
}

// valueMatch checks a header or query match value of type typ ("" is Exact). It returns the
// compiled regex of a RegularExpression match, and whether the match is valid.
func (c *compiler) valueMatch(typ, value string, p *fpath) (*regexp.Regexp, bool) {
	switch typ {
	case "", "Exact":
		if value == "" {
			c.add(field.Required(p.at("value"), ""))
			return nil, false
		}
		if hasCTL(value, true) {
			c.add(field.Invalid(p.at("value"), value, "must not contain control characters"))
			return nil, false
		}
		return nil, true
	case "RegularExpression":
		vp := p.child("value")
		re := c.regex(value, &vp)
		return re, re != nil
	}
	c.add(field.NotSupported(p.at("type"), typ, matchTypes))
	return nil, false
}

// regex compiles a tenant's RE2 expression anchored at both ends: it must match the whole value.
func (c *compiler) regex(expr string, p *fpath) *regexp.Regexp {
	switch {
	case expr == "":
		c.add(field.Required(p.get(), "a regular expression"))
		return nil
	case len(expr) > edgev1alpha1.MaxRegexLength:
		c.add(field.TooLong(p.get(), expr, edgev1alpha1.MaxRegexLength))
		return nil
	case hasCTL(expr, false):
		c.add(field.Invalid(p.get(), expr, "must not contain control characters"))
		return nil
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		c.add(field.Invalid(p.get(), expr, "must be an RE2 regular expression: "+err.Error()))
		return nil
	}
	return re
}

func (c *compiler) backends(rule *Rule, in []gwapiv1.HTTPBackendRef, p *fpath) {
	if len(in) > 0 {
		rule.Backends = make([]Backend, 0, len(in))
	}
	nonZero := false
	for i, b := range in {
		ok := true
		if b.Group != nil && *b.Group != "" {
			c.add(field.NotSupported(p.atIndex(i, "group"), string(*b.Group), []string{""}))
			ok = false
		}
		if b.Kind != nil && *b.Kind != "Service" {
			c.add(field.NotSupported(p.atIndex(i, "kind"), string(*b.Kind), []string{"Service"}))
			ok = false
		}
		key := BackendKey{Namespace: c.ns, Name: string(b.Name)}
		if !isDNSLabel(key.Name, true) {
			c.add(field.Invalid(p.atIndex(i, "name"), key.Name, "must be a Service name (RFC 1035 label)"))
			ok = false
		}
		if b.Namespace != nil {
			// Another namespace is allowed here; the operator admits it only with a ReferenceGrant.
			key.Namespace = string(*b.Namespace)
			if !isDNSLabel(key.Namespace, false) {
				c.add(field.Invalid(p.atIndex(i, "namespace"), key.Namespace, "must be a namespace name"))
				ok = false
			}
		}
		switch {
		case b.Port == nil:
			c.add(field.Required(p.atIndex(i, "port"), "a Service backend needs a port"))
			ok = false
		case *b.Port < 1 || *b.Port > 65535:
			c.add(field.Invalid(p.atIndex(i, "port"), *b.Port, "must be between 1 and 65535"))
			ok = false
		default:
			key.Port = *b.Port
		}
		weight := int32(1)
		if b.Weight != nil {
			weight = *b.Weight
			if weight < 0 || weight > maxWeight {
				c.add(field.Invalid(p.atIndex(i, "weight"), weight, "must be between 0 and 1000000"))
				ok = false
			}
		}
		if len(b.Filters) > 0 {
			c.add(field.Forbidden(p.atIndex(i, "filters"), "per-backend filters are not supported; use the rule's filters"))
			ok = false
		}
		nonZero = nonZero || weight > 0
		if ok {
			rule.Backends = append(rule.Backends, Backend{Key: key, Weight: weight})
		}
	}
	if len(in) > 0 && !nonZero {
		c.add(field.Invalid(p.atIndex(0, "weight"), int32(0), "backend weights must not all be zero"))
	}
}

func (c *compiler) timeouts(in *gwapiv1.HTTPRouteTimeouts, p *fpath) Timeouts {
	t := Timeouts{Request: c.d.RequestTimeout, Backend: c.d.BackendTimeout}
	var backendSet bool
	if in != nil && in.Request != nil {
		d, err := parseDuration(string(*in.Request))
		if err != nil {
			c.add(field.Invalid(p.at("request"), string(*in.Request), err.Error()))
		}
		t.Request = d // "0s" disables the timeout (Gateway API)
	}
	if in != nil && in.BackendRequest != nil {
		d, err := parseDuration(string(*in.BackendRequest))
		if err != nil {
			c.add(field.Invalid(p.at("backendRequest"), string(*in.BackendRequest), err.Error()))
		}
		t.Backend, backendSet = d, true
	}
	if t.Request > 0 && (t.Backend == 0 || t.Backend > t.Request) {
		if backendSet && t.Backend > 0 {
			c.add(field.Invalid(p.at("backendRequest"), string(*in.BackendRequest),
				fmt.Sprintf("must not exceed the request timeout (%s)", t.Request)))
		} else if !backendSet {
			t.Backend = t.Request // the default backend timeout never outlives the request
		}
	}
	return t
}

func (c *compiler) regexRewrite(rule *Rule, in *edgev1alpha1.TenantRouteRule, p *fpath) {
	sub := in.RegexRewrite.Substitution
	if why := checkRewritePath(sub, false); why != "" {
		c.add(field.Invalid(p.at("substitution"), sub, why))
	} else if len(sub) > edgev1alpha1.MaxRegexLength {
		c.add(field.TooLong(p.at("substitution"), sub, edgev1alpha1.MaxRegexLength))
	}
	if len(in.Matches) == 0 {
		c.add(field.Invalid(p.get(), sub, "regexRewrite needs RegularExpression path matches"))
		return
	}
	var re *regexp.Regexp
	for i, m := range rule.Matches {
		if m.PathType != gwapiv1.PathMatchRegularExpression {
			c.add(field.Invalid(p.get(), sub, fmt.Sprintf("regexRewrite needs RegularExpression path matches; matches[%d] is %s", i, m.PathType)))
			return
		}
		if re != nil && m.PathRegex != nil && m.PathRegex.String() != re.String() {
			c.add(field.Invalid(p.get(), sub, "regexRewrite needs every match to use the same path regular expression"))
			return
		}
		if m.PathRegex != nil {
			re = m.PathRegex
		}
	}
	switch {
	case rule.Redirect != nil:
		c.add(field.Forbidden(p.get(), "regexRewrite cannot be combined with a RequestRedirect filter"))
	case rule.Rewrite != nil && rule.Rewrite.Path != nil:
		c.add(field.Forbidden(p.get(), "regexRewrite cannot be combined with a URLRewrite path"))
	case re != nil:
		if rule.Rewrite == nil {
			rule.Rewrite = &Rewrite{}
		}
		rule.Rewrite.Regex, rule.Rewrite.RegexSubstitution = re, sub
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsMethod(m string) bool {
	for _, v := range httpMethods {
		if string(v) == m {
			return true
		}
	}
	return false
}

func containsHeader(list []HeaderMatch, name string) bool {
	for _, h := range list {
		if h.Name == name {
			return true
		}
	}
	return false
}

func containsQuery(list []QueryMatch, name string) bool {
	for _, q := range list {
		if q.Name == name {
			return true
		}
	}
	return false
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
