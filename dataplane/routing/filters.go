package routing

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var (
	filterTypes = []gwapiv1.HTTPRouteFilterType{
		gwapiv1.HTTPRouteFilterRequestHeaderModifier, gwapiv1.HTTPRouteFilterResponseHeaderModifier,
		gwapiv1.HTTPRouteFilterRequestRedirect, gwapiv1.HTTPRouteFilterURLRewrite,
	}
	pathModifierTypes = []gwapiv1.HTTPPathModifierType{gwapiv1.FullPathHTTPPathModifier, gwapiv1.PrefixMatchHTTPPathModifier}
	redirectCodes     = []string{"301", "302", "303", "307", "308"}
	redirectSchemes   = []string{"http", "https"}
)

// framingHeaders may not be set, added or removed by header modifiers: they decide how messages
// are delimited and routed, and letting tenants touch them invites request smuggling.
var framingHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Host": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// prefixModAt says where a ReplacePrefixMatch path modifier is: filters[filter].<field>.path.
type prefixModAt struct {
	set    bool
	filter int
	field  string
}

// filters compiles the rule's filters. It reports where a ReplacePrefixMatch path modifier is, if
// any, for the rule to check against its matches.
func (c *compiler) filters(rule *Rule, in []gwapiv1.HTTPRouteFilter, p *fpath) prefixModAt {
	var prefixMod prefixModAt
	for i := range in {
		f := &in[i]
		fp := p.idx(i)
		switch f.Type {
		case gwapiv1.HTTPRouteFilterRequestHeaderModifier, gwapiv1.HTTPRouteFilterResponseHeaderModifier:
			req := f.Type == gwapiv1.HTTPRouteFilterRequestHeaderModifier
			in, dst, child := f.ResponseHeaderModifier, &rule.ResponseHeaders, "responseHeaderModifier"
			if req {
				in, dst, child = f.RequestHeaderModifier, &rule.RequestHeaders, "requestHeaderModifier"
			}
			switch {
			case in == nil:
				c.add(field.Required(fp.at(child), fmt.Sprintf("filter type %s needs %s", f.Type, child)))
			case *dst != nil:
				c.add(field.Duplicate(fp.at("type"), string(f.Type)))
			default:
				hp := fp.child(child)
				*dst = c.headerModifier(in, &hp)
			}
		case gwapiv1.HTTPRouteFilterRequestRedirect:
			switch {
			case f.RequestRedirect == nil:
				c.add(field.Required(fp.at("requestRedirect"), "filter type RequestRedirect needs requestRedirect"))
			case rule.Redirect != nil:
				c.add(field.Duplicate(fp.at("type"), string(f.Type)))
			case rule.Rewrite != nil:
				c.add(field.Forbidden(fp.at("type"), "RequestRedirect cannot be combined with URLRewrite"))
			default:
				rp := fp.child("requestRedirect")
				rule.Redirect = c.redirect(f.RequestRedirect, &rp)
				if pm := rule.Redirect.Path; pm != nil && pm.Type == string(gwapiv1.PrefixMatchHTTPPathModifier) {
					prefixMod = prefixModAt{true, i, "requestRedirect"}
				}
			}
		case gwapiv1.HTTPRouteFilterURLRewrite:
			switch {
			case f.URLRewrite == nil:
				c.add(field.Required(fp.at("urlRewrite"), "filter type URLRewrite needs urlRewrite"))
			case rule.Rewrite != nil:
				c.add(field.Duplicate(fp.at("type"), string(f.Type)))
			case rule.Redirect != nil:
				c.add(field.Forbidden(fp.at("type"), "URLRewrite cannot be combined with RequestRedirect"))
			default:
				rp := fp.child("urlRewrite")
				rule.Rewrite = c.rewrite(f.URLRewrite, &rp)
				if pm := rule.Rewrite.Path; pm != nil && pm.Type == string(gwapiv1.PrefixMatchHTTPPathModifier) {
					prefixMod = prefixModAt{true, i, "urlRewrite"}
				}
			}
		default:
			// RequestMirror, CORS (use spec.policy.cors), ExternalAuth, ExtensionRef and unknown types.
			c.add(field.NotSupported(fp.at("type"), string(f.Type), filterTypes))
		}
	}
	return prefixMod
}

