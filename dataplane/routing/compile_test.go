package routing

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/types"
)

// specRoute is a TenantRoute in namespace "ns" with the given spec body (YAML indented by two).
func specRoute(spec string) string {
	return "apiVersion: edge.portico.dev/v1alpha1\nkind: TenantRoute\nmetadata: {namespace: ns, name: r}\nspec:\n  edgeProxy: edge\n" + spec
}

const okRule = "  rules:\n  - backendRefs: [{name: svc, port: 80}]\n"

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string // "<type> <field>"
	}{
		{"valid", "  hostnames: [A.Example.com, \"*.example.org\"]\n" + okRule, nil},
		{"no rules", "  rules: []\n", []string{"Required value spec.rules"}},
		{"hostname syntax", "  hostnames: [\"a..b\", \"*.*.x.com\", \"x.com:80\", \"10.0.0.1\", \"x.com.\", \"-a.com\", \"a*.com\", \"a\\x01.com\"]\n" + okRule, []string{
			"Invalid value spec.hostnames[0]", "Invalid value spec.hostnames[1]", "Invalid value spec.hostnames[2]",
			"Invalid value spec.hostnames[3]", "Invalid value spec.hostnames[4]", "Invalid value spec.hostnames[5]",
			"Invalid value spec.hostnames[6]", "Invalid value spec.hostnames[7]"}},
		{"duplicate hostname after lower-casing", "  hostnames: [a.com, A.com]\n" + okRule, []string{"Duplicate value spec.hostnames[1]"}},
		{"paths", `  rules:
  - matches:
    - path: {type: PathPrefix, value: /ok}
    - path: {type: Exact, value: relative}
    - path: {type: PathPrefix, value: "/a//b"}
    - path: {type: PathPrefix, value: "/a/../b"}
    - path: {type: Exact, value: "/a%2Fb"}
    - path: {type: Exact, value: "/a\x01"}
    - path: {type: Exact, value: "/a b"}
    - path: {type: Glob, value: "/a"}
`, []string{
			"Invalid value spec.rules[0].matches[1].path.value", "Invalid value spec.rules[0].matches[2].path.value",
			"Invalid value spec.rules[0].matches[3].path.value", "Invalid value spec.rules[0].matches[4].path.value",
			"Invalid value spec.rules[0].matches[5].path.value", "Invalid value spec.rules[0].matches[6].path.value",
			"Unsupported value spec.rules[0].matches[7].path.type"}},
		{"regexes", `  rules:
  - matches:
    - path: {type: RegularExpression, value: "/(a"}
    - path: {type: RegularExpression, value: "/(?<!x)a"}
    - path: {type: RegularExpression, value: "/` + strings.Repeat("a", 1024) + `"}
    - headers: [{name: x, type: RegularExpression, value: "[z-a]"}]
    - queryParams: [{name: q, type: RegularExpression, value: "("}]
`, []string{
			"Invalid value spec.rules[0].matches[0].path.value", "Invalid value spec.rules[0].matches[1].path.value",
			"Too long spec.rules[0].matches[2].path.value", "Invalid value spec.rules[0].matches[3].headers[0].value",
			"Invalid value spec.rules[0].matches[4].queryParams[0].value"}},
		{"header and query matches", `  rules:
  - matches:
    - headers: [{name: "bad name", value: v}, {name: ok, value: "a\x7fb"}, {name: ok2, type: Prefix, value: v}]
      queryParams: [{name: "q:", value: v}, {name: q, value: "\n"}]
      method: FETCH
`, []string{
			"Invalid value spec.rules[0].matches[0].headers[0].name", "Invalid value spec.rules[0].matches[0].headers[1].value",
			"Unsupported value spec.rules[0].matches[0].headers[2].type", "Invalid value spec.rules[0].matches[0].queryParams[0].name",
			"Invalid value spec.rules[0].matches[0].queryParams[1].value", "Unsupported value spec.rules[0].matches[0].method"}},
		{"backends", `  rules:
  - backendRefs:
    - {name: svc, port: 80, weight: -1}
    - {name: svc, kind: ServiceImport, group: multicluster.x-k8s.io, port: 80}
    - {name: svc}
    - {name: svc, port: 70000}
    - {name: Svc_1, port: 80}
    - {name: svc, namespace: "Other", port: 80}
  - backendRefs:
    - {name: a, port: 80, weight: 0}
    - {name: b, port: 80, weight: 0}
`, []string{
			"Invalid value spec.rules[0].backendRefs[0].weight", "Unsupported value spec.rules[0].backendRefs[1].group",
			"Unsupported value spec.rules[0].backendRefs[1].kind", "Required value spec.rules[0].backendRefs[2].port",
			"Invalid value spec.rules[0].backendRefs[3].port", "Invalid value spec.rules[0].backendRefs[4].name",
			"Invalid value spec.rules[0].backendRefs[5].namespace", "Invalid value spec.rules[1].backendRefs[0].weight"}},
		{"unsupported filters", `  rules:
  - filters:
    - {type: ExtensionRef, extensionRef: {group: x, kind: Y, name: z}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}}}
    - {type: CORS, cors: {allowOrigins: ["*"]}}
    - {type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: a, port: 80}}}
    backendRefs: [{name: svc, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]}]
`, []string{
			"Unsupported value spec.rules[0].filters[0].type", "Unsupported value spec.rules[0].filters[1].type",
			"Unsupported value spec.rules[0].filters[2].type", "Unsupported value spec.rules[0].filters[3].type",
			"Forbidden spec.rules[0].backendRefs[0].filters"}},
		{"header modifiers", `  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-A, value: "a\r\nInjected: 1"}, {name: x-b, value: "tab\tok"}, {name: X-B, value: dup}]
        add: [{name: "bad:name", value: v}, {name: Transfer-Encoding, value: chunked}]
        remove: [Content-Length, x-c]
    - {type: RequestHeaderModifier, requestHeaderModifier: {}}
    - {type: ResponseHeaderModifier}
    backendRefs: [{name: svc, port: 80}]
`, []string{
			"Invalid value spec.rules[0].filters[0].requestHeaderModifier.set[0].value",
			"Duplicate value spec.rules[0].filters[0].requestHeaderModifier.set[2].name",
			"Invalid value spec.rules[0].filters[0].requestHeaderModifier.add[0].name",
			"Forbidden spec.rules[0].filters[0].requestHeaderModifier.add[1].name",
			"Forbidden spec.rules[0].filters[0].requestHeaderModifier.remove[0]",
			"Duplicate value spec.rules[0].filters[1].type",
			"Required value spec.rules[0].filters[2].responseHeaderModifier"}},
		{"redirects", `  rules:
  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305, scheme: ftp, hostname: "*.x.com", port: 0}}]
  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 308, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
    matches: [{path: {type: PathPrefix, value: /a}}, {path: {type: PathPrefix, value: /b}}]
  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
    matches: [{path: {type: Exact, value: /a}}]
  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: "no-slash"}}}]
    backendRefs: [{name: svc, port: 80}]
  - filters: [{type: RequestRedirect, requestRedirect: {}}, {type: URLRewrite, urlRewrite: {}}]
`, []string{
			"Unsupported value spec.rules[0].filters[0].requestRedirect.scheme",
			"Invalid value spec.rules[0].filters[0].requestRedirect.hostname",
			"Invalid value spec.rules[0].filters[0].requestRedirect.port",
			"Unsupported value spec.rules[0].filters[0].requestRedirect.statusCode",
			"Invalid value spec.rules[1].filters[0].requestRedirect.path.type",
			"Invalid value spec.rules[2].filters[0].requestRedirect.path.type",
			"Invalid value spec.rules[3].filters[0].requestRedirect.path.replaceFullPath",
			"Forbidden spec.rules[3].backendRefs",
			"Forbidden spec.rules[4].filters[1].type"}},
		{"rewrites", `  rules:
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch}}}]
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: Regex}}}]
  - regexRewrite: {substitution: /x}
    matches: [{path: {type: PathPrefix, value: /a}}]
  - regexRewrite: {substitution: /x/$1}
    matches: [{path: {type: RegularExpression, value: "/a/(.*)"}}, {path: {type: RegularExpression, value: "/b/(.*)"}}]
  - regexRewrite: {substitution: "x"}
    matches: [{path: {type: RegularExpression, value: "/a/(.*)"}}]
`, []string{
			"Required value spec.rules[1].filters[0].urlRewrite.path.replacePrefixMatch",
			"Unsupported value spec.rules[2].filters[0].urlRewrite.path.type",
			"Invalid value spec.rules[3].regexRewrite", "Invalid value spec.rules[4].regexRewrite",
			"Invalid value spec.rules[5].regexRewrite.substitution"}},
		{"timeouts", `  rules:
  - timeouts: {request: 10s, backendRequest: 11s}
  - timeouts: {request: 1.5s}
  - timeouts: {backendRequest: 10d}
  - timeouts: {request: 1h1m1s1ms1s}
  - timeouts: {request: 0s, backendRequest: 1h}
  - timeouts: {request: 1m500ms, backendRequest: 0s}
  - retry: {attempts: 6}
`, []string{
			"Invalid value spec.rules[0].timeouts.backendRequest", "Invalid value spec.rules[1].timeouts.request",
			"Invalid value spec.rules[2].timeouts.backendRequest", "Invalid value spec.rules[3].timeouts.request",
			"Invalid value spec.rules[6].retry.attempts"}},
		{"policy", okRule + `  policy:
    maxRequestBodySize: 2Mi
    sourceRanges: [10.0.0.0/8, 10.1.2.3, "2001:db8::/32", nonsense]
    sessionAffinity: {type: Header, cookieName: "bad;name"}
    cors: {allowOrigins: ["https://a.com", "ftp://b", "https://*.c.com:8443"], allowMethods: [GET, FETCH, "*"], allowHeaders: ["x-a", "bad header"]}
`, []string{
			"Invalid value spec.policy.maxRequestBodySize", "Invalid value spec.policy.sourceRanges[1]",
			"Invalid value spec.policy.sourceRanges[3]", "Unsupported value spec.policy.sessionAffinity.type",
			"Invalid value spec.policy.sessionAffinity.cookieName", "Invalid value spec.policy.cors.allowOrigins[1]",
			"Unsupported value spec.policy.cors.allowMethods[1]", "Invalid value spec.policy.cors.allowHeaders[1]"}},
		{"tls", okRule + `  tls:
  - secretName: Bad_Name
  - secretName: ok
    hosts: ["*.ok.com", "bad host"]
`, []string{
			"Invalid value spec.tls[0].secretName", "Required value spec.tls[0].hosts", "Invalid value spec.tls[1].hosts[1]"}},
		{"rule names", `  rules:
  - name: api
  - name: api
  - name: Bad_Name
`, []string{"Duplicate value spec.rules[1].name", "Invalid value spec.rules[2].name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := parseSnapshot(t, specRoute(tc.spec))
			r, errs := Compile(&s.Routes[0], Defaults{})
			var got []string
			for _, e := range errs {
				got = append(got, e.Type.String()+" "+e.Field)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\nall: %v", diff, errs)
			}
			if (r == nil) != (len(errs) > 0) {
				t.Errorf("route %v with errors %v", r, errs)
			}
		})
	}
}

