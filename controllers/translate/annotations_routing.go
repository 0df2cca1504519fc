package translate

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Annotations that change where and how requests are routed: rewrites, redirects, hosts.

func parseRewriteTarget(p *annotationParser, value string) {
	v := strings.TrimSpace(value)
	if v == "" {
		return // ingress-nginx treats an empty target as none
	}
	target, captures, why := nginxSubstitution(v)
	if why != "" {
		p.invalid(value, why)
		return
	}
	p.cfg.rewriteTarget, p.cfg.rewriteHasCaptures = &target, captures
}

// nginxSubstitution turns a rewrite target written for nginx into an RE2 substitution: nginx's
// $1..$9 become ${1}..${9}, because Go reads "$1abc" as the group named "1abc". Other nginx
// variables cannot be reproduced and are refused rather than passed on as text.
func nginxSubstitution(v string) (string, bool, string) {
	if why := checkTargetPath(v); why != "" {
		return "", false, why
	}
	var b strings.Builder
	captures := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(v) && v[i+1] >= '1' && v[i+1] <= '9':
			b.WriteString("${" + v[i+1:i+2] + "}")
			i++
		case i+3 < len(v) && v[i+1] == '{' && v[i+2] >= '1' && v[i+2] <= '9' && v[i+3] == '}':
			b.WriteString(v[i : i+4])
			i += 3
		default:
			return "", false, "only the capture groups $1 to $9 can be used; nginx variables are not supported"
		}
		captures = true
	}
	return b.String(), captures, ""
}

// checkTargetPath checks a path Portico will send or redirect to: absolute, printable, no query.
func checkTargetPath(v string) string {
	switch {
	case !strings.HasPrefix(v, "/"):
		return "must be a path starting with '/'"
	case len(v) > edgev1alpha1.MaxRegexLength:
		return fmt.Sprintf("must be at most %d characters", edgev1alpha1.MaxRegexLength)
	case strings.ContainsAny(v, "?#"):
		return "must not contain a query or fragment ('?', '#')"
	}
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "must not contain whitespace or control characters"
		}
	}
	return ""
}

func parseUseRegex(p *annotationParser, value string) {
	if on, ok := p.boolValue(value); ok {
		p.cfg.useRegex = on
	}
}

func parseAppRoot(p *annotationParser, value string) {
	v := strings.TrimSpace(value)
	if why := checkTargetPath(v); why != "" {
		p.invalid(value, why)
		return
	}
	if strings.Contains(v, "$") {
		p.invalid(value, "nginx variables are not supported")
		return
	}
	p.cfg.appRoot = v
}

func parsePermanentRedirect(p *annotationParser, value string) {
	if t, ok := p.value("temporal-redirect"); ok && strings.TrimSpace(t) != "" {
		return // temporal-redirect wins, as in ingress-nginx
	}
	p.redirect(value, "permanent-redirect-code", 301, 308, []int{301, 302, 303, 307, 308})
}

func parseTemporalRedirect(p *annotationParser, value string) {
	p.redirect(value, "temporal-redirect-code", 302, 307, []int{301, 302, 303, 307})
}

// redirect reads a redirect URL and its code annotation. Codes outside 300..maxCode fall back to
// the default, as ingress-nginx does; codes inside that nginx would send but a Gateway API redirect
// cannot (300, 304...) are errors.
func (p *annotationParser) redirect(value, codeAnnotation string, defaultCode, maxCode int, allowed []int) {
	v := strings.TrimSpace(value)
	if v == "" {
		return
	}
	code, codeOK := defaultCode, true
	if raw, ok := p.value(codeAnnotation); ok {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		switch {
		case err != nil:
			p.errs = append(p.errs, invalidAt(codeAnnotation, raw, "must be an HTTP status code"))
			codeOK = false
		case n < 300 || n > maxCode:
			// ingress-nginx's fallback to the default
		case !slices.Contains(allowed, n):
			p.errs = append(p.errs, invalidAt(codeAnnotation, raw, fmt.Sprintf("must be one of %v", allowed)))
			codeOK = false
		default:
			code = n
		}
	}
	filter, why := redirectFilter(v)
	if why != "" {
		p.invalid(value, why)
		return
	}
	if !codeOK {
		return
	}
	filter.StatusCode = &code
	p.cfg.redirect = filter
}

