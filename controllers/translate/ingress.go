package translate

import (
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// ingressTranslator carries the state of one Ingress translation.
type ingressTranslator struct {
	in       Input
	ing      *networkingv1.Ingress
	class    *Class
	services serviceIndex
	canaries map[string][]*canary
	cfg      nginxConfig
	// regexMode: the Ingress's paths are ingress-nginx regular expressions (see pathMatch).
	regexMode bool
	notices   noticeList
	errs      field.ErrorList
	routes    []*edgev1alpha1.TenantRoute
}

// pathEntry is one path of the Ingress, or its default backend, for one host ("" for rules without host).
type pathEntry struct {
	host      string
	path      string // as written, to find the canary of the path
	pathType  networkingv1.PathType
	match     *gwapiv1.HTTPPathMatch
	backend   backend
	isDefault bool
}

// hostGroup is a set of hosts served by the same rules: one TenantRoute (or several, when the
// rules exceed a route's limits), since a TenantRoute has one hostname list.
type hostGroup struct {
	key       string
	hostnames []edgev1alpha1.Hostname
	rules     []*draftRule
	tls       []edgev1alpha1.RouteTLS
}

func newIngressTranslator(in Input, class *Class) *ingressTranslator {
	services := indexServices(in.Services, in.Ingress.Namespace)
	return &ingressTranslator{
		in:       in,
		ing:      in.Ingress,
		class:    class,
		services: services,
		canaries: indexCanaries(in.Ingress, class, in, services),
	}
}

func (t *ingressTranslator) translate() {
	limits := limitsOf(t.in.EdgeProxy, t.class.EdgeProxy)
	var errs field.ErrorList
	t.cfg, errs = parseNginxAnnotations(t.ing, limits, &t.notices)
	t.errs = append(t.errs, errs...)
	t.regexMode = t.cfg.useRegex || (t.cfg.rewriteTarget != nil && (t.cfg.rewriteHasCaptures || t.anyRegexPath()))

	hosts, entries := t.collectEntries()
	if len(t.errs) > 0 {
		return
	}
	if len(entries) == 0 {
		t.errs = append(t.errs, field.Required(field.NewPath("spec", "rules"),
			"the Ingress has no paths and no defaultBackend: there is nothing to route"))
		return
	}
	t.noticeWholePathRewrite(entries)

	groups := t.groupHosts(hosts, entries)
	groups = t.addServerAliases(groups)
	groups = t.addWWWRedirects(groups)
	t.assignTLS(groups)
	if len(t.errs) > 0 {
		return
	}
	t.routes = t.buildRoutes(groups)
}

func (t *ingressTranslator) anyRegexPath() bool {
	for _, r := range t.ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if hasRegexMeta(p.Path) {
				return true
			}
		}
	}
	return false
}

