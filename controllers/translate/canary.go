package translate

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"

	"github.com/portico-dev/portico/dataplane/routing"
)

// An ingress-nginx canary is a second Ingress, marked canary: "true", with the same host and path
// as the main one and another backend. ingress-nginx sends a request to it when its header says
// so, else when its cookie says so, else by weight. Portico lays it onto the main Ingress's rule
// for that path: header and cookie rules (more header matches outrank the plain rule, and header
// rules come first among equals) and a weighted backend list. A broken canary never breaks the
// main Ingress: it is ignored, with a notice.

// canary is one canary Ingress's backend for one host and path, with how requests reach it.
type canary struct {
	ingress string
	backend backend
	// header, with headerValue or headerPattern (an RE2 match of the whole value), or else the
	// values "always" and "never".
	header, headerValue, headerPattern string
	cookie                             string
	weight, weightTotal                int
	// broken says why the canary is ignored.
	broken string
}

// canaryKey identifies the path a canary applies to.
func canaryKey(host, path string) string { return strings.ToLower(host) + "\x00" + path }

// indexCanaries returns, per host and path, the canary serving it: the oldest canary Ingress
// (then by name), since ingress-nginx allows one canary per path. Canaries of another namespace or
// class are not considered.
func indexCanaries(main *networkingv1.Ingress, class *Class, in Input, services serviceIndex) map[string][]*canary {
	candidates := make([]*networkingv1.Ingress, 0, len(in.Canaries))
	for i := range in.Canaries {
		c := &in.Canaries[i]
		if c.Namespace != main.Namespace || c.Name == main.Name || !IsCanary(c) {
			continue
		}
		if cc, _ := SelectClass(c, in.IngressClasses); cc == nil || cc.Name != class.Name {
			continue
		}
		candidates = append(candidates, c)
	}
	slices.SortFunc(candidates, func(a, b *networkingv1.Ingress) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	idx := map[string][]*canary{}
	for _, ing := range candidates {
		settings := canarySettings(ing)
		for i, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for j := range rule.HTTP.Paths {
				path := &rule.HTTP.Paths[j]
				c := settings
				c.ingress = ing.Name
				if c.broken == "" {
					bp := field.NewPath("spec", "rules").Index(i).Child("http", "paths").Index(j).Child("backend")
					b, err := resolveBackend(&path.Backend, services, ing.Namespace, bp)
					if err != nil {
						c.broken = err.Error()
					}
					c.backend = b
				}
				key := canaryKey(rule.Host, path.Path)
				idx[key] = append(idx[key], &c)
			}
		}
	}
	return idx
}

// canarySettings reads the canary annotations of a canary Ingress.
func canarySettings(ing *networkingv1.Ingress) canary {
	get := func(name string) string { return strings.TrimSpace(ing.Annotations[annotationPrefix+name]) }
	c := canary{weightTotal: 100}
	broken := func(name, why string) canary {
		return canary{broken: fmt.Sprintf("%s: %s", annotationPath(name), why)}
	}
	if v := get("canary-weight-total"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return broken("canary-weight-total", "must be a whole number between 1 and 1000000")
		}
		c.weightTotal = n
	}
	if v := get("canary-weight"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > c.weightTotal {
			return broken("canary-weight", fmt.Sprintf("must be a whole number between 0 and %d", c.weightTotal))
		}
		c.weight = n
	}
	if c.header = get("canary-by-header"); c.header != "" {
		if !routing.IsToken(c.header) {
			return broken("canary-by-header", "must be a header name")
		}
		c.headerValue = get("canary-by-header-value")
		if strings.IndexFunc(c.headerValue, unicode.IsControl) >= 0 {
			return broken("canary-by-header-value", "must not contain control characters")
		}
		if pattern := get("canary-by-header-pattern"); pattern != "" && c.headerValue == "" {
			// ingress-nginx matched the pattern anywhere in the value; Portico matches whole values.
			c.headerPattern = ".*(?:" + pattern + ").*"
			_, err := regexp.Compile("^(?:" + c.headerPattern + ")$")
			if err != nil || len(c.headerPattern) > edgev1alpha1.MaxRegexLength {
				return broken("canary-by-header-pattern", fmt.Sprintf("must be an RE2 regular expression of at most %d characters", edgev1alpha1.MaxRegexLength-8))
			}
		}
	}
	if c.cookie = get("canary-by-cookie"); c.cookie != "" && !routing.IsToken(c.cookie) {
		return broken("canary-by-cookie", "must be a cookie name")
	}
	return c
}