func TestCompileDefaultsAndValues(t *testing.T) {
	text := specRoute(`  hostnames: [Shop.Example.COM]
  tls: [{secretName: shop-tls}]
  rules:
  - name: api
    matches:
    - {path: {type: PathPrefix, value: /api/}, method: GET, headers: [{name: x-a, value: "1"}, {name: X-A, value: "2"}], queryParams: [{name: q, value: v}, {name: q, value: w}]}
    backendRefs: [{name: api, port: 8080, weight: 3}, {name: other, namespace: shared, port: 80}]
    retry: {attempts: 2}
  - timeouts: {request: 10s}
    filters: [{type: URLRewrite, urlRewrite: {hostname: Internal.Example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
  - timeouts: {request: 1m500ms, backendRequest: 30s}
  - matches: [{path: {type: RegularExpression, value: "/u/([0-9]+)"}}]
    regexRewrite: {substitution: /users/$1}
  policy:
    maxRequestBodySize: 512Ki
    sourceRanges: [10.1.2.3/8]
    accessLog: false
    sessionAffinity: {type: Cookie, ttl: 1h}
`)
	s := parseSnapshot(t, text)
	r, errs := Compile(&s.Routes[0], Defaults{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := r.Hostnames, []string{"shop.example.com"}; !cmp.Equal(got, want) {
		t.Errorf("hostnames %v", got)
	}
	if diff := cmp.Diff([]TLS{{Hosts: []string{"shop.example.com"}, Secret: types.NamespacedName{Namespace: "ns", Name: "shop-tls"}}}, r.TLS); diff != "" {
		t.Errorf("tls: %s", diff)
	}
	wantPolicy := Policy{MaxRequestBodyBytes: 512 << 10, SourceRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		SessionAffinity: &SessionAffinity{CookieName: "portico-affinity", TTL: time.Hour}}
	if diff := cmp.Diff(wantPolicy, r.Policy, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	m := r.Rules[0].Matches[0]
	if m.Path != "/api" || m.Method != "GET" || len(m.Headers) != 1 || m.Headers[0] != (HeaderMatch{Name: "X-A", Value: "1"}) ||
		len(m.QueryParams) != 1 || m.QueryParams[0].Value != "v" {
		t.Errorf("match %+v", m)
	}
	wantBackends := []Backend{{Key: BackendKey{"ns", "api", 8080}, Weight: 3}, {Key: BackendKey{"shared", "other", 80}, Weight: 1}}
	if diff := cmp.Diff(wantBackends, r.Rules[0].Backends); diff != "" {
		t.Errorf("backends: %s", diff)
	}
	if r.Rules[0].RetryAttempts != 2 || r.Rules[0].Name != "api" || r.Rules[0].Route != r {
		t.Errorf("rule 0: %+v", r.Rules[0])
	}
	timeouts := []Timeouts{{60 * time.Second, 60 * time.Second}, {10 * time.Second, 10 * time.Second}, {time.Minute + 500*time.Millisecond, 30 * time.Second}}
	for i, want := range timeouts {
		if got := r.Rules[i].Timeouts; got != want {
			t.Errorf("rule %d timeouts %+v, want %+v", i, got, want)
		}
	}
	if rw := r.Rules[1].Rewrite; rw.Hostname != "internal.example.com" || *rw.Path != (PathModifier{"ReplacePrefixMatch", "/v2"}) {
		t.Errorf("rewrite %+v", rw)
	}
	if got := r.Rules[3].Rewrite.RewritePath("/u/42", ""); got != "/users/42" {
		t.Errorf("regex rewrite: %q", got)
	}
	if len(r.Rules[2].Matches) != 1 || r.Rules[2].Matches[0].Path != "/" || r.Rules[2].Matches[0].PathType != "PathPrefix" {
		t.Errorf("default match %+v", r.Rules[2].Matches)
	}

	// EdgeProxy defaults apply where the route says nothing, and cap what it may raise.
	d := Defaults{MaxRequestBodyBytes: 256 << 10, RequestTimeout: 30 * time.Second, BackendTimeout: 20 * time.Second}
	if _, errs := Compile(&s.Routes[0], d); len(errs) != 1 || errs[0].Field != "spec.policy.maxRequestBodySize" {
		t.Errorf("body over the EdgeProxy limit: %v", errs)
	}
	s.Routes[0].Spec.Policy = nil
	r, errs = Compile(&s.Routes[0], d)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if r.Policy.MaxRequestBodyBytes != 256<<10 || !r.Policy.AccessLog || r.Rules[0].Timeouts != (Timeouts{30 * time.Second, 20 * time.Second}) {
		t.Errorf("defaults not applied: %+v %+v", r.Policy, r.Rules[0].Timeouts)
	}
	if _, errs := Compile(nil, d); len(errs) != 1 {
		t.Errorf("nil route: %v", errs)
	}
}

func TestParseDuration(t *testing.T) {
	ok := map[string]time.Duration{
		"0s": 0, "10s": 10 * time.Second, "1m500ms": time.Minute + 500*time.Millisecond, "99999h": 99999 * time.Hour,
		"1h2m3s4ms": time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond, "5ms": 5 * time.Millisecond,
	}
	for s, want := range ok {
		if got, err := parseDuration(s); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "1", "s", "1.5s", "-1s", "100000s", "1d", "1us", "1h1m1s1ms1s", " 1s", "1s ", "1S", "1m5"} {
		if got, err := parseDuration(s); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", s, got)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"a.com": "a.com", "A.Com": "a.com", "a.com:80": "a.com", "a.com.": "a.com", "A.com.:443": "a.com",
		"[::1]:80": "::1", "[::1]": "::1", "::1": "::1", "": "", ".": ".", "a.com..": "a.com.",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}