func (c *compiler) headerModifier(in *gwapiv1.HTTPHeaderFilter, p *fpath) *HeaderModifier {
	hm := &HeaderModifier{}
	sp, ap, rp := p.child("set"), p.child("add"), p.child("remove")
	hm.Set = c.headerValues(in.Set, &sp)
	hm.Add = c.headerValues(in.Add, &ap)
	for i, name := range in.Remove {
		ip := rp.idx(i)
		canon, ok := c.modifiableHeader(name, &ip)
		switch {
		case !ok:
		case contains(hm.Remove, canon):
			c.add(field.Duplicate(ip.get(), name))
		default:
			hm.Remove = append(hm.Remove, canon)
		}
	}
	return hm
}

func (c *compiler) headerValues(in []gwapiv1.HTTPHeader, p *fpath) []HeaderValue {
	var out []HeaderValue
	for i, h := range in {
		hp := p.idx(i)
		np := hp.child("name")
		name, ok := c.modifiableHeader(string(h.Name), &np)
		if hasCTL(h.Value, true) {
			c.add(field.Invalid(hp.at("value"), h.Value, "must not contain control characters"))
			ok = false
		}
		if !ok {
			continue
		}
		for _, prev := range out {
			if prev.Name == name {
				c.add(field.Duplicate(np.get(), string(h.Name)))
				ok = false
			}
		}
		if ok {
			out = append(out, HeaderValue{Name: name, Value: h.Value})
		}
	}
	return out
}

func (c *compiler) modifiableHeader(name string, p *fpath) (string, bool) {
	if !isToken(name) {
		c.add(field.Invalid(p.get(), name, "must be a valid HTTP header name"))
		return "", false
	}
	canon := http.CanonicalHeaderKey(name)
	if framingHeaders[canon] {
		c.add(field.Forbidden(p.get(), fmt.Sprintf("the %s header is managed by the proxy", canon)))
		return "", false
	}
	return canon, true
}

func (c *compiler) redirect(in *gwapiv1.HTTPRequestRedirectFilter, p *fpath) *Redirect {
	r := &Redirect{StatusCode: 302}
	if in.Scheme != nil {
		r.Scheme = *in.Scheme
		if !contains(redirectSchemes, r.Scheme) {
			c.add(field.NotSupported(p.at("scheme"), r.Scheme, redirectSchemes))
		}
	}
	if in.Hostname != nil {
		hp := p.child("hostname")
		r.Hostname = c.preciseHostname(string(*in.Hostname), &hp)
	}
	if in.Port != nil {
		r.Port = *in.Port
		if r.Port < 1 || r.Port > 65535 {
			c.add(field.Invalid(p.at("port"), r.Port, "must be between 1 and 65535"))
		}
	}
	if in.Path != nil {
		pp := p.child("path")
		r.Path = c.pathModifier(in.Path, &pp)
	}
	if in.StatusCode != nil {
		r.StatusCode = *in.StatusCode
		if !contains(redirectCodes, fmt.Sprint(r.StatusCode)) {
			c.add(field.NotSupported(p.at("statusCode"), r.StatusCode, redirectCodes))
		}
	}
	return r
}

func (c *compiler) rewrite(in *gwapiv1.HTTPURLRewriteFilter, p *fpath) *Rewrite {
	r := &Rewrite{}
	if in.Hostname != nil {
		hp := p.child("hostname")
		r.Hostname = c.preciseHostname(string(*in.Hostname), &hp)
	}
	if in.Path != nil {
		pp := p.child("path")
		r.Path = c.pathModifier(in.Path, &pp)
	}
	return r
}

func (c *compiler) preciseHostname(h string, p *fpath) string {
	name, why := checkHostname(h, false)
	if why != "" {
		c.add(field.Invalid(p.get(), h, why))
	}
	return name
}

func (c *compiler) pathModifier(in *gwapiv1.HTTPPathModifier, p *fpath) *PathModifier {
	pm := &PathModifier{Type: string(in.Type)}
	var value *string
	child := ""
	switch in.Type {
	case gwapiv1.FullPathHTTPPathModifier:
		value, child = in.ReplaceFullPath, "replaceFullPath"
	case gwapiv1.PrefixMatchHTTPPathModifier:
		value, child = in.ReplacePrefixMatch, "replacePrefixMatch"
	default:
		c.add(field.NotSupported(p.at("type"), string(in.Type), pathModifierTypes))
		return pm
	}
	if value == nil {
		c.add(field.Required(p.at(child), fmt.Sprintf("type %s needs %s", in.Type, child)))
		return pm
	}
	pm.Value = *value
	if why := checkRewritePath(pm.Value, in.Type == gwapiv1.PrefixMatchHTTPPathModifier); why != "" {
		c.add(field.Invalid(p.at(child), pm.Value, why))
	}
	return pm
}

