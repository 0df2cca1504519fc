package adversarial

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/dataplane/routing"
)

// marker is in every generated string: it must never turn up anywhere a field of the object did
// not put it (a value of one field in another, an annotation's value in a route).
const marker = "zq9"

// nasty are the fragments generated strings are made of: configuration-language breakers
// (newlines, NUL, braces, quotes, semicolons, comment starts), confusable and invisible Unicode,
// encoded separators, and ingress-nginx snippet syntax.
var nasty = []string{
	"\n", "\r\n", "\x00", "{", "}", "{{", "}}", "${x}", `"`, "'", "`", ";", "#", "\\", "\t", " ",
	"а", "ο", "ｅ", "．", "／", "\u200b", "\u202e", "\ufeff", "ı", "ß", "%0a", "%00", "%2f", "..", "/", ".",
	"*", "?", "&", "=", ":", "@", "$", "|", "<", ">", "(", ")", "[", "]",
	"proxy_pass http://evil;", "lua_code", "}\nserver {", "a", "api", "v1", "-", "_", "example",
}

// annotationMarker is in every generated annotation value (and in no other field).
const annotationMarker = "qx7"

// gen generates objects; mild objects (one in two) use no control characters, so that more of
// them are accepted and their literal meaning is checked.
type gen struct {
	r    *rand.Rand
	mild bool
}

func (g *gen) fragment() string {
	for {
		f := nasty[g.r.IntN(len(nasty))]
		if !g.mild || !strings.ContainsAny(f, "\n\r\t\x00") {
			return f
		}
	}
}

// str is a short nasty string holding the marker; one in 50 is over 10 KB.
func (g *gen) str() string { return g.marked(marker) }

func (g *gen) marked(m string) string {
	var b strings.Builder
	if g.r.IntN(50) == 0 {
		for b.Len() < 10<<10 {
			b.WriteString(g.fragment())
		}
	}
	for range 1 + g.r.IntN(6) {
		b.WriteString(g.fragment())
	}
	s := b.String()
	i := g.r.IntN(len(s) + 1)
	for !utf8.RuneStart(s[min(i, len(s)-1)]) && i < len(s) { // valid UTF-8: JSON would replace a split rune
		i++
	}
	return s[:i] + m + s[i:]
}

// host is either a valid-looking hostname under example.com or one with a nasty label.
func (g *gen) host() string {
	switch g.r.IntN(4) {
	case 0:
		return fmt.Sprintf("h%d.example.com", g.r.IntN(1000))
	case 1:
		return "*.example.com"
	default:
		return g.str() + ".example.com"
	}
}

func (g *gen) path() string {
	if g.r.IntN(4) == 0 {
		return fmt.Sprintf("/p%d", g.r.IntN(100))
	}
	return "/" + g.str()
}

// annotations: unknown keys, known ingress-nginx ones (snippets among them) with nasty values.
func (g *gen) annotations() map[string]string {
	keys := []string{"example.com/" + marker, "nginx.ingress.kubernetes.io/" + marker, "nginx.ingress.kubernetes.io/configuration-snippet",
		"nginx.ingress.kubernetes.io/server-snippet", "nginx.ingress.kubernetes.io/auth-url", "nginx.ingress.kubernetes.io/permanent-redirect",
		"nginx.ingress.kubernetes.io/upstream-vhost", "nginx.ingress.kubernetes.io/app-root", "kubernetes.io/ingress.class"}
	out := map[string]string{}
	for range g.r.IntN(4) {
		out[keys[g.r.IntN(len(keys))]] = g.marked(annotationMarker)
	}
	return out
}

