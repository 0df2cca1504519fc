package controllers

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// validationCase mutates a valid object; wantErr lists substrings the API server's rejection must
// contain (the field path and the reason), or is empty when the object must be accepted.
type validationCase[T any] struct {
	name    string
	mutate  func(T)
	wantErr []string
}

func validEdgeProxy() *edgev1alpha1.EdgeProxy {
	return &edgev1alpha1.EdgeProxy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "ep-"},
		Spec: edgev1alpha1.EdgeProxySpec{
			TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: []string{"team-a"}},
			Hostnames:        []edgev1alpha1.Hostname{"team-a.example.com", "*.team-a.example.com"},
			ProxyNamespace:   "team-a-edge",
		},
	}
}

func validTenantRoute() *edgev1alpha1.TenantRoute {
	return &edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "tr-", Namespace: "default"},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: "team-a",
			Hostnames: []edgev1alpha1.Hostname{"shop.team-a.example.com"},
			Rules: []edgev1alpha1.TenantRouteRule{{
				Matches: []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{
					Type: ptr.To(gwapiv1.PathMatchPathPrefix), Value: ptr.To("/api"),
				}}},
				BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
					BackendObjectReference: gwapiv1.BackendObjectReference{Name: "api", Port: ptr.To(gwapiv1.PortNumber(8080))},
				}}},
			}},
		},
	}
}

func pathMatch(t gwapiv1.PathMatchType, v string) []gwapiv1.HTTPRouteMatch {
	return []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{Type: ptr.To(t), Value: ptr.To(v)}}}
}

func runValidationTable[T client.Object](newObj func() T, cases []validationCase[T]) {
	for _, tc := range cases {
		It(tc.name, func() {
			obj := newObj()
			tc.mutate(obj)
			err := k8sClient.Create(ctx, obj, client.DryRunAll)
			if len(tc.wantErr) == 0 {
				Expect(err).NotTo(HaveOccurred())
				return
			}
			Expect(err).To(HaveOccurred(), "object must be rejected")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
			for _, want := range tc.wantErr {
				Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

var _ = Describe("EdgeProxy schema validation", func() {
	runValidationTable(validEdgeProxy, []validationCase[*edgev1alpha1.EdgeProxy]{
		{name: "accepts the minimal EdgeProxy", mutate: func(*edgev1alpha1.EdgeProxy) {}},
		{name: "accepts a label selector instead of names", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.TenantNamespaces = edgev1alpha1.TenantNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "a"}}}
		}},
		{name: "rejects no tenant namespaces", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.TenantNamespaces = edgev1alpha1.TenantNamespaces{}
		}, wantErr: []string{"spec.tenantNamespaces", "tenantNamespaces needs names or a selector"}},
		{name: "rejects an invalid hostname", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = []edgev1alpha1.Hostname{"bad_host!.example.com"}
		}, wantErr: []string{"spec.hostnames[0]", "should match"}},
		{name: "rejects a wildcard in the middle", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = []edgev1alpha1.Hostname{"a.*.example.com"}
		}, wantErr: []string{"spec.hostnames[0]"}},
		{name: "rejects a hostname with a port", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = []edgev1alpha1.Hostname{"example.com:443"}
		}, wantErr: []string{"spec.hostnames[0]"}},
		{name: "rejects an empty hostname list", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = nil
		}, wantErr: []string{"spec.hostnames"}},
		{name: "rejects an invalid proxy namespace", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.ProxyNamespace = "Team_A"
		}, wantErr: []string{"spec.proxyNamespace"}},
		{name: "rejects replicas together with autoscaling", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To[int32](3)}
			ep.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MaxReplicas: 5}
		}, wantErr: []string{"deployment.replicas and autoscaling are mutually exclusive"}},
		{name: "rejects minReplicas above maxReplicas", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](6), MaxReplicas: 5}
		}, wantErr: []string{"spec.autoscaling", "minReplicas must not exceed maxReplicas"}},
		{name: "rejects a service port out of range", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Service = &edgev1alpha1.ProxyServiceSpec{HTTPPort: ptr.To[int32](70000)}
		}, wantErr: []string{"spec.service.httpPort"}},
		{name: "rejects an unknown TLS version", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.TLS = &edgev1alpha1.TLSDefaults{MinVersion: "1.0"}
		}, wantErr: []string{"spec.tls.minVersion", "Unsupported value"}},
		{name: "rejects an image with a control character", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Image: "portico:v1\nx"}
		}, wantErr: []string{"spec.deployment.image"}},
		{name: "rejects a sampling percentage over 100", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Observability = &edgev1alpha1.Observability{Tracing: &edgev1alpha1.TracingSpec{Endpoint: "otel:4317", SamplingPercent: ptr.To[int32](101)}}
		}, wantErr: []string{"spec.observability.tracing.samplingPercent"}},
		{name: "rejects an issuer of an unknown kind", mutate: func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.TLS = &edgev1alpha1.TLSDefaults{Issuer: &edgev1alpha1.IssuerReference{Name: "le", Kind: "Vault"}}
		}, wantErr: []string{"spec.tls.issuer.kind"}},
	})

	It("keeps proxyNamespace immutable", func() {
		ep := validEdgeProxy()
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ep))).To(Succeed()) })
		// A merge patch, not an Update: the operator running in this suite writes the EdgeProxy's
		// status meanwhile, and an Update would fail with a conflict instead.
		orig := ep.DeepCopy()
		ep.Spec.ProxyNamespace = "elsewhere"
		err := k8sClient.Patch(ctx, ep, client.MergeFrom(orig))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("proxyNamespace is immutable"))
	})
})

