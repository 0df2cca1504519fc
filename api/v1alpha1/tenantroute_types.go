package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TenantRouteSpec is the one normalized route. Rules speak the Gateway API HTTPRoute vocabulary;
// Policy adds what Ingress users rely on and HTTPRoute lacks.
type TenantRouteSpec struct {
	// EdgeProxy whose proxies serve this route.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	EdgeProxy string `json:"edgeProxy"`

	// Hostnames the route serves: exact names or "*.example.com" wildcards. Empty means every host of
	// the EdgeProxy that no other route claims (an Ingress rule without host).
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Hostnames []Hostname `json:"hostnames,omitempty"`

	// TLS terminates HTTPS for some or all of the hostnames.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	TLS []RouteTLS `json:"tls,omitempty"`

	// Rules, evaluated by specificity (never by their order): exact path, longest prefix, method,
	// most header matches, most query matches.
	// At most 16 rules and 128 matches in all, as in HTTPRoute, which keeps the CEL validation of a
	// route within the API server's cost budget; translation splits larger Ingresses.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:message="the total number of matches across all rules in a route must be at most 128",rule="(self.size() > 0 ? (has(self[0].matches) ? self[0].matches.size() : 0) : 0) + (self.size() > 1 ? (has(self[1].matches) ? self[1].matches.size() : 0) : 0) + (self.size() > 2 ? (has(self[2].matches) ? self[2].matches.size() : 0) : 0) + (self.size() > 3 ? (has(self[3].matches) ? self[3].matches.size() : 0) : 0) + (self.size() > 4 ? (has(self[4].matches) ? self[4].matches.size() : 0) : 0) + (self.size() > 5 ? (has(self[5].matches) ? self[5].matches.size() : 0) : 0) + (self.size() > 6 ? (has(self[6].matches) ? self[6].matches.size() : 0) : 0) + (self.size() > 7 ? (has(self[7].matches) ? self[7].matches.size() : 0) : 0) + (self.size() > 8 ? (has(self[8].matches) ? self[8].matches.size() : 0) : 0) + (self.size() > 9 ? (has(self[9].matches) ? self[9].matches.size() : 0) : 0) + (self.size() > 10 ? (has(self[10].matches) ? self[10].matches.size() : 0) : 0) + (self.size() > 11 ? (has(self[11].matches) ? self[11].matches.size() : 0) : 0) + (self.size() > 12 ? (has(self[12].matches) ? self[12].matches.size() : 0) : 0) + (self.size() > 13 ? (has(self[13].matches) ? self[13].matches.size() : 0) : 0) + (self.size() > 14 ? (has(self[14].matches) ? self[14].matches.size() : 0) : 0) + (self.size() > 15 ? (has(self[15].matches) ? self[15].matches.size() : 0) : 0) <= 128"
	Rules []TenantRouteRule `json:"rules"`

	// Policy applies to every rule of the route.
	// +optional
	Policy *RoutePolicy `json:"policy,omitempty"`
}

// RouteTLS terminates TLS for hosts with the key pair in a kubernetes.io/tls Secret of the route's namespace.
type RouteTLS struct {
	// Hosts covered by the certificate; every hostname of the route when empty.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Hosts []Hostname `json:"hosts,omitempty"`
	// SecretName of the kubernetes.io/tls Secret in the route's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName"`
	// Issuer overrides the EdgeProxy's default cert-manager issuer for this Secret.
	// +optional
	Issuer *IssuerReference `json:"issuer,omitempty"`
}

