package translate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// TestGoldenCasesCoverAnnotations keeps the golden cases honest: every annotation the translation
// reads itself (those with a parse function, and those read along with them) appears in one.
func TestGoldenCasesCoverAnnotations(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "ingress", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	text := all.String()
	for _, a := range nginxAnnotations {
		if a.parse == nil && a.behaviour != Exact {
			continue // reported by the generic notice or error, which a few cases show
		}
		if !regexp.MustCompile(`(?m)` + regexp.QuoteMeta(annotationPrefix+a.name) + `:`).MatchString(text) {
			t.Errorf("no golden case uses %s%s", annotationPrefix, a.name)
		}
	}
}

// TestIngressIsDeterministic translates the same input repeatedly: map iteration must never leak
// into names, rule order or notices.
func TestIngressIsDeterministic(t *testing.T) {
	c := loadCase(t, filepath.Join("testdata", "ingress", "misc-annotations.in.yaml"))
	in := Input{Ingress: &c.ingresses[0], IngressClasses: c.classes, Services: c.services}
	first := Ingress(in)
	for range 20 {
		if diff := cmp.Diff(first, Ingress(in)); diff != "" {
			t.Fatalf("translation differs between runs:\n%s", diff)
		}
	}
}

func TestIngressNotOurs(t *testing.T) {
	if res := Ingress(Input{}); res.Class != nil || res.Routes != nil {
		t.Errorf("nil Ingress: got %+v", res)
	}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b"}}
	if res := Ingress(Input{Ingress: ing}); res.Class != nil || res.Routes != nil || res.Notices != nil {
		t.Errorf("no class in the cluster: got %+v", res)
	}
}

func TestSourceAndLabels(t *testing.T) {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app", Generation: 7}}
	want := &edgev1alpha1.RouteSource{Group: "networking.k8s.io", Kind: "Ingress", Name: "web", ObservedGeneration: 7}
	if diff := cmp.Diff(want, Source(ing)); diff != "" {
		t.Errorf("Source (-want +got):\n%s", diff)
	}
	long := strings.Repeat("a", 100)
	labels := SourceLabels(long)
	if v := labels[edgev1alpha1.LabelSourceName]; len(v) > 63 || !strings.HasPrefix(v, "aaaa") {
		t.Errorf("label value %q does not fit a label", v)
	}
}