var _ = Describe("TenantRoute schema validation", func() {
	controlChars := []string{"\x00", "\n", "\r", "\x1b", "\x7f"}
	cases := []validationCase[*edgev1alpha1.TenantRoute]{
		{name: "accepts the minimal TenantRoute", mutate: func(*edgev1alpha1.TenantRoute) {}},
		{name: "accepts a wildcard host, regex path and regex rewrite", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Hostnames = []edgev1alpha1.Hostname{"*.team-a.example.com"}
			tr.Spec.Rules[0].Matches = pathMatch(gwapiv1.PathMatchRegularExpression, `/api/(v[0-9]+)/(.*)`)
			tr.Spec.Rules[0].RegexRewrite = &edgev1alpha1.RegexRewrite{Substitution: "/$1/$2"}
		}},
		{name: "rejects a missing edgeProxy", mutate: func(tr *edgev1alpha1.TenantRoute) { tr.Spec.EdgeProxy = "" },
			wantErr: []string{"spec.edgeProxy"}},
		{name: "rejects an invalid hostname", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Hostnames = []edgev1alpha1.Hostname{"shop..example.com"}
		}, wantErr: []string{"spec.hostnames[0]"}},
		{name: "rejects no rules", mutate: func(tr *edgev1alpha1.TenantRoute) { tr.Spec.Rules = nil },
			wantErr: []string{"spec.rules"}},
		{name: "rejects a relative prefix path", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].Matches = pathMatch(gwapiv1.PathMatchPathPrefix, "api")
		}, wantErr: []string{"spec.rules[0].matches[0].path", "must be an absolute path"}},
		{name: "rejects a path with a dot segment", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].Matches = pathMatch(gwapiv1.PathMatchExact, "/a/../admin")
		}, wantErr: []string{"spec.rules[0].matches[0].path"}},
		{name: "rejects an over-long regex", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].Matches = pathMatch(gwapiv1.PathMatchRegularExpression, "/"+strings.Repeat("a", 1024))
		}, wantErr: []string{"spec.rules[0].matches[0].path.value", "Too long"}},
		{name: "rejects a negative weight", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](-1)
		}, wantErr: []string{"spec.rules[0].backendRefs[0].weight"}},
		{name: "rejects all-zero weights", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](0)
		}, wantErr: []string{"spec.rules[0].backendRefs", "backend weights must not all be zero"}},
		{name: "rejects more than 128 matches in all", mutate: func(tr *edgev1alpha1.TenantRoute) {
			rule := tr.Spec.Rules[0]
			for i := 0; i < 63; i++ {
				rule.Matches = append(rule.Matches, pathMatch(gwapiv1.PathMatchExact, fmt.Sprintf("/p%d", i))...)
			}
			tr.Spec.Rules = []edgev1alpha1.TenantRouteRule{rule, rule, rule}
		}, wantErr: []string{"spec.rules", "at most 128"}},
		{name: "rejects a port out of range", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].BackendRefs[0].Port = ptr.To(gwapiv1.PortNumber(65536))
		}, wantErr: []string{"spec.rules[0].backendRefs[0].port"}},
		{name: "rejects a regex rewrite without a regex match", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].RegexRewrite = &edgev1alpha1.RegexRewrite{Substitution: "/$1"}
		}, wantErr: []string{"spec.rules[0]", "regexRewrite needs a RegularExpression path match"}},
		{name: "rejects a redirect together with backends", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].Filters = []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestRedirect,
				RequestRedirect: &gwapiv1.HTTPRequestRedirectFilter{Scheme: ptr.To("https")}}}
		}, wantErr: []string{"RequestRedirect filter must not be used together with backendRefs"}},
		{name: "rejects a source range that is not a CIDR", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Policy = &edgev1alpha1.RoutePolicy{SourceRanges: []string{"10.0.0.300/8"}}
		}, wantErr: []string{"spec.policy.sourceRanges", "must be CIDRs"}},
		{name: "rejects a TLS secret name with a slash", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: "other/secret"}}
		}, wantErr: []string{"spec.tls[0].secretName"}},
		{name: "rejects an unknown session affinity type", mutate: func(tr *edgev1alpha1.TenantRoute) {
			q := resource.MustParse("1Mi")
			tr.Spec.Policy = &edgev1alpha1.RoutePolicy{MaxRequestBodySize: &q}
			tr.Spec.Policy.SessionAffinity = &edgev1alpha1.SessionAffinity{Type: "IP"}
		}, wantErr: []string{"spec.policy.sessionAffinity.type"}},
		{name: "rejects retries above 5", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Rules[0].Retry = &edgev1alpha1.RetryPolicy{Attempts: 6}
		}, wantErr: []string{"spec.rules[0].retry.attempts"}},
		{name: "rejects a cookie name with a space", mutate: func(tr *edgev1alpha1.TenantRoute) {
			tr.Spec.Policy = &edgev1alpha1.RoutePolicy{SessionAffinity: &edgev1alpha1.SessionAffinity{Type: "Cookie", CookieName: "a b"}}
		}, wantErr: []string{"spec.policy.sessionAffinity.cookieName"}},
	}
	for _, c := range controlChars {
		cases = append(cases,
			validationCase[*edgev1alpha1.TenantRoute]{name: fmt.Sprintf("rejects %q in a regex rewrite", c), mutate: func(tr *edgev1alpha1.TenantRoute) {
				tr.Spec.Rules[0].Matches = pathMatch(gwapiv1.PathMatchRegularExpression, `/(.*)`)
				tr.Spec.Rules[0].RegexRewrite = &edgev1alpha1.RegexRewrite{Substitution: "/" + c}
			}, wantErr: []string{"spec.rules[0].regexRewrite.substitution"}},
		)
	}
	cases = append(cases, validationCase[*edgev1alpha1.TenantRoute]{name: "accepts a tab in a header value", mutate: func(tr *edgev1alpha1.TenantRoute) {
		tr.Spec.Rules[0].Filters = []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestHeaderModifier,
			RequestHeaderModifier: &gwapiv1.HTTPHeaderFilter{Set: []gwapiv1.HTTPHeader{{Name: "X-Team", Value: "a\tb"}}}}}
	}})
	runValidationTable(validTenantRoute, cases)
})

var _ = BeforeEach(func() {
	// TenantRoutes in the table live in "default"; it always exists on a fresh apiserver.
	ns := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "default"}, ns)).To(Succeed())
})
