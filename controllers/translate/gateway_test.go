package translate

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func TestIntersectHostnames(t *testing.T) {
	for _, tc := range []struct {
		listener string
		route    []string
		want     []string
		catchAll bool
		ok       bool
	}{
		{"", nil, nil, true, true},
		{"", []string{"a.example.com"}, []string{"a.example.com"}, false, true},
		{"a.example.com", nil, []string{"a.example.com"}, false, true},
		{"a.example.com", []string{"a.example.com", "b.example.com"}, []string{"a.example.com"}, false, true},
		{"a.example.com", []string{"*.example.com"}, []string{"a.example.com"}, false, true},
		{"a.b.example.com", []string{"*.example.com"}, []string{"a.b.example.com"}, false, true},
		{"*.example.com", []string{"x.y.example.com", "example.com", "x.example.org"}, []string{"x.y.example.com"}, false, true},
		{"*.example.com", []string{"*.example.com"}, []string{"*.example.com"}, false, true},
		{"*.example.com", []string{"*.foo.example.com"}, []string{"*.foo.example.com"}, false, true},
		{"*.foo.example.com", []string{"*.example.com"}, []string{"*.foo.example.com"}, false, true},
		{"*.example.com", []string{"example.com", "notexample.com"}, nil, false, false},
		{"a.example.com", []string{"*.a.example.com"}, nil, false, false},
	} {
		got, catchAll, ok := intersectHostnames(tc.listener, tc.route)
		if !cmp.Equal(got, tc.want) || catchAll != tc.catchAll || ok != tc.ok {
			t.Errorf("intersect(%q, %q) = %q, %v, %v; want %q, %v, %v", tc.listener, tc.route, got, catchAll, ok, tc.want, tc.catchAll, tc.ok)
		}
	}
}

func TestGatewayNames(t *testing.T) {
	// Names that concatenate alike still differ.
	if GatewayRouteName("a-b", "ns", "c") == GatewayRouteName("a", "ns", "b-c") {
		t.Error("GatewayRouteName collides for routes and Gateways whose names concatenate alike")
	}
	if GatewayRouteName("r", "ns1", "gw") == GatewayRouteName("r", "ns2", "gw") {
		t.Error("GatewayRouteName ignores the Gateway's namespace")
	}
	long := strings.Repeat("x", 253)
	for _, name := range []string{
		GatewayRouteName(long, "ns", long),
		chunkRouteName(GatewayRouteName(long, "ns", long), 3),
		GatewayRouteName(long, "ns", long) + catchAllSuffix,
	} {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%q: %v", name, errs)
		}
	}
	gw := &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "public.edge"}}
	if got := GatewayEdgeProxyName(gw); got != "gateway-infra.public.edge" {
		t.Errorf("GatewayEdgeProxyName = %q", got)
	}
	gw.Name = long
	if name := GatewayEdgeProxyName(gw); len(validation.IsDNS1123Subdomain(name)) > 0 || len(validation.IsValidLabelValue(name)) > 0 {
		t.Errorf("GatewayEdgeProxyName of a long name: %q is not a name and a label value", name)
	}
	other := gw.DeepCopy()
	other.Name = long[:200] + "y"
	if GatewayEdgeProxyName(gw) == GatewayEdgeProxyName(other) {
		t.Error("GatewayEdgeProxyName: long names sharing a prefix collide")
	}
	want := map[string]string{edgev1alpha1.LabelSourceKind: "HTTPRoute", edgev1alpha1.LabelSourceName: "web"}
	if diff := cmp.Diff(want, HTTPRouteSourceLabels("web")); diff != "" {
		t.Errorf("HTTPRouteSourceLabels (-want +got):\n%s", diff)
	}
	src := HTTPRouteSource(&gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 4}})
	if src.Group != "gateway.networking.k8s.io" || src.Kind != "HTTPRoute" || src.ObservedGeneration != 4 {
		t.Errorf("HTTPRouteSource = %+v", src)
	}
}

func caseInput(t *testing.T, name string) (gatewayCase, func(*gwapiv1.HTTPRoute) GatewayInput) {
	t.Helper()
	c := loadGatewayCase(t, filepath.Join("testdata", "gateway", name+".in.yaml"))
	return c, func(r *gwapiv1.HTTPRoute) GatewayInput {
		return GatewayInput{
			Route: r, Gateways: c.gateways, GatewayClasses: c.classes, EdgeProxies: c.edgeProxies,
			Namespaces: c.namespaces, ReferenceGrants: c.grants, Services: c.services, Secrets: c.secrets,
		}
	}
}

