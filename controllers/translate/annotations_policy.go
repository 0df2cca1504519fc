package translate

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"

	"github.com/portico-dev/portico/dataplane/routing"
)

// Annotations that become the route's policy, timeouts and retries, and those refused for safety.

// nginxSize is nginx's size syntax: bytes, or k, m, g (powers of 1024).
var nginxSize = regexp.MustCompile(`^([0-9]{1,15})([kKmMgG]?)$`)

func parseBodySize(p *annotationParser, value string) {
	m := nginxSize.FindStringSubmatch(strings.TrimSpace(value))
	if m == nil {
		p.invalid(value, "must be a size such as 8m, 512k, 1g or 1048576 (bytes)")
		return
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(m[2])]
	limit := p.limits.maxBodyBytes
	limitText := resource.NewQuantity(limit, resource.BinarySI).String()
	switch {
	case n == 0:
		p.notice(Approximated, fmt.Sprintf("0 means no limit in ingress-nginx; Portico applies the EdgeProxy's limit of %s", limitText))
	case n > limit>>shift:
		p.notice(Approximated, fmt.Sprintf("%s is above the EdgeProxy's limit of %s; Portico applies that limit", strings.TrimSpace(value), limitText))
	default:
		p.cfg.policy.MaxRequestBodySize = resource.NewQuantity(n<<shift, resource.BinarySI)
	}
}

// maxSourceRanges is spec.policy.sourceRanges' MaxItems.
const maxSourceRanges = 128

func parseSourceRange(p *annotationParser, value string) {
	if p.current == "whitelist-source-range" {
		if v, ok := p.value("allowlist-source-range"); ok && strings.TrimSpace(v) != "" {
			return // the allowlist name wins, as in ingress-nginx
		}
	}
	var ranges []string
	for _, s := range splitList(value) {
		prefix, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				p.invalid(value, fmt.Sprintf("%q is neither a CIDR nor an IP address", s))
				return
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		if c := prefix.Masked().String(); !slices.Contains(ranges, c) {
			ranges = append(ranges, c)
		}
	}
	if len(ranges) > maxSourceRanges {
		p.invalid(value, fmt.Sprintf("must hold at most %d ranges", maxSourceRanges))
		return
	}
	p.cfg.policy.SourceRanges = ranges
}

// ingress-nginx's CORS defaults.
const (
	corsDefaultMethods = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
	corsDefaultHeaders = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
	corsDefaultMaxAge  = 1728000
	// maxCORSItems is the Gateway API's MaxItems for origins and headers.
	maxCORSItems = 64
)

var corsMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func parseCORS(p *annotationParser, value string) {
	on, ok := p.boolValue(value)
	if !ok || !on {
		return
	}
	cors := &gwapiv1.HTTPCORSFilter{MaxAge: corsDefaultMaxAge}
	valid := true
	origins := splitList(p.valueOr("cors-allow-origin", "*"))
	if slices.Contains(origins, "*") {
		origins = []string{"*"}
	}
	for _, o := range origins {
		if !routing.ValidCORSOrigin(o) {
			p.errs = append(p.errs, invalidAt("cors-allow-origin", o, "must be * or http(s)://host[:port], the host may start with *."))
			valid = false
		}
		if !slices.Contains(cors.AllowOrigins, gwapiv1.CORSOrigin(o)) {
			cors.AllowOrigins = append(cors.AllowOrigins, gwapiv1.CORSOrigin(o))
		}
	}
	if len(cors.AllowOrigins) > maxCORSItems {
		p.errs = append(p.errs, invalidAt("cors-allow-origin", p.valueOr("cors-allow-origin", "*"), fmt.Sprintf("must list at most %d origins", maxCORSItems)))
		valid = false
	}
	for _, m := range splitList(p.valueOr("cors-allow-methods", corsDefaultMethods)) {
		m = strings.ToUpper(m)
		switch {
		case !slices.Contains(corsMethods, m):
			p.errs = append(p.errs, invalidAt("cors-allow-methods", m, "must be HTTP methods ("+strings.Join(corsMethods, ", ")+")"))
			valid = false
		case !slices.Contains(cors.AllowMethods, gwapiv1.HTTPMethodWithWildcard(m)):
			cors.AllowMethods = append(cors.AllowMethods, gwapiv1.HTTPMethodWithWildcard(m))
		}
	}
	var okHeaders bool
	cors.AllowHeaders, okHeaders = p.corsHeaders("cors-allow-headers", corsDefaultHeaders, false)
	valid = valid && okHeaders
	cors.ExposeHeaders, okHeaders = p.corsHeaders("cors-expose-headers", "", true)
	valid = valid && okHeaders
	credentials := true
	if raw, ok := p.value("cors-allow-credentials"); ok {
		b, err := parseBool(raw)
		if err != nil {
			p.errs = append(p.errs, invalidAt("cors-allow-credentials", raw, `must be "true" or "false"`))
			valid = false
		}
		credentials = b
	}
	// With "*", ingress-nginx answered "Access-Control-Allow-Origin: *" and browsers refused
	// credentials; the Gateway API would echo the origin instead and let every site send them.
	if origins[0] == "*" {
		credentials = false
	}
	cors.AllowCredentials = &credentials
	if raw, ok := p.value("cors-max-age"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
		if err != nil || n < 1 {
			p.errs = append(p.errs, invalidAt("cors-max-age", raw, "must be a positive number of seconds"))
			valid = false
		}
		cors.MaxAge = int32(n)
	}
	if valid {
		p.cfg.policy.CORS = cors
	}
}

func (p *annotationParser) valueOr(name, def string) string {
	if v, ok := p.value(name); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}