// collectEntries reads the Ingress's rules and default backend into path entries per host, hosts
// in the order they first appear. spec.defaultBackend serves "/" on every host that does not
// route "/" itself, and on the catch-all (requests for hosts no rule names), as the Ingress spec
// says: requests matching no rule go to it. "/" is the shortest prefix, so every other path wins.
func (t *ingressTranslator) collectEntries() ([]string, map[string][]*pathEntry) {
	var hosts []string
	entries := map[string][]*pathEntry{}
	addHost := func(h string) {
		if _, ok := entries[h]; !ok {
			entries[h] = nil
			hosts = append(hosts, h)
		}
	}
	rulesPath := field.NewPath("spec", "rules")
	for i := range t.ing.Spec.Rules {
		rule := &t.ing.Spec.Rules[i]
		rp := rulesPath.Index(i)
		host := strings.ToLower(rule.Host)
		if host != "" {
			if why := checkHostname(host); why != "" {
				t.errs = append(t.errs, field.Invalid(rp.Child("host"), rule.Host, why))
				continue
			}
		}
		addHost(host)
		if rule.HTTP == nil {
			continue
		}
		for j := range rule.HTTP.Paths {
			path := &rule.HTTP.Paths[j]
			pp := rp.Child("http", "paths").Index(j)
			match, err := pathMatch(path.Path, path.PathType, t.regexMode, pp.Child("path"))
			if err != nil {
				t.errs = append(t.errs, err)
			}
			b, err := resolveBackend(&path.Backend, t.services, t.ing.Namespace, pp.Child("backend"))
			if err != nil {
				t.errs = append(t.errs, err)
			}
			pt := networkingv1.PathTypeImplementationSpecific
			if path.PathType != nil {
				pt = *path.PathType
			}
			entries[host] = append(entries[host], &pathEntry{host: host, path: path.Path, pathType: pt, match: match, backend: b})
		}
	}
	if db := t.ing.Spec.DefaultBackend; db != nil {
		b, err := resolveBackend(db, t.services, t.ing.Namespace, field.NewPath("spec", "defaultBackend"))
		if err != nil {
			t.errs = append(t.errs, err)
		}
		match, _ := pathMatch("/", ptrTo(networkingv1.PathTypePrefix), t.regexMode, nil) // "/" always translates
		addHost("")
		for _, h := range hosts {
			if !routesRoot(entries[h]) {
				entries[h] = append(entries[h], &pathEntry{host: h, path: "/", pathType: networkingv1.PathTypePrefix, match: match, backend: b, isDefault: true})
			}
		}
	}
	total := 0
	for h, list := range entries {
		if len(list) == 0 {
			delete(entries, h) // a host without paths routes nothing; its TLS still goes to the first route
		}
		total += len(list)
	}
	if total == 0 {
		return nil, nil
	}
	kept := hosts[:0]
	for _, h := range hosts {
		if _, ok := entries[h]; ok {
			kept = append(kept, h)
		}
	}
	return kept, entries
}

// routesRoot reports whether a host's paths already catch everything, as "/" does.
func routesRoot(entries []*pathEntry) bool {
	for _, e := range entries {
		if (e.path == "/" || e.path == "") && e.pathType != networkingv1.PathTypeExact {
			return true
		}
	}
	return false
}

// noticeWholePathRewrite warns about a rewrite-target without capture groups on prefix paths:
// ingress-nginx sends every request under the prefix to the backend as that one path. Portico does
// the same, because manifests may rely on it, and says so, because it is rarely what was meant.
func (t *ingressTranslator) noticeWholePathRewrite(entries map[string][]*pathEntry) {
	target := t.cfg.rewriteTarget
	if target == nil || t.cfg.rewriteHasCaptures || t.cfg.redirect != nil {
		return
	}
	prefix, found := "", false
	for _, list := range entries {
		for _, e := range list {
			if e.isDefault || e.pathType == networkingv1.PathTypeExact {
				continue
			}
			// The longest prefix makes the most telling example; ties go to the smallest, for stability.
			p := strings.TrimSuffix(e.path, "/")
			if !found || len(p) > len(prefix) || (len(p) == len(prefix) && p < prefix) {
				prefix = p
			}
			found = true
		}
	}
	if !found {
		return
	}
	example := "/items/42"
	if !t.regexMode {
		example = prefix + example
	}
	t.notices.add(Notice{
		Annotation: annotationPrefix + "rewrite-target",
		Behaviour:  Exact,
		Message: fmt.Sprintf("every request matching a prefix path reaches the backend with the path %q, as in ingress-nginx: "+
			"%q arrives as %q. To keep the rest of the path, capture it: path \"/api(/|$)(.*)\" with rewrite-target \"/$2\"",
			*target, example, *target),
	})
}

// groupHosts builds each host's rules and gathers hosts with identical rules into one group. The
// catch-all ("") always has a group of its own: it cannot share a hostname list.
func (t *ingressTranslator) groupHosts(hosts []string, entries map[string][]*pathEntry) []*hostGroup {
	var groups []*hostGroup
	for _, h := range hosts {
		rules := t.hostRules(entries[h])
		keys := make([]string, len(rules))
		for i, r := range rules {
			keys[i] = r.key + fmt.Sprint(len(r.rule.Matches))
		}
		b, _ := json.Marshal(struct {
			CatchAll bool
			Rules    []edgev1alpha1.TenantRouteRule
			Keys     []string
		}{h == "", rulesOf(rules), keys})
		key := string(b)
		var g *hostGroup
		for _, existing := range groups {
			if existing.key == key {
				g = existing
				break
			}
		}
		if g == nil {
			g = &hostGroup{key: key, rules: rules}
			groups = append(groups, g)
		}
		if h != "" {
			g.hostnames = append(g.hostnames, edgev1alpha1.Hostname(h))
		}
	}
	return groups
}

