package admission

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func edgeProxy() *edgev1alpha1.EdgeProxy {
	return &edgev1alpha1.EdgeProxy{
		ObjectMeta: metav1.ObjectMeta{Name: "shared"},
		Spec: edgev1alpha1.EdgeProxySpec{
			TenantNamespaces: edgev1alpha1.TenantNamespaces{
				Names:    []string{"team-a"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "b"}},
			},
			Hostnames:      []edgev1alpha1.Hostname{"a.example.com", "*.a.example.com", "*.b.example.com"},
			ProxyNamespace: "shared-edge",
		},
	}
}

func route(ns, name string, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.TenantRoute {
	return &edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: "shared",
			Hostnames: hosts,
			Rules: []edgev1alpha1.TenantRouteRule{{
				BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
					BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web", Port: ptr.To(gwapiv1.PortNumber(80))},
				}}},
			}},
		},
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name     string
		in       func() Input
		wantOK   bool
		reason   edgev1alpha1.ConditionReason
		inReason []string // substrings of the message
	}{
		{
			name:   "accepted by name",
			in:     func() Input { return Input{Route: route("team-a", "r", "shop.a.example.com"), EdgeProxy: edgeProxy()} },
			wantOK: true, reason: edgev1alpha1.RouteReasonAccepted,
		},
		{
			name: "accepted by namespace selector",
			in: func() Input {
				return Input{Route: route("team-b", "r", "x.b.example.com"), EdgeProxy: edgeProxy(), NamespaceLabels: map[string]string{"tenant": "b"}}
			},
			wantOK: true, reason: edgev1alpha1.RouteReasonAccepted,
		},
		{
			name:     "edge proxy missing",
			in:       func() Input { return Input{Route: route("team-a", "r", "a.example.com")} },
			reason:   edgev1alpha1.RouteReasonEdgeProxyNotFound,
			inReason: []string{"spec.edgeProxy", `"shared"`},
		},
		{
			name: "namespace not served",
			in: func() Input {
				return Input{Route: route("team-c", "r", "a.example.com"), EdgeProxy: edgeProxy(), NamespaceLabels: map[string]string{"tenant": "c"}}
			},
			reason:   edgev1alpha1.RouteReasonNamespaceNotServed,
			inReason: []string{`namespace "team-c"`},
		},
		{
			name: "hostname not allowed",
			in: func() Input {
				return Input{Route: route("team-a", "r", "a.example.com", "evil.example.com"), EdgeProxy: edgeProxy()}
			},
			reason:   edgev1alpha1.RouteReasonHostnameNotAllowed,
			inReason: []string{"spec.hostnames[1]", "evil.example.com"},
		},
		{
			name:     "wildcard allows one label only",
			in:       func() Input { return Input{Route: route("team-a", "r", "x.y.a.example.com"), EdgeProxy: edgeProxy()} },
			reason:   edgev1alpha1.RouteReasonHostnameNotAllowed,
			inReason: []string{"spec.hostnames[0]"},
		},
		{
			name: "tls host not allowed",
			in: func() Input {
				tr := route("team-a", "r", "a.example.com")
				tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: "s", Hosts: []edgev1alpha1.Hostname{"a.example.com", "other.example.org"}}}
				return Input{Route: tr, EdgeProxy: edgeProxy()}
			},
			reason:   edgev1alpha1.RouteReasonHostnameNotAllowed,
			inReason: []string{"spec.tls[0].hosts[1]"},
		},
		{
			name: "invalid: does not compile",
			in: func() Input {
				tr := route("team-a", "r", "a.example.com")
				tr.Spec.Rules[0].Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{
					Type: ptr.To(gwapiv1.PathMatchRegularExpression), Value: ptr.To("/(unclosed"),
				}}}
				return Input{Route: tr, EdgeProxy: edgeProxy()}
			},
			reason:   edgev1alpha1.RouteReasonInvalid,
			inReason: []string{"spec.rules[0].matches[0].path"},
		},
		{
			name: "invalid: body limit above the EdgeProxy's",
			in: func() Input {
				ep := edgeProxy()
				ep.Spec.Traffic = &edgev1alpha1.TrafficDefaults{MaxRequestBodySize: ptr.To(resource.MustParse("1Mi"))}
				tr := route("team-a", "r", "a.example.com")
				tr.Spec.Policy = &edgev1alpha1.RoutePolicy{MaxRequestBodySize: ptr.To(resource.MustParse("2Mi"))}
				return Input{Route: tr, EdgeProxy: ep}
			},
			reason:   edgev1alpha1.RouteReasonInvalid,
			inReason: []string{"spec.policy.maxRequestBodySize"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(tc.in())
			if got.OK != tc.wantOK || got.Reason != tc.reason {
				t.Fatalf("Check = %+v, want ok=%v reason=%s", got.Verdict, tc.wantOK, tc.reason)
			}
			for _, s := range tc.inReason {
				if !strings.Contains(got.Message, s) {
					t.Errorf("message %q does not contain %q", got.Message, s)
				}
			}
			if got.OK && got.Compiled == nil {
				t.Error("accepted without a compiled route")
			}
		})
	}
}

func TestHostnameAllowed(t *testing.T) {
	allowed := []edgev1alpha1.Hostname{"a.example.com", "*.b.example.com", "Mixed.Example.com"}
	cases := map[string]bool{
		"a.example.com":       true,
		"A.EXAMPLE.COM":       true,
		"x.a.example.com":     false, // exact entries allow only themselves
		"*.b.example.com":     true,
		"x.b.example.com":     true,
		"x.y.b.example.com":   false, // one label only
		"b.example.com":       false, // the wildcard does not cover its parent
		"*.x.b.example.com":   false,
		"mixed.example.com":   true,
		"evil-a.example.com":  false,
		"a.example.com.evil":  false,
		"":                    false,
		"*.a.example.com":     false,
		"x.b.example.com.org": false,
	}
	for host, want := range cases {
		if got := HostnameAllowed(allowed, host); got != want {
			t.Errorf("HostnameAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	ep := edgeProxy()
	if d := Defaults(ep); d.MaxRequestBodyBytes != 0 || d.RequestTimeout != 0 {
		t.Errorf("defaults without traffic = %+v, want zero (routing's own defaults)", d)
	}
	ep.Spec.Traffic = &edgev1alpha1.TrafficDefaults{
		MaxRequestBodySize: ptr.To(resource.MustParse("8Mi")),
		RequestTimeout:     &metav1.Duration{Duration: 30 * time.Second},
		BackendTimeout:     &metav1.Duration{Duration: 20 * time.Second},
	}
	d := Defaults(ep)
	if d.MaxRequestBodyBytes != 8<<20 || d.RequestTimeout != 30*time.Second || d.BackendTimeout != 20*time.Second {
		t.Errorf("defaults = %+v", d)
	}
}