func (g *gen) tenantRoute(i int) *edgev1alpha1.TenantRoute {
	tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "fuzz", Name: fmt.Sprintf("tr-%d", i), Annotations: g.annotations()},
		Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: "fuzz"}}
	for range 1 + g.r.IntN(2) {
		tr.Spec.Hostnames = append(tr.Spec.Hostnames, edgev1alpha1.Hostname(g.host()))
	}
	for range 1 + g.r.IntN(2) {
		pt := []gwapiv1.PathMatchType{gwapiv1.PathMatchExact, gwapiv1.PathMatchPathPrefix, gwapiv1.PathMatchRegularExpression}[g.r.IntN(3)]
		rule := edgev1alpha1.TenantRouteRule{
			Matches: []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{Type: ptr.To(pt), Value: ptr.To(g.path())},
				Headers: []gwapiv1.HTTPHeaderMatch{{Name: gwapiv1.HTTPHeaderName("X-" + marker), Value: g.str()}}}},
			Filters: []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwapiv1.HTTPHeaderFilter{Set: []gwapiv1.HTTPHeader{{Name: "X-Set", Value: g.str()}}}}},
			BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
				Name: "web", Port: ptr.To(gwapiv1.PortNumber(80))}}}},
		}
		tr.Spec.Rules = append(tr.Spec.Rules, rule)
	}
	return tr
}

func (g *gen) ingress(i int) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "fuzz", Name: fmt.Sprintf("ing-%d", i), Annotations: g.annotations()},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("fuzz")}}
	for range 1 + g.r.IntN(2) {
		rule := networkingv1.IngressRule{Host: g.host(), IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
		for range 1 + g.r.IntN(2) {
			pt := []networkingv1.PathType{networkingv1.PathTypeExact, networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific}[g.r.IntN(3)]
			rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: g.path(), PathType: ptr.To(pt),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web",
					Port: networkingv1.ServiceBackendPort{Number: 80}}}})
		}
		ing.Spec.Rules = append(ing.Spec.Rules, rule)
	}
	return ing
}

// checkCompiled: a TenantRoute that compiles means exactly what it says: its hostnames (lower-
// cased), one compiled rule per rule, each path, header match and header value as written, no
// other backend. It returns what is wrong, or "".
func checkCompiled(tr *edgev1alpha1.TenantRoute, route *routing.Route) string {
	if len(route.Hostnames) != len(tr.Spec.Hostnames) {
		return fmt.Sprintf("%d hostnames from %d", len(route.Hostnames), len(tr.Spec.Hostnames))
	}
	for i, h := range route.Hostnames {
		if h != strings.ToLower(strings.TrimSuffix(string(tr.Spec.Hostnames[i]), ".")) {
			return fmt.Sprintf("hostname %q from %q", h, tr.Spec.Hostnames[i])
		}
	}
	if len(route.Rules) != len(tr.Spec.Rules) {
		return fmt.Sprintf("%d rules from %d", len(route.Rules), len(tr.Spec.Rules))
	}
	for i, r := range route.Rules {
		in := tr.Spec.Rules[i]
		if len(r.Matches) != len(in.Matches) {
			return fmt.Sprintf("rule %d: %d matches from %d", i, len(r.Matches), len(in.Matches))
		}
		for j, m := range r.Matches {
			want := *in.Matches[j].Path.Value
			if m.PathType == gwapiv1.PathMatchPathPrefix && want != "/" {
				want = strings.TrimSuffix(want, "/")
			}
			if m.Path != want {
				return fmt.Sprintf("rule %d match %d: path %q from %q", i, j, m.Path, *in.Matches[j].Path.Value)
			}
			if len(m.Headers) != 1 || m.Headers[0].Value != in.Matches[j].Headers[0].Value {
				return fmt.Sprintf("rule %d match %d: headers %+v from %+v", i, j, m.Headers, in.Matches[j].Headers)
			}
		}
		if r.RequestHeaders == nil || len(r.RequestHeaders.Set) != 1 || r.RequestHeaders.Set[0].Value != in.Filters[0].RequestHeaderModifier.Set[0].Value ||
			len(r.RequestHeaders.Add)+len(r.RequestHeaders.Remove) != 0 {
			return fmt.Sprintf("rule %d: request headers %+v", i, r.RequestHeaders)
		}
		if len(r.Backends) != 1 || r.Backends[0].Key != (routing.BackendKey{Namespace: tr.Namespace, Name: "web", Port: 80}) || r.Redirect != nil || r.Rewrite != nil {
			return fmt.Sprintf("rule %d: backends %+v redirect %v rewrite %v", i, r.Backends, r.Redirect, r.Rewrite)
		}
	}
	return ""
}