func rulesOf(drafts []*draftRule) []edgev1alpha1.TenantRouteRule {
	out := make([]edgev1alpha1.TenantRouteRule, len(drafts))
	for i, d := range drafts {
		out[i] = d.rule
	}
	return out
}

// allHostnames lists every hostname the groups serve.
func allHostnames(groups []*hostGroup) []edgev1alpha1.Hostname {
	var out []edgev1alpha1.Hostname
	for _, g := range groups {
		out = append(out, g.hostnames...)
	}
	return out
}

// addServerAliases gives server-alias's names to the group of the Ingress's first host.
// ingress-nginx added them to the server of every host of the Ingress, where only the first
// could win; Portico says so when the Ingress has hosts with different paths.
func (t *ingressTranslator) addServerAliases(groups []*hostGroup) []*hostGroup {
	aliases := t.cfg.serverAliases
	if len(aliases) == 0 {
		return groups
	}
	annotation := annotationPrefix + "server-alias"
	var first *hostGroup
	named := 0
	for _, g := range groups {
		if len(g.hostnames) > 0 {
			named++
			if first == nil {
				first = g
			}
		}
	}
	if first == nil {
		t.notices.add(Notice{Annotation: annotation, Behaviour: Ignored,
			Message: "the Ingress has no host for the aliases to join; they are ignored"})
		return groups
	}
	if named > 1 {
		t.notices.add(Notice{Annotation: annotation, Behaviour: Approximated,
			Message: fmt.Sprintf("the aliases serve the paths of %s only, the Ingress's first host", first.hostnames[0])})
	}
	existing := allHostnames(groups)
	for _, a := range aliases {
		if !containsHostname(existing, string(a)) {
			first.hostnames = append(first.hostnames, a)
			existing = append(existing, a)
		}
	}
	return groups
}

// addWWWRedirects adds, for every exact host, a group for the other name (with or without
// "www.") whose only rule redirects to the host with 308, as ingress-nginx's from-to-www-redirect
// does, unless the Ingress serves that name itself.
func (t *ingressTranslator) addWWWRedirects(groups []*hostGroup) []*hostGroup {
	if !t.cfg.fromToWWW {
		return groups
	}
	existing := allHostnames(groups)
	tlsHosts := t.tlsHostSet()
	var extra []*hostGroup
	for _, g := range groups {
		for _, h := range g.hostnames {
			host := string(h)
			if strings.HasPrefix(host, "*.") {
				continue
			}
			other := "www." + host
			if rest, ok := strings.CutPrefix(host, "www."); ok {
				other = rest
			}
			if containsHostname(existing, other) || checkHostname(other) != "" {
				continue
			}
			existing = append(existing, edgev1alpha1.Hostname(other))
			d := &draftRule{tier: tierPlain, baseName: "www-redirect"}
			d.rule.Filters = []gwapiv1.HTTPRouteFilter{{
				Type:            gwapiv1.HTTPRouteFilterRequestRedirect,
				RequestRedirect: &gwapiv1.HTTPRequestRedirectFilter{Hostname: ptrTo(gwapiv1.PreciseHostname(host)), StatusCode: ptrTo(308)},
			}}
			d.rule.Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{Type: ptrTo(gwapiv1.PathMatchPathPrefix), Value: ptrTo("/")}}}
			extra = append(extra, &hostGroup{key: "www:" + other, hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(other)}, rules: []*draftRule{d}})
			if tlsHosts[host] && !tlsHosts[other] {
				t.notices.add(Notice{Annotation: annotationPrefix + "from-to-www-redirect", Behaviour: Approximated,
					Message: fmt.Sprintf("HTTPS requests for %s are not redirected until %s is listed in spec.tls (ingress-nginx used %s's certificate when it covered both names)", other, other, host)})
			}
		}
	}
	return append(groups, extra...)
}