// redirectFilter turns the URL of ingress-nginx's `return <code> <url>` into a Gateway API redirect.
// A URL ending in $request_uri redirects to the same path and query on another scheme and host;
// any other URL replaces the path (its query, which a Gateway API redirect cannot set, is refused).
func redirectFilter(raw string) (*gwapiv1.HTTPRequestRedirectFilter, string) {
	keepPath := false
	for _, suffix := range []string{"$request_uri", "${request_uri}"} {
		if rest, ok := strings.CutSuffix(raw, suffix); ok {
			raw, keepPath = rest, true
			break
		}
	}
	if strings.Contains(raw, "$") {
		return nil, "nginx variables are not supported, except a trailing $request_uri"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "must be a URL: " + err.Error()
	}
	f := &gwapiv1.HTTPRequestRedirectFilter{}
	switch {
	case u.Scheme == "" && u.Host == "":
		// a path on the same host
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an http or https URL, or a path"
	case u.Host == "" || u.User != nil:
		return nil, "must name a host, without user information"
	default:
		scheme := u.Scheme
		host := strings.ToLower(u.Hostname())
		if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
			return nil, "the host must be a DNS name: " + strings.Join(errs, "; ")
		}
		f.Scheme, f.Hostname = &scheme, ptrTo(gwapiv1.PreciseHostname(host))
		if ps := u.Port(); ps != "" {
			port, err := strconv.Atoi(ps)
			if err != nil || port < 1 || port > 65535 {
				return nil, "the port must be between 1 and 65535"
			}
			f.Port = ptrTo(gwapiv1.PortNumber(port))
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, "a query or fragment cannot be set by a redirect; end the URL with $request_uri to keep the request's"
	}
	path := u.EscapedPath()
	switch {
	case keepPath && f.Hostname == nil:
		return nil, "$request_uri needs a scheme and host before it"
	case keepPath && path != "":
		return nil, "a path before $request_uri cannot be reproduced; redirect to scheme://host$request_uri"
	case keepPath:
		return f, ""
	case path == "":
		path = "/"
	}
	if why := checkTargetPath(path); why != "" {
		return nil, "the path " + why
	}
	f.Path = &gwapiv1.HTTPPathModifier{Type: gwapiv1.FullPathHTTPPathModifier, ReplaceFullPath: &path}
	return f, ""
}

func parseFromToWWW(p *annotationParser, value string) {
	if on, ok := p.boolValue(value); ok {
		p.cfg.fromToWWW = on
	}
}

func parseServerAlias(p *annotationParser, value string) {
	aliases := strings.FieldsFunc(value, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for _, a := range aliases {
		a = strings.ToLower(a)
		if why := checkHostname(a); why != "" {
			p.invalid(value, fmt.Sprintf("alias %q %s", a, why))
			return
		}
		if !containsHostname(p.cfg.serverAliases, a) {
			p.cfg.serverAliases = append(p.cfg.serverAliases, edgev1alpha1.Hostname(a))
		}
	}
}

// checkHostname accepts what an Ingress host may be: a DNS name or a "*." wildcard.
func checkHostname(h string) string {
	var errs []string
	if strings.HasPrefix(h, "*") {
		errs = validation.IsWildcardDNS1123Subdomain(h)
	} else {
		errs = validation.IsDNS1123Subdomain(h)
	}
	if len(errs) > 0 {
		return "must be a DNS name or a *. wildcard: " + strings.Join(errs, "; ")
	}
	return ""
}

func parseUpstreamVhost(p *annotationParser, value string) {
	v := strings.ToLower(strings.TrimSpace(value))
	switch {
	case v == "":
	case strings.Contains(v, "$"):
		p.invalid(value, "nginx variables are not supported")
	case strings.Contains(v, ":"):
		p.invalid(value, "must be a host name without a port")
	default:
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			p.invalid(value, "must be a DNS name: "+strings.Join(errs, "; "))
			return
		}
		p.cfg.upstreamVhost = v
	}
}

func parseXForwardedPrefix(p *annotationParser, value string) {
	v := strings.TrimSpace(value)
	switch {
	case v == "":
	case strings.Contains(v, "$"):
		p.invalid(value, "nginx variables are not supported")
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		p.invalid(value, "must not contain control characters")
	default:
		p.cfg.xForwardedPrefix = v
	}
}

// parseSSLRedirect compares what ssl-redirect / force-ssl-redirect ask for with what the EdgeProxy
// does: a TenantRoute cannot tell plain HTTP from HTTPS requests, so the redirect is fleet-wide.
func parseSSLRedirect(p *annotationParser, value string) {
	on, ok := p.boolValue(value)
	if !ok {
		return
	}
	force := p.current == "force-ssl-redirect"
	tlsHosts, plainHosts := hostsByTLS(p)
	edge := p.limits.redirectHTTPToHTTPS
	const notRedirected = "plain HTTP requests are served, not redirected to HTTPS: the EdgeProxy's spec.tls.redirectHTTPToHTTPS is false"
	switch {
	case !force && on && tlsHosts && !edge:
		p.notice(Approximated, notRedirected)
	case !force && !on && tlsHosts && edge:
		p.notice(Approximated, "plain HTTP requests for the hosts with TLS are still redirected to HTTPS: the EdgeProxy's spec.tls.redirectHTTPToHTTPS is true, for every route")
	case force && on && !edge:
		p.notice(Approximated, notRedirected)
	case force && on && plainHosts:
		p.notice(Approximated, "only hosts with TLS are redirected to HTTPS (by the EdgeProxy's spec.tls.redirectHTTPToHTTPS); add the other hosts to spec.tls")
	}
}

// hostsByTLS says whether the Ingress has hosts with TLS, and hosts (or host-less rules) without.
func hostsByTLS(p *annotationParser) (withTLS, without bool) {
	covered := map[string]bool{}
	for _, t := range p.ing.Spec.TLS {
		for _, h := range t.Hosts {
			covered[strings.ToLower(h)] = true
		}
	}
	withTLS = len(p.ing.Spec.TLS) > 0
	for _, r := range p.ing.Spec.Rules {
		if r.Host == "" || !covered[strings.ToLower(r.Host)] {
			without = true
		}
	}
	return withTLS, without
}

func invalidAt(annotation, value, why string) *field.Error {
	return field.Invalid(annotationPath(annotation), value, why)
}

func containsHostname(list []edgev1alpha1.Hostname, h string) bool {
	for _, v := range list {
		if strings.EqualFold(string(v), h) {
			return true
		}
	}
	return false
}

func ptrTo[T any](v T) *T { return &v }
