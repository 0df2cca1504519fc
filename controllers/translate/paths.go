package translate

import (
	"regexp"
	"strings"
	"unicode"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"

	"github.com/portico-dev/portico/dataplane/routing"
)

// regexMeta are the characters that make ingress-nginx read a path as a regular expression once
// a rewrite-target is set. '.' is left out: it is common in literal paths and matches itself.
const regexMeta = `^$()[]{}|?+*\`

// hasRegexMeta reports whether an Ingress path was written as a regular expression.
func hasRegexMeta(path string) bool { return strings.ContainsAny(path, regexMeta) }

// pathMatch translates an Ingress path.
//
// Literal paths follow the Ingress spec: Exact is Exact; Prefix is the Gateway API's PathPrefix,
// which already matches whole segments (/api matches /api, /api/ and /api/v1, never /apocalypse);
// ImplementationSpecific is Portico's choice, documented: a Prefix.
//
// In regex mode (use-regex, or a rewrite-target that needs it) every path is what ingress-nginx made
// of it, a case-insensitive regular expression anchored at the start, `location ~* "^<path>"`:
// RE2's (?i) reproduces the case-insensitivity and a trailing .* the open end (Portico anchors path
// regexes at both ends). Portico keeps pathType Exact exact, which ingress-nginx did not.
func pathMatch(path string, pathType *networkingv1.PathType, regexMode bool, p *field.Path) (*gwapiv1.HTTPPathMatch, *field.Error) {
	pt := networkingv1.PathTypeImplementationSpecific
	if pathType != nil {
		pt = *pathType
	}
	if path == "" && pt == networkingv1.PathTypeImplementationSpecific {
		path = "/"
	}
	if regexMode {
		expr := nginxLocationRegex(path, pt == networkingv1.PathTypeExact)
		if err := checkPathRegex(path, expr, p); err != nil {
			return nil, err
		}
		return &gwapiv1.HTTPPathMatch{Type: ptrTo(gwapiv1.PathMatchRegularExpression), Value: &expr}, nil
	}
	if why := checkLiteralPath(path); why != "" {
		return nil, field.Invalid(p, path, why)
	}
	typ := gwapiv1.PathMatchPathPrefix
	if pt == networkingv1.PathTypeExact {
		typ = gwapiv1.PathMatchExact
	}
	return &gwapiv1.HTTPPathMatch{Type: &typ, Value: &path}, nil
}

// nginxLocationRegex is the RE2 form of ingress-nginx's regex location for a path. The group
// around the path keeps a top-level '|' from escaping the anchoring; it is left out when the path
// has no '|', and so is the trailing .* when the path ends with one, to keep it readable.
func nginxLocationRegex(path string, exact bool) string {
	expr := path
	if strings.Contains(path, "|") {
		expr = "(?:" + path + ")"
	}
	if exact || strings.HasSuffix(path, ".*") {
		return "(?i)" + expr
	}
	return "(?i)" + expr + ".*"
}

func checkPathRegex(path, expr string, p *field.Path) *field.Error {
	if len(expr) > edgev1alpha1.MaxRegexLength {
		return field.TooLong(p, path, edgev1alpha1.MaxRegexLength-len(expr)+len(path))
	}
	if strings.IndexFunc(path, unicode.IsControl) >= 0 {
		return field.Invalid(p, path, "must not contain control characters")
	}
	if _, err := regexp.Compile("^(?:" + expr + ")$"); err != nil {
		return field.Invalid(p, path, "must be an RE2 regular expression (ingress-nginx used PCRE, whose lookarounds and backreferences RE2 lacks): "+err.Error())
	}
	return nil
}

// checkLiteralPath accepts what Portico's router matches literally: routing's own rule for Exact and
// PathPrefix values (absolute, URI path characters, no '//', '.' or '..' segments the proxy's
// normalization would remove), with a hint for nginx users who meant a regular expression.
func checkLiteralPath(p string) string {
	msg := routing.MatchPathProblem(p)
	if strings.HasPrefix(msg, "must only contain") {
		msg += " (set use-regex for a regular expression)"
	}
	return msg
}