// TenantRouteRule matches requests and sends them to backends, after filters.
//
// +kubebuilder:validation:XValidation:message="RequestRedirect filter must not be used together with backendRefs",rule="(has(self.backendRefs) && size(self.backendRefs) > 0) ? (!has(self.filters) || self.filters.all(f, !has(f.requestRedirect))): true"
// +kubebuilder:validation:XValidation:message="regexRewrite needs a RegularExpression path match",rule="!has(self.regexRewrite) || (has(self.matches) && size(self.matches) > 0 && self.matches.all(m, has(m.path) && m.path.type == 'RegularExpression'))"
type TenantRouteRule struct {
	// Name of the rule, unique in the route; appears in access logs and metrics.
	// +optional
	Name *gwapiv1.SectionName `json:"name,omitempty"`

	// Matches; a request matching any of them takes this rule. No matches means path prefix "/".
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Matches []gwapiv1.HTTPRouteMatch `json:"matches,omitempty"`

	// Filters applied to requests taking this rule.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:message="May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",rule="!(self.exists(f, f.type == 'RequestRedirect') && self.exists(f, f.type == 'URLRewrite'))"
	// +kubebuilder:validation:XValidation:message="RequestHeaderModifier filter cannot be repeated",rule="self.filter(f, f.type == 'RequestHeaderModifier').size() <= 1"
	// +kubebuilder:validation:XValidation:message="ResponseHeaderModifier filter cannot be repeated",rule="self.filter(f, f.type == 'ResponseHeaderModifier').size() <= 1"
	// +kubebuilder:validation:XValidation:message="RequestRedirect filter cannot be repeated",rule="self.filter(f, f.type == 'RequestRedirect').size() <= 1"
	// +kubebuilder:validation:XValidation:message="URLRewrite filter cannot be repeated",rule="self.filter(f, f.type == 'URLRewrite').size() <= 1"
	// Header values are checked for control characters by routing.Compile (condition Accepted=False,
	// Invalid, naming the field): a CEL check over every header of every filter exceeds the API
	// server's cost budget many times over.
	// +optional
	Filters []gwapiv1.HTTPRouteFilter `json:"filters,omitempty"`

	// BackendRefs receive the traffic, split by weight. No backends (and no redirect) answers 500.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:message="backend weights must not all be zero",rule="self.size() == 0 || self.exists(b, !has(b.weight) || b.weight > 0)"
	// +optional
	BackendRefs []gwapiv1.HTTPBackendRef `json:"backendRefs,omitempty"`

	// Timeouts of requests taking this rule.
	// +optional
	Timeouts *gwapiv1.HTTPRouteTimeouts `json:"timeouts,omitempty"`

	// RegexRewrite rewrites the path with the RE2 path match's capture groups ($1, ${name}), the way
	// ingress-nginx's rewrite-target does with use-regex.
	// +optional
	RegexRewrite *RegexRewrite `json:"regexRewrite,omitempty"`

	// Retry idempotent requests whose connection to the backend failed.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// RegexRewrite replaces the request path using the rule's RegularExpression path match.
type RegexRewrite struct {
	// Substitution, with $1 / ${name} references to the path match's capture groups. Must start with '/'.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^\s\x00-\x1f\x7f]*$`
	Substitution string `json:"substitution"`
}

// RetryPolicy retries on connection failures only, and only for idempotent methods.
type RetryPolicy struct {
	// Attempts after the first; 0 disables retries.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	Attempts int32 `json:"attempts"`
}

// RoutePolicy is what Ingress users need and HTTPRoute lacks. Limits may only be lower than the
// EdgeProxy's.
type RoutePolicy struct {
	// MaxRequestBodySize; requests with a larger body get 413. The EdgeProxy's limit when unset.
	// +optional
	MaxRequestBodySize *resource.Quantity `json:"maxRequestBodySize,omitempty"`

	// SourceRanges, when set, admit only clients in these CIDRs; others get 403.
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="sourceRanges must be CIDRs such as 192.0.2.0/24"
	// +listType=set
	// +optional
	SourceRanges []string `json:"sourceRanges,omitempty"`

	// SessionAffinity pins a client to one endpoint.
	// +optional
	SessionAffinity *SessionAffinity `json:"sessionAffinity,omitempty"`

	// CORS answers preflight requests and adds CORS headers.
	// +optional
	CORS *gwapiv1.HTTPCORSFilter `json:"cors,omitempty"`

	// AccessLog set to false silences the access log for this route (health checks).
	// +optional
	AccessLog *bool `json:"accessLog,omitempty"`

	// Websocket allows Upgrade: websocket on this route; long-lived upgraded connections are not
	// cut by the request timeout.
	// +optional
	Websocket bool `json:"websocket,omitempty"`
}

// SessionAffinity by cookie.
type SessionAffinity struct {
	// Type of affinity; only Cookie.
	// +kubebuilder:validation:Enum=Cookie
	Type string `json:"type"`
	// CookieName; "portico-affinity" when unset.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	// +optional
	CookieName string `json:"cookieName,omitempty"`
	// TTL of the cookie; a session cookie when unset.
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// RouteSource names the Ingress or HTTPRoute a TenantRoute was lowered from.
type RouteSource struct {
	// Group of the source object ("networking.k8s.io", "gateway.networking.k8s.io").
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the source object (Ingress, HTTPRoute).
	Kind string `json:"kind"`
	// Name of the source object, in the TenantRoute's namespace.
	Name string `json:"name"`
	// Generation of the source that was translated.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// TenantRouteStatus is what the operator and the proxies observed.
type TenantRouteStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted, ResolvedRefs, CertificateReady, Programmed.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Source is the object this route was generated from; unset for hand-written routes.
	// +optional
	Source *RouteSource `json:"source,omitempty"`
	// ProgrammedVersion is the snapshot version that made this route live on every connected proxy.
	// +optional
	ProgrammedVersion string `json:"programmedVersion,omitempty"`
}

// TenantRoute is the normalized route every Ingress and HTTPRoute is lowered into, and which app
// teams may also write by hand.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tr,categories=portico
// +kubebuilder:printcolumn:name="EdgeProxy",type=string,JSONPath=`.spec.edgeProxy`
// +kubebuilder:printcolumn:name="Hosts",type=string,JSONPath=`.spec.hostnames`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TenantRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TenantRouteSpec   `json:"spec"`
	Status TenantRouteStatus `json:"status,omitempty"`
}

// TenantRouteList is a list of TenantRoute.
//
// +kubebuilder:object:root=true
type TenantRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantRoute `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TenantRoute{}, &TenantRouteList{})
}