// TestHTTPRouteIsDeterministic translates the same input repeatedly: map iteration must never leak
// into names, order or messages.
func TestHTTPRouteIsDeterministic(t *testing.T) {
	for _, name := range []string{"https", "hostnames", "filters"} {
		c, input := caseInput(t, name)
		for i := range c.routes {
			first := HTTPRoute(input(&c.routes[i]))
			for range 10 {
				if diff := cmp.Diff(first, HTTPRoute(input(&c.routes[i]))); diff != "" {
					t.Fatalf("%s/%s: translation differs between runs:\n%s", name, c.routes[i].Name, diff)
				}
			}
		}
	}
}

// TestReferenceGrantRevocation: without the grant, the same route loses the cross-namespace
// backend and says so.
func TestReferenceGrantRevocation(t *testing.T) {
	c, input := caseInput(t, "backends")
	in := input(&c.routes[0])
	with := HTTPRoute(in)
	in.ReferenceGrants = nil
	without := HTTPRoute(in)
	backends := func(res GatewayResult, rule string) int {
		for _, r := range res.Routes[0].Spec.Rules {
			if string(*r.Name) == rule {
				return len(r.BackendRefs)
			}
		}
		t.Fatalf("no rule %s", rule)
		return 0
	}
	if backends(with, "granted") != 1 || backends(without, "granted") != 0 {
		t.Errorf("granted rule: %d backends with the grant, %d without; want 1 and 0", backends(with, "granted"), backends(without, "granted"))
	}
	cond := without.Parents[0].Conditions[1]
	if cond.Reason != string(gwapiv1.RouteReasonRefNotPermitted) || !strings.Contains(cond.Message, `Service "search"`) {
		t.Errorf("ResolvedRefs without the grant: %+v", cond)
	}
}

func TestHTTPRouteIgnoresOtherParents(t *testing.T) {
	if res := HTTPRoute(GatewayInput{}); res.Routes != nil || res.Parents != nil {
		t.Errorf("nil route: %+v", res)
	}
	c, input := caseInput(t, "parameters")
	for i := range c.routes {
		res := HTTPRoute(input(&c.routes[i]))
		for _, p := range res.Parents {
			if p.ParentRef.Name == "not-ours" || p.ParentRef.Name == "no-such-gateway" || p.ParentRef.Kind != nil {
				t.Errorf("status for a parent Portico does not serve: %+v", p.ParentRef)
			}
			if p.ControllerName != edgev1alpha1.GatewayControllerName {
				t.Errorf("controllerName %q", p.ControllerName)
			}
		}
	}
	gc := &gwapiv1.GatewayClass{Spec: gwapiv1.GatewayClassSpec{ControllerName: "example.com/other"}}
	if GatewayClassStatus(gc, nil) != nil {
		t.Error("GatewayClassStatus for another controller's class")
	}
	gw := &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "b"}, Spec: gwapiv1.GatewaySpec{GatewayClassName: "other"}}
	if GatewayStatus(GatewayStatusInput{Gateway: gw, GatewayClasses: []gwapiv1.GatewayClass{*gc}}) != nil {
		t.Error("GatewayStatus for another controller's Gateway")
	}
	if ep, _ := GatewayEdgeProxy(GatewayEdgeProxyInput{Gateway: gw}); ep != nil {
		t.Error("GatewayEdgeProxy for another controller's Gateway")
	}
}

func TestHTTPRouteLimits(t *testing.T) {
	c, input := caseInput(t, "backends")
	r := c.routes[0].DeepCopy()
	r.Spec.Rules = nil
	for i := range maxRulesPerRoute + 1 {
		r.Spec.Rules = append(r.Spec.Rules, gwapiv1.HTTPRouteRule{Matches: []gwapiv1.HTTPRouteMatch{{
			Path: &gwapiv1.HTTPPathMatch{Type: ptrTo(gwapiv1.PathMatchPathPrefix), Value: ptrTo(fmt.Sprintf("/%d", i))},
		}}})
	}
	res := HTTPRoute(input(r))
	acc := res.Parents[0].Conditions[0]
	if res.Routes != nil || acc.Reason != string(gwapiv1.RouteReasonUnsupportedValue) || !strings.Contains(acc.Message, "17 rules") {
		t.Errorf("a route over the limits: routes %d, Accepted %+v", len(res.Routes), acc)
	}
}

func TestGatewayProgrammed(t *testing.T) {
	c, _ := caseInput(t, "https")
	in := GatewayStatusInput{Gateway: &c.gateways[0], GatewayClasses: c.classes, Secrets: c.secrets, ReferenceGrants: c.grants, EdgeProxyReady: true}
	st := GatewayStatus(in)
	if p := st.Status.Conditions[1]; p.Reason != string(gwapiv1.GatewayReasonAddressNotAssigned) || st.Status.Addresses != nil {
		t.Errorf("Ready without address: %+v, addresses %v", p, st.Status.Addresses)
	}
	for _, l := range st.Status.Listeners {
		if l.AttachedRoutes != 0 {
			t.Errorf("listener %s counts %d routes with none given", l.Name, l.AttachedRoutes)
		}
	}
}