func (p *annotationParser) corsHeaders(name, def string, wildcard bool) ([]gwapiv1.HTTPHeaderName, bool) {
	var out []gwapiv1.HTTPHeaderName
	list := splitList(p.valueOr(name, def))
	if len(list) > maxCORSItems {
		p.errs = append(p.errs, invalidAt(name, p.valueOr(name, def), fmt.Sprintf("must list at most %d headers", maxCORSItems)))
		return nil, false
	}
	for _, h := range list {
		if !(wildcard && h == "*") && !routing.IsToken(h) {
			p.errs = append(p.errs, invalidAt(name, h, "must be header names"))
			return nil, false
		}
		dup := slices.ContainsFunc(out, func(o gwapiv1.HTTPHeaderName) bool { return strings.EqualFold(string(o), h) })
		if !dup {
			out = append(out, gwapiv1.HTTPHeaderName(h))
		}
	}
	if wildcard && len(out) > 1 && slices.Contains(out, "*") {
		out = []gwapiv1.HTTPHeaderName{"*"} // the Gateway API allows "*" only alone; it covers the rest
	}
	return out, true
}

// defaultAffinityCookie is ingress-nginx's affinity cookie name.
const defaultAffinityCookie = "INGRESSCOOKIE"

func parseAffinity(p *annotationParser, value string) {
	if strings.TrimSpace(value) != "cookie" {
		p.notice(Ignored, fmt.Sprintf("only cookie affinity exists; %q is ignored, as in ingress-nginx", value))
		return
	}
	sa := &edgev1alpha1.SessionAffinity{Type: "Cookie", CookieName: defaultAffinityCookie}
	if name, ok := p.value("session-cookie-name"); ok && strings.TrimSpace(name) != "" {
		name = strings.TrimSpace(name)
		if !routing.IsToken(name) || len(name) > 64 {
			p.errs = append(p.errs, invalidAt("session-cookie-name", name, "must be a cookie name (a token of at most 64 characters)"))
			return
		}
		sa.CookieName = name
	}
	for _, name := range []string{"session-cookie-max-age", "session-cookie-expires"} {
		raw, ok := p.value(name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || n < 1 || n > maxSeconds {
			p.errs = append(p.errs, invalidAt(name, raw, fmt.Sprintf("must be a whole number of seconds between 1 and %d", maxSeconds)))
			return
		}
		sa.TTL = &metav1.Duration{Duration: time.Duration(n) * time.Second}
		break
	}
	p.cfg.policy.SessionAffinity = sa
}

func parseAccessLog(p *annotationParser, value string) {
	if on, ok := p.boolValue(value); ok && !on {
		p.cfg.policy.AccessLog = ptrTo(false)
	}
}

func parseReadTimeout(p *annotationParser, value string) {
	secs, ok := p.secondsValue(value)
	if !ok {
		return
	}
	t := &gwapiv1.HTTPRouteTimeouts{BackendRequest: ptrTo(gatewayDuration(secs))}
	msg := fmt.Sprintf("Portico waits up to %ds for the backend's response headers (ingress-nginx measured the time between two reads)", secs)
	if d := time.Duration(secs) * time.Second; d > p.limits.requestTimeout {
		t.Request = t.BackendRequest
		msg += fmt.Sprintf(" and allows the whole request %ds, more than the EdgeProxy's %ds", secs, int64(p.limits.requestTimeout/time.Second))
	}
	p.cfg.timeouts = t
	p.notice(Approximated, msg)
}

// maxRetries is retry.attempts' maximum.
const maxRetries = 5

func parseNextUpstream(p *annotationParser, value string) {
	if nextUpstreamOff(value) {
		p.cfg.retry = &edgev1alpha1.RetryPolicy{Attempts: 0}
		p.notice(Approximated, "off: Portico does not retry")
		return
	}
	p.notice(Approximated, fmt.Sprintf("Portico retries only requests whose connection to the backend failed, and only idempotent ones, not on %q", strings.TrimSpace(value)))
}

func nextUpstreamOff(v string) bool { return slices.Contains(strings.Fields(v), "off") }

func parseNextUpstreamTries(p *annotationParser, value string) {
	if v, ok := p.value("proxy-next-upstream"); ok && nextUpstreamOff(v) {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n < 0 {
		p.invalid(value, "must be a whole number of tries")
		return
	}
	attempts := n - 1
	if n == 0 || attempts > maxRetries {
		attempts = maxRetries
	}
	attempts = max(attempts, 0)
	p.cfg.retry = &edgev1alpha1.RetryPolicy{Attempts: int32(attempts)}
	p.notice(Approximated, fmt.Sprintf("%d retries (at most %d), only when the connection to the backend failed and only for idempotent requests", attempts, maxRetries))
}

// backendProtocols are the values ingress-nginx accepts.
var backendProtocols = []string{"HTTP", "HTTPS", "GRPC", "GRPCS", "H2C", "AJP", "FCGI"}

func parseBackendProtocol(p *annotationParser, value string) {
	v := strings.ToUpper(strings.TrimSpace(value))
	switch {
	case v == "" || v == "HTTP":
	case slices.Contains(backendProtocols, v):
		p.refuse(fmt.Sprintf("backends speaking %s are not supported: Portico speaks HTTP/1.1 in clear text to backends, so every request would fail", v))
	default:
		p.invalid(value, "must be one of "+strings.Join(backendProtocols, ", "))
	}
}

func parseWAF(p *annotationParser, value string) {
	if on, ok := p.boolValue(value); ok && on {
		p.refuse(modSecurityText)
	}
}

// parseCanaryFlag only checks the value: a canary Ingress never reaches the annotation parser.
func parseCanaryFlag(p *annotationParser, value string) { p.boolValue(value) }
