package translate

import (
	"encoding/json"
	"slices"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Tiers order the rules of a host. Portico's router breaks ties between equally specific matches
// by rule index (after route age and name), so rules that must win ties come first: app-root's
// exact "/" redirect, then canary header rules, then canary cookie rules (ingress-nginx's
// precedence), then everything else.
const (
	tierAppRoot = iota
	tierHeader
	tierCookie
	tierPlain
)

// Schema limits of a TenantRoute (see TenantRouteSpec): translation splits whatever exceeds them.
const (
	maxRulesPerRoute   = 16
	maxMatchesPerRoute = 128
	maxMatchesPerRule  = 64
	maxHostnames       = 64
	maxTLSEntries      = 64
	maxTLSHosts        = 64
)

// variant is one way a path is served: with an optional extra header match, to some backends.
type variant struct {
	tier     int
	header   *gwapiv1.HTTPHeaderMatch
	backends []gwapiv1.HTTPBackendRef
}

// draftRule is a rule being assembled: paths with the same action add their matches to it.
type draftRule struct {
	tier     int
	baseName string
	key      string
	rule     edgev1alpha1.TenantRouteRule
}

// hostRules builds the rules of one host: one rule per distinct action (backends and filters),
// holding the matches of every path sharing it, so that an Ingress with many paths to few
// Services stays within a TenantRoute's limits.
func (t *ingressTranslator) hostRules(entries []*pathEntry) []*draftRule {
	var drafts []*draftRule
	add := func(d *draftRule, m gwapiv1.HTTPRouteMatch) {
		for _, existing := range drafts {
			if existing.key == d.key {
				existing.rule.Matches = append(existing.rule.Matches, m)
				return
			}
		}
		d.rule.Matches = []gwapiv1.HTTPRouteMatch{m}
		drafts = append(drafts, d)
	}
	if t.cfg.appRoot != "" {
		d := &draftRule{tier: tierAppRoot, baseName: "app-root"}
		d.rule.Filters = []gwapiv1.HTTPRouteFilter{{
			Type: gwapiv1.HTTPRouteFilterRequestRedirect,
			RequestRedirect: &gwapiv1.HTTPRequestRedirectFilter{
				Path:       &gwapiv1.HTTPPathModifier{Type: gwapiv1.FullPathHTTPPathModifier, ReplaceFullPath: ptrTo(t.cfg.appRoot)},
				StatusCode: ptrTo(302),
			},
		}}
		d.key = ruleKey(d, "")
		add(d, gwapiv1.HTTPRouteMatch{Path: &gwapiv1.HTTPPathMatch{Type: ptrTo(gwapiv1.PathMatchExact), Value: ptrTo("/")}})
	}
	for _, e := range entries {
		variants := []variant{{tier: tierPlain, backends: []gwapiv1.HTTPBackendRef{e.backend.ref(nil)}}}
		if t.cfg.redirect == nil && !e.isDefault {
			if c := t.canaryFor(e.host, e.path); c != nil {
				variants = canaryVariants(c, e.backend)
			}
		}
		for _, v := range variants {
			m := gwapiv1.HTTPRouteMatch{Path: e.match.DeepCopy()}
			if v.header != nil {
				m.Headers = []gwapiv1.HTTPHeaderMatch{*v.header}
			}
			d := t.draftFor(v)
			regex := ""
			if d.rule.RegexRewrite != nil {
				regex = *e.match.Value // a regexRewrite rule must hold a single path regex
			}
			d.key = ruleKey(d, regex)
			add(d, m)
		}
	}
	slices.SortStableFunc(drafts, func(a, b *draftRule) int { return a.tier - b.tier })
	return drafts
}

// draftFor builds the action of a variant from the Ingress's annotations.
func (t *ingressTranslator) draftFor(v variant) *draftRule {
	d := &draftRule{tier: v.tier}
	if t.cfg.redirect != nil {
		d.baseName = "redirect"
		d.rule.Filters = []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestRedirect, RequestRedirect: t.cfg.redirect.DeepCopy()}}
		return d
	}
	d.baseName = backendOf(v.backends[0]).ruleName()
	switch v.tier {
	case tierHeader:
		d.baseName += "-by-header"
	case tierCookie:
		d.baseName += "-by-cookie"
	}
	if f := t.requestHeaderFilter(); f != nil {
		d.rule.Filters = append(d.rule.Filters, gwapiv1.HTTPRouteFilter{Type: gwapiv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f})
	}
	if f := t.cfg.responseHeaders; f != nil {
		d.rule.Filters = append(d.rule.Filters, gwapiv1.HTTPRouteFilter{Type: gwapiv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f.DeepCopy()})
	}
	rewrite := &gwapiv1.HTTPURLRewriteFilter{}
	if t.cfg.upstreamVhost != "" {
		rewrite.Hostname = ptrTo(gwapiv1.PreciseHostname(t.cfg.upstreamVhost))
	}
	if target := t.cfg.rewriteTarget; target != nil {
		if t.regexMode && t.cfg.rewriteHasCaptures {
			d.rule.RegexRewrite = &edgev1alpha1.RegexRewrite{Substitution: *target}
		} else {
			rewrite.Path = &gwapiv1.HTTPPathModifier{Type: gwapiv1.FullPathHTTPPathModifier, ReplaceFullPath: ptrTo(*target)}
		}
	}
	if rewrite.Hostname != nil || rewrite.Path != nil {
		d.rule.Filters = append(d.rule.Filters, gwapiv1.HTTPRouteFilter{Type: gwapiv1.HTTPRouteFilterURLRewrite, URLRewrite: rewrite})
	}
	d.rule.BackendRefs = v.backends
	d.rule.Timeouts = t.cfg.timeouts.DeepCopy()
	d.rule.Retry = t.cfg.retry.DeepCopy()
	return d
}