// checkTranslated: the TenantRoutes of an Ingress hold exactly its hosts and paths, and no
// annotation's value (the annotations generated here carry nothing a route may use verbatim).
func checkTranslated(ing *networkingv1.Ingress, routes []*edgev1alpha1.TenantRoute) string {
	hosts, paths := map[string]bool{}, map[string]bool{}
	for _, r := range ing.Spec.Rules {
		hosts[strings.ToLower(r.Host)] = true
		for _, p := range r.HTTP.Paths {
			paths[p.Path] = true
		}
	}
	seenHosts := map[string]bool{}
	for _, tr := range routes {
		for _, h := range tr.Spec.Hostnames {
			if !hosts[strings.ToLower(string(h))] {
				return fmt.Sprintf("route %s: hostname %q not in the Ingress", tr.Name, h)
			}
			seenHosts[strings.ToLower(string(h))] = true
		}
		for _, rule := range tr.Spec.Rules {
			for _, m := range rule.Matches {
				if m.Path != nil && m.Path.Value != nil && !paths[*m.Path.Value] && !paths[*m.Path.Value+"/"] && !paths[strings.TrimSuffix(*m.Path.Value, "/")] {
					return fmt.Sprintf("route %s: path %q not in the Ingress", tr.Name, *m.Path.Value)
				}
			}
			for _, b := range rule.BackendRefs {
				if b.Name != "web" || b.Namespace != nil && string(*b.Namespace) != ing.Namespace {
					return fmt.Sprintf("route %s: backend %+v", tr.Name, b.BackendObjectReference)
				}
			}
		}
		spec, _ := json.Marshal(tr.Spec)
		if strings.Contains(string(spec), annotationMarker) {
			return fmt.Sprintf("route %s: an annotation's value in its spec: %s", tr.Name, spec)
		}
	}
	if len(seenHosts) != len(hosts) {
		return fmt.Sprintf("%d of %d hosts translated", len(seenHosts), len(hosts))
	}
	return ""
}

// literal is what a TenantRoute says in the generated fields (the API server adds defaults to the
// others: backend group and kind, header match type).
func literal(tr *edgev1alpha1.TenantRoute) []byte {
	type rule struct{ Paths, Headers, Set []string }
	var out struct {
		Hosts []edgev1alpha1.Hostname
		Rules []rule
	}
	out.Hosts = tr.Spec.Hostnames
	for _, r := range tr.Spec.Rules {
		var x rule
		for _, m := range r.Matches {
			x.Paths = append(x.Paths, string(*m.Path.Type)+" "+*m.Path.Value)
			for _, h := range m.Headers {
				x.Headers = append(x.Headers, string(h.Name)+": "+h.Value)
			}
		}
		for _, f := range r.Filters {
			for _, h := range f.RequestHeaderModifier.Set {
				x.Set = append(x.Set, string(h.Name)+": "+h.Value)
			}
		}
		out.Rules = append(out.Rules, x)
	}
	b, _ := json.Marshal(out)
	return b
}