func (c *compiler) policy(in *edgev1alpha1.RoutePolicy, p *fpath) Policy {
	pol := Policy{MaxRequestBodyBytes: c.d.MaxRequestBodyBytes, AccessLog: true}
	if in == nil {
		return pol
	}
	if q := in.MaxRequestBodySize; q != nil {
		// Tenants may only lower the EdgeProxy's limit (1 MiB when the EdgeProxy sets none).
		v := q.Value()
		switch {
		case v <= 0:
			c.add(field.Invalid(p.at("maxRequestBodySize"), q.String(), "must be positive"))
		case v > c.d.MaxRequestBodyBytes:
			c.add(field.Invalid(p.at("maxRequestBodySize"), q.String(),
				fmt.Sprintf("must not exceed the EdgeProxy's limit of %d bytes", c.d.MaxRequestBodyBytes)))
		default:
			pol.MaxRequestBodyBytes = v
		}
	}
	for i, s := range in.SourceRanges {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			c.add(field.Invalid(p.at("sourceRanges").Index(i), s, "must be a CIDR such as 192.0.2.0/24"))
			continue
		}
		pol.SourceRanges = append(pol.SourceRanges, pfx.Masked())
	}
	if sa := in.SessionAffinity; sa != nil {
		sp := p.child("sessionAffinity")
		out := &SessionAffinity{CookieName: "portico-affinity"}
		if sa.Type != "Cookie" {
			c.add(field.NotSupported(sp.at("type"), sa.Type, []string{"Cookie"}))
		}
		if sa.CookieName != "" {
			out.CookieName = sa.CookieName
			if !isToken(sa.CookieName) || len(sa.CookieName) > 64 {
				c.add(field.Invalid(sp.at("cookieName"), sa.CookieName, "must be a cookie name token of at most 64 characters"))
			}
		}
		if sa.TTL != nil {
			out.TTL = sa.TTL.Duration
			if out.TTL < 0 {
				c.add(field.Invalid(sp.at("ttl"), sa.TTL.Duration.String(), "must not be negative"))
			}
		}
		pol.SessionAffinity = out
	}
	if in.CORS != nil {
		cp := p.child("cors")
		pol.CORS = c.cors(in.CORS, &cp)
	}
	if in.AccessLog != nil {
		pol.AccessLog = *in.AccessLog
	}
	pol.Websocket = in.Websocket
	return pol
}

func (c *compiler) cors(in *gwapiv1.HTTPCORSFilter, p *fpath) *CORS {
	out := &CORS{MaxAge: 5}
	for i, o := range in.AllowOrigins {
		s := string(o)
		if !checkOrigin(s) {
			c.add(field.Invalid(p.at("allowOrigins").Index(i), s, `must be "*" or scheme://host[:port]`))
			continue
		}
		out.AllowOrigins = append(out.AllowOrigins, s)
	}
	if in.AllowCredentials != nil {
		out.AllowCredentials = *in.AllowCredentials
	}
	for i, m := range in.AllowMethods {
		s := string(m)
		if s != "*" && !containsMethod(s) {
			c.add(field.NotSupported(p.at("allowMethods").Index(i), s, append([]gwapiv1.HTTPMethod{"*"}, httpMethods...)))
			continue
		}
		out.AllowMethods = append(out.AllowMethods, s)
	}
	hp, ep := p.child("allowHeaders"), p.child("exposeHeaders")
	out.AllowHeaders = c.corsHeaders(in.AllowHeaders, &hp)
	out.ExposeHeaders = c.corsHeaders(in.ExposeHeaders, &ep)
	if in.MaxAge != 0 {
		out.MaxAge = in.MaxAge
		if in.MaxAge < 0 {
			c.add(field.Invalid(p.at("maxAge"), in.MaxAge, "must be positive"))
		}
	}
	return out
}

func (c *compiler) corsHeaders(in []gwapiv1.HTTPHeaderName, p *fpath) []string {
	var out []string
	for i, h := range in {
		s := string(h)
		if s != "*" {
			if !isToken(s) {
				c.add(field.Invalid(p.atIndex(i), s, "must be a valid HTTP header name"))
				continue
			}
			s = http.CanonicalHeaderKey(s)
		}
		out = append(out, s)
	}
	return out
}

// checkOrigin accepts what the Gateway API's CORSOrigin pattern does: "*" or
// http(s)://host[:port], where host may be "*" or start with "*.".
func checkOrigin(s string) bool {
	if s == "*" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	host, port, hasPort := strings.Cut(rest, ":")
	if hasPort && (port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "") {
		return false
	}
	if host == "*" {
		return true
	}
	host = strings.TrimPrefix(host, "*.")
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