// canaryFor returns the canary for one of the main Ingress's paths, reporting canaries ignored.
func (t *ingressTranslator) canaryFor(host, path string) *canary {
	list := t.canaries[canaryKey(host, path)]
	if len(list) == 0 {
		return nil
	}
	first := list[0]
	for _, other := range list[1:] {
		if other.ingress != first.ingress {
			t.canaryNotice(fmt.Sprintf("canary Ingress %s is ignored for %s%s: %s already is its canary, and ingress-nginx allows one",
				other.ingress, host, path, first.ingress))
		}
	}
	if first.broken != "" {
		t.canaryNotice(fmt.Sprintf("canary Ingress %s is ignored: %s", first.ingress, first.broken))
		return nil
	}
	return first
}

func (t *ingressTranslator) canaryNotice(msg string) {
	t.notices.add(Notice{Annotation: annotationPrefix + "canary", Behaviour: Ignored, Message: msg})
}

// canaryVariants are the (match, backends) pairs a path with a canary becomes, in precedence
// order: header rules, cookie rules, then the path itself with weighted backends.
func canaryVariants(c *canary, main backend) []variant {
	var out []variant
	headerMatch := func(name, value string, regex bool) gwapiv1.HTTPHeaderMatch {
		typ := gwapiv1.HeaderMatchExact
		if regex {
			typ = gwapiv1.HeaderMatchRegularExpression
		}
		return gwapiv1.HTTPHeaderMatch{Type: &typ, Name: gwapiv1.HTTPHeaderName(name), Value: value}
	}
	onlyCanary := []gwapiv1.HTTPBackendRef{c.backend.ref(nil)}
	onlyMain := []gwapiv1.HTTPBackendRef{main.ref(nil)}
	if c.header != "" {
		switch {
		case c.headerValue != "":
			out = append(out, variant{tier: tierHeader, header: ptrTo(headerMatch(c.header, c.headerValue, false)), backends: onlyCanary})
		case c.headerPattern != "":
			out = append(out, variant{tier: tierHeader, header: ptrTo(headerMatch(c.header, c.headerPattern, true)), backends: onlyCanary})
		default:
			out = append(out,
				variant{tier: tierHeader, header: ptrTo(headerMatch(c.header, "always", false)), backends: onlyCanary},
				variant{tier: tierHeader, header: ptrTo(headerMatch(c.header, "never", false)), backends: onlyMain})
		}
	}
	if c.cookie != "" {
		cookie := func(v string) *gwapiv1.HTTPHeaderMatch {
			// The cookie among others in one Cookie header, or in repeated ones joined by ", ".
			re := `(?:.*[;,]\s*)?` + regexp.QuoteMeta(c.cookie) + `=` + v + `(?:\s*[;,].*)?`
			return ptrTo(headerMatch("Cookie", re, true))
		}
		out = append(out,
			variant{tier: tierCookie, header: cookie("always"), backends: onlyCanary},
			variant{tier: tierCookie, header: cookie("never"), backends: onlyMain})
	}
	base := variant{tier: tierPlain, backends: onlyMain}
	switch {
	case c.weight >= c.weightTotal:
		base.backends = onlyCanary
	case c.weight > 0:
		base.backends = []gwapiv1.HTTPBackendRef{
			main.ref(ptrTo(int32(c.weightTotal - c.weight))),
			c.backend.ref(ptrTo(int32(c.weight))),
		}
	}
	return append(out, base)
}