// TestTenancyInjection: 10,000 generated TenantRoutes and Ingresses (seed 13) with newlines, NUL,
// braces, quotes, confusable Unicode, 10 KB strings and unknown annotations in hostnames, paths,
// header values and annotation values. Every one goes through the pure functions (translate for
// Ingresses, routing.Compile for TenantRoutes, both for Ingresses translated): each is refused with
// field errors or means exactly what it says; 0 panics. Every 20th (500) is also sent to the real
// API server (server-side dry run: validation, OpenAPI schema and CEL run, nothing is stored and
// no controller reacts) for its verdict; an object the API server accepts is stored as sent.
func TestTenancyInjection(t *testing.T) {
	const total, every = 10000, 20
	g := &gen{r: rand.New(rand.NewPCG(13, 13))}
	class := networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "fuzz"},
		Spec: networkingv1.IngressClassSpec{Controller: edgev1alpha1.IngressControllerName}}
	var panics, refused, compiled, trRefused, trCompiled, ingRefused, ingTranslated, ingCompileRefused int
	var sample []client.Object
	try := func(what string, f func()) {
		defer func() {
			if r := recover(); r != nil {
				panics++
				t.Errorf("%s: panic: %v", what, r)
			}
		}()
		f()
	}
	for i := range total {
		g.mild = i%4 < 2
		if i%2 == 0 {
			tr := g.tenantRoute(i)
			if i%every == 0 {
				sample = append(sample, tr.DeepCopy())
			}
			try(tr.Name, func() {
				route, errs := routing.Compile(tr, routing.Defaults{})
				if len(errs) > 0 {
					trRefused++
					return
				}
				trCompiled++
				if why := checkCompiled(tr, route); why != "" {
					t.Errorf("%s: %s", tr.Name, why)
				}
			})
			continue
		}
		ing := g.ingress(i)
		if i%every == 1 {
			sample = append(sample, ing.DeepCopy())
		}
		try(ing.Name, func() {
			res := translate.Ingress(translate.Input{Ingress: ing, IngressClasses: []networkingv1.IngressClass{class}})
			if res.Class == nil {
				t.Errorf("%s: class not selected", ing.Name)
				return
			}
			if len(res.Errors) > 0 {
				ingRefused++
				return
			}
			ingTranslated++
			if why := checkTranslated(ing, res.Routes); why != "" {
				t.Errorf("%s: %s", ing.Name, why)
			}
			for _, tr := range res.Routes {
				if _, errs := routing.Compile(tr, routing.Defaults{}); len(errs) > 0 {
					ingCompileRefused++
					return
				}
			}
		})
	}
	refused, compiled = trRefused+ingRefused, trCompiled+ingTranslated
	t.Logf("%d objects (seed 13): TenantRoutes %d compiled / %d refused by Compile; Ingresses %d translated (%d of them refused by Compile) / %d refused by translate; %d panics",
		total, trCompiled, trRefused, ingTranslated, ingCompileRefused, ingRefused, panics)
	if compiled == 0 || refused == 0 {
		t.Errorf("the generator is off: %d accepted, %d refused", compiled, refused)
	}

	cl := tenancyCluster(t)
	cl.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fuzz"}})
	var apiAccepted, apiRefused, apiChanged, accTR, accIng atomic.Int64
	work := make(chan client.Object)
	var wg sync.WaitGroup
	begin := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				sent := o.DeepCopyObject().(client.Object)
				err := cl.fast.Create(context.Background(), o, client.DryRunAll)
				if err != nil {
					apiRefused.Add(1)
					continue
				}
				apiAccepted.Add(1)
				var a, b []byte
				switch x := o.(type) {
				case *edgev1alpha1.TenantRoute:
					accTR.Add(1)
					a, b = literal(x), literal(sent.(*edgev1alpha1.TenantRoute))
				case *networkingv1.Ingress:
					accIng.Add(1)
					a, _ = json.Marshal(x.Spec.Rules)
					b, _ = json.Marshal(sent.(*networkingv1.Ingress).Spec.Rules)
				}
				if string(a) != string(b) {
					apiChanged.Add(1)
					t.Errorf("%s: stored differently from what was sent:\n%.300s\n%.300s", o.GetName(), a, b)
				}
			}
		}()
	}
	for _, o := range sample {
		work <- o
	}
	close(work)
	wg.Wait()
	t.Logf("API server (dry run, %d of them, %v): %d accepted (%d TenantRoutes, %d Ingresses), %d refused by schema/CEL/validation; %d stored differently from what was sent",
		len(sample), time.Since(begin).Round(time.Millisecond), apiAccepted.Load(), accTR.Load(), accIng.Load(), apiRefused.Load(), apiChanged.Load())
}