// A generated EdgeProxy allows its listeners' hostnames, by name the route hostnames deeper than a
// listener's wildcard (the Gateway API's wildcards match several labels, an EdgeProxy's one), and a
// placeholder while listeners without hostname have no route hostnames yet.
func TestGatewayEdgeProxyHostnames(t *testing.T) {
	class := gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}
	gw := func(host string) *gwapiv1.Gateway {
		l := gwapiv1.Listener{Name: "http", Port: 80, Protocol: gwapiv1.HTTPProtocolType}
		if host != "" {
			l.Hostname = ptrTo(gwapiv1.Hostname(host))
		}
		return &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw"},
			Spec: gwapiv1.GatewaySpec{GatewayClassName: "portico", Listeners: []gwapiv1.Listener{l}}}
	}
	for _, tc := range []struct {
		listener string
		routes   []edgev1alpha1.Hostname
		want     []edgev1alpha1.Hostname
	}{
		{"", nil, []edgev1alpha1.Hostname{NoHostnamePlaceholder}},
		{"", []edgev1alpha1.Hostname{"a.example.com"}, []edgev1alpha1.Hostname{"a.example.com"}},
		{"*.wildcard.io", []edgev1alpha1.Hostname{"foo.wildcard.io", "foo.bar.wildcard.io", "*.wildcard.io"},
			[]edgev1alpha1.Hostname{"*.wildcard.io", "foo.bar.wildcard.io"}},
	} {
		ep, errs := GatewayEdgeProxy(GatewayEdgeProxyInput{Gateway: gw(tc.listener),
			GatewayClasses: []gwapiv1.GatewayClass{class}, RouteHostnames: tc.routes})
		if len(errs) > 0 || ep == nil {
			t.Fatalf("listener %q: %v", tc.listener, errs)
		}
		if diff := cmp.Diff(tc.want, ep.Spec.Hostnames); diff != "" {
			t.Errorf("listener %q, routes %v: hostnames (-want +got):\n%s", tc.listener, tc.routes, diff)
		}
	}
}

// Only the GatewayClass (the platform team's) can let a generated EdgeProxy trust hand-written
// EndpointSlices, and only with the exact value "true"; a Gateway's own infrastructure labels and
// annotations (the tenant's) never can.
func TestGatewayEdgeProxyUnmanagedEndpointSlices(t *testing.T) {
	gw := &gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw"},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "portico", Listeners: []gwapiv1.Listener{
			{Name: "http", Port: 80, Protocol: gwapiv1.HTTPProtocolType, Hostname: ptrTo(gwapiv1.Hostname("a.example.com"))}},
			Infrastructure: &gwapiv1.GatewayInfrastructure{Annotations: map[gwapiv1.AnnotationKey]gwapiv1.AnnotationValue{
				edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices: "true"}}}}
	for _, tc := range []struct {
		annotation string
		want       bool
	}{{"", false}, {"false", false}, {"yes", false}, {"TRUE", false}, {"true", true}} {
		class := gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"},
			Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}
		if tc.annotation != "" {
			class.Annotations = map[string]string{edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices: tc.annotation}
		}
		ep, errs := GatewayEdgeProxy(GatewayEdgeProxyInput{Gateway: gw, GatewayClasses: []gwapiv1.GatewayClass{class}})
		if len(errs) > 0 || ep == nil {
			t.Fatalf("annotation %q: %v", tc.annotation, errs)
		}
		if ep.Spec.AllowUnmanagedEndpointSlices != tc.want {
			t.Errorf("class annotation %q: allowUnmanagedEndpointSlices = %v, want %v", tc.annotation, ep.Spec.AllowUnmanagedEndpointSlices, tc.want)
		}
	}
}

// The GatewayClass's Accepted message says whether its generated EdgeProxies trust hand-written
// EndpointSlices, and names an annotation value that does not turn the opt-in on.
func TestGatewayClassStatusSaysTheEndpointSliceOptIn(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"true", "use hand-written EndpointSlices"},
		{"yes", `allow-unmanaged-endpointslices="yes" is ignored`},
	} {
		gc := &gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico",
			Annotations: map[string]string{edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices: tc.value}},
			Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}
		st := GatewayClassStatus(gc, nil)
		if msg := st.Conditions[0].Message; st.Conditions[0].Status != metav1.ConditionTrue || !strings.Contains(msg, tc.want) {
			t.Errorf("annotation %q: Accepted %s %q, want True containing %q", tc.value, st.Conditions[0].Status, msg, tc.want)
		}
	}
	gc := &gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName}}
	if msg := GatewayClassStatus(gc, nil).Conditions[0].Message; strings.Contains(msg, "EndpointSlice") {
		t.Errorf("no annotation: %q mentions EndpointSlices", msg)
	}
}