func TestSelectClass(t *testing.T) {
	ours := func(name string, mutate func(*networkingv1.IngressClass)) networkingv1.IngressClass {
		c := networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: edgev1alpha1.IngressControllerName}}
		if mutate != nil {
			mutate(&c)
		}
		return c
	}
	isDefault := func(at int) func(*networkingv1.IngressClass) {
		return func(c *networkingv1.IngressClass) {
			c.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
			c.CreationTimestamp = metav1.Unix(int64(at), 0)
		}
	}
	namespaced := func(c *networkingv1.IngressClass) {
		group := "edge.portico.dev"
		scope := networkingv1.IngressClassParametersReferenceScopeNamespace
		c.Spec.Parameters = &networkingv1.IngressClassParametersReference{APIGroup: &group, Kind: "EdgeProxy", Name: "x", Scope: &scope}
	}
	noClass := &networkingv1.Ingress{}
	tests := []struct {
		name    string
		classes []networkingv1.IngressClass
		want    *Class
		wantErr string
	}{
		{name: "no default", classes: []networkingv1.IngressClass{ours("a", nil)}},
		{name: "one default", classes: []networkingv1.IngressClass{ours("a", nil), ours("b", isDefault(1))}, want: &Class{Name: "b", EdgeProxy: "b"}},
		{name: "newest default wins", classes: []networkingv1.IngressClass{ours("a", isDefault(2)), ours("b", isDefault(1))}, want: &Class{Name: "a", EdgeProxy: "a"}},
		{name: "same age: first by name", classes: []networkingv1.IngressClass{ours("b", isDefault(1)), ours("a", isDefault(1))}, want: &Class{Name: "a", EdgeProxy: "a"}},
		{name: "namespaced parameters", classes: []networkingv1.IngressClass{ours("a", func(c *networkingv1.IngressClass) { isDefault(1)(c); namespaced(c) })},
			want: &Class{Name: "a"}, wantErr: "parameters.scope must be Cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectClass(noClass, tt.classes)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("class (-want +got):\n%s", diff)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNames(t *testing.T) {
	if got := RouteName("web"); got != "ingress-web" {
		t.Errorf("RouteName(web) = %q", got)
	}
	long := strings.Repeat("a", 250) + ".example"
	got := RouteName(long)
	if len(got) != maxObjectName || got == RouteName(long+"x") {
		t.Errorf("RouteName of a long name: %q (%d), must be %d long and unique", got, len(got), maxObjectName)
	}
	if got := RouteName(strings.Repeat("a", 233) + "." + strings.Repeat("b", 19)); strings.Contains(got, ".-") {
		t.Errorf("a shortened name must not end a label with a dot: %q", got)
	}
	if got := extraRouteName("web", "*.example.com"); got != "ingress-web-wildcard.example.com" {
		t.Errorf("extraRouteName = %q", got)
	}
	if got := chunkRouteName("ingress-web", 2); got != "ingress-web-3" {
		t.Errorf("chunkRouteName = %q", got)
	}
	n := ruleNamer{}
	for _, want := range []string{"web-80", "web-80-2", "web-80-3"} {
		if got := n.name("web-80"); got != want {
			t.Errorf("ruleNamer = %q, want %q", got, want)
		}
	}
	if got := n.name("web-80-2"); got != "web-80-2-2" {
		t.Errorf("ruleNamer must not reuse a name handed out: %q", got)
	}
}

func TestNginxSubstitution(t *testing.T) {
	tests := []struct{ in, want, why string }{
		{in: "/$2", want: "/${2}"},
		{in: "/v1/$1abc", want: "/v1/${1}abc"},
		{in: "/${1}/x", want: "/${1}/x"},
		{in: "/static", want: "/static"},
		{in: "/$0", why: "capture groups"},
		{in: "/$host", why: "capture groups"},
		{in: "/end$", why: "capture groups"},
		{in: "$1", why: "starting with '/'"},
		{in: "/a?b=$1", why: "query"},
		{in: "/a b", why: "whitespace"},
	}
	for _, tt := range tests {
		got, _, why := nginxSubstitution(tt.in)
		if got != tt.want || !strings.Contains(why, tt.why) || (tt.why == "") != (why == "") {
			t.Errorf("nginxSubstitution(%q) = %q, %q; want %q, %q", tt.in, got, why, tt.want, tt.why)
		}
	}
}

func TestNginxLocationRegex(t *testing.T) {
	tests := []struct {
		path  string
		exact bool
		want  string
		match []string
		miss  []string
	}{
		{path: "/api", want: "(?i)/api.*", match: []string{"/api", "/API/v1", "/apis"}, miss: []string{"/v1/api"}},
		{path: "/a|/b", want: "(?i)(?:/a|/b).*", match: []string{"/a/x", "/b"}, miss: []string{"/c/b"}},
		{path: "/x/.*", want: "(?i)/x/.*", match: []string{"/x/y"}},
		{path: "/orders/[0-9]+", exact: true, want: "(?i)/orders/[0-9]+", match: []string{"/orders/12"}, miss: []string{"/orders/12/x"}},
	}
	for _, tt := range tests {
		got := nginxLocationRegex(tt.path, tt.exact)
		if got != tt.want {
			t.Errorf("nginxLocationRegex(%q) = %q, want %q", tt.path, got, tt.want)
		}
		re := regexp.MustCompile("^(?:" + got + ")$") // as routing.Compile anchors it
		for _, p := range tt.match {
			if !re.MatchString(p) {
				t.Errorf("%s must match %s", got, p)
			}
		}
		for _, p := range tt.miss {
			if re.MatchString(p) {
				t.Errorf("%s must not match %s", got, p)
			}
		}
	}
}

func TestRedirectFilter(t *testing.T) {
	tests := []struct {
		in   string
		want *gwapiv1.HTTPRequestRedirectFilter
		why  string
	}{
		{in: "https://example.com", want: &gwapiv1.HTTPRequestRedirectFilter{Scheme: ptrTo("https"), Hostname: ptrTo(gwapiv1.PreciseHostname("example.com")),
			Path: &gwapiv1.HTTPPathModifier{Type: gwapiv1.FullPathHTTPPathModifier, ReplaceFullPath: ptrTo("/")}}},
		{in: "http://Example.com:8080${request_uri}", want: &gwapiv1.HTTPRequestRedirectFilter{Scheme: ptrTo("http"), Hostname: ptrTo(gwapiv1.PreciseHostname("example.com")), Port: ptrTo(gwapiv1.PortNumber(8080))}},
		{in: "/maintenance", want: &gwapiv1.HTTPRequestRedirectFilter{Path: &gwapiv1.HTTPPathModifier{Type: gwapiv1.FullPathHTTPPathModifier, ReplaceFullPath: ptrTo("/maintenance")}}},
		{in: "https://example.com/x$request_uri", why: "path before $request_uri"},
		{in: "/x$request_uri", why: "needs a scheme and host"},
		{in: "ftp://example.com/", why: "http or https"},
		{in: "https://user@example.com/", why: "without user information"},
		{in: "https://example.com/#top", why: "query or fragment"},
		{in: "https://example.com:99999/", why: "port"},
	}
	for _, tt := range tests {
		got, why := redirectFilter(tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" || !strings.Contains(why, tt.why) || (tt.why == "") != (why == "") {
			t.Errorf("redirectFilter(%q): why %q, want %q; filter (-want +got):\n%s", tt.in, why, tt.why, diff)
		}
	}
}

func TestGatewayDuration(t *testing.T) {
	pattern := regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`) // the Gateway API's Duration
	for secs, want := range map[int64]string{1: "1s", 3600: "3600s", 99999: "99999s", 100000: "27h46m40s", maxSeconds: "8760h0m0s"} {
		got := string(gatewayDuration(secs))
		if got != want || !pattern.MatchString(got) {
			t.Errorf("gatewayDuration(%d) = %q, want %q", secs, got, want)
		}
	}
}