// requestHeaderFilter merges the snippet's request headers with x-forwarded-prefix.
func (t *ingressTranslator) requestHeaderFilter() *gwapiv1.HTTPHeaderFilter {
	var edits headerEdits
	if f := t.cfg.requestHeaders; f != nil {
		edits.filter = *f.DeepCopy()
	}
	if t.cfg.xForwardedPrefix != "" {
		edits.set("X-Forwarded-Prefix", t.cfg.xForwardedPrefix)
	}
	return edits.result()
}

func backendOf(ref gwapiv1.HTTPBackendRef) backend {
	return backend{service: string(ref.Name), port: *ref.Port}
}

// ruleKey identifies a rule's action. JSON of Go structs is deterministic; the tier and name keep
// rules of different precedence apart, and regex the paths of regexRewrite rules.
func ruleKey(d *draftRule, regex string) string {
	b, _ := json.Marshal(struct {
		Tier  int
		Name  string
		Regex string
		Rule  edgev1alpha1.TenantRouteRule
	}{d.tier, d.baseName, regex, d.rule})
	return string(b)
}

// packRules splits the rules of one hostname group into TenantRoute-sized chunks: rules with more
// matches than a rule may hold are cut (each piece is a rule with the same action), then rules
// are packed in order, at most 16 rules and 128 matches per route. Order is kept, so the tiers
// stay in order across chunks too.
func packRules(drafts []*draftRule) [][]*draftRule {
	var pieces []*draftRule
	for _, d := range drafts {
		matches := d.rule.Matches
		for len(matches) > 0 {
			n := min(len(matches), maxMatchesPerRule)
			piece := &draftRule{tier: d.tier, baseName: d.baseName, key: d.key, rule: *d.rule.DeepCopy()}
			piece.rule.Matches = slices.Clone(matches[:n])
			pieces = append(pieces, piece)
			matches = matches[n:]
		}
	}
	var chunks [][]*draftRule
	var cur []*draftRule
	curMatches := 0
	for _, p := range pieces {
		n := len(p.rule.Matches)
		if len(cur) == maxRulesPerRoute || curMatches+n > maxMatchesPerRoute {
			chunks = append(chunks, cur)
			cur, curMatches = nil, 0
		}
		cur = append(cur, p)
		curMatches += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// chunk splits a list into pieces of at most n; an empty list gives one empty piece.
func chunk[T any](list []T, n int) [][]T {
	if len(list) == 0 {
		return [][]T{nil}
	}
	var out [][]T
	for len(list) > 0 {
		k := min(len(list), n)
		out = append(out, list[:k:k])
		list = list[k:]
	}
	return out
}
