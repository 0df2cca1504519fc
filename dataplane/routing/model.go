// Package routing is the pure heart of the data plane: Compile validates one TenantRoute (the same
// function the operator uses to decide its status), Build turns a snapshot into an immutable *Table,
// and Table.Lookup picks the rule for a request. No I/O, no clock, no Kubernetes client.
//
// A *Table is never mutated after Build; the proxy holds it behind an atomic.Pointer and swaps it whole.
// Endpoints are not part of the table: rules name backends by BackendKey, and the proxy resolves
// endpoints from its own store, so endpoint churn never rebuilds routes.
package routing

import (
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// BackendKey names one Service port: what a rule sends traffic to and what endpoints are keyed by.
type BackendKey struct {
	Namespace string
	Name      string
	Port      int32
}

// Backend is one weighted backend of a rule.
type Backend struct {
	Key    BackendKey
	Weight int32
}

// HeaderModifier is a compiled RequestHeaderModifier / ResponseHeaderModifier filter. Names are
// canonical (http.CanonicalHeaderKey).
type HeaderModifier struct {
	Set    []HeaderValue
	Add    []HeaderValue
	Remove []string
}

// HeaderValue is one header name and value.
type HeaderValue struct{ Name, Value string }

// PathModifier says how a redirect or rewrite changes the path.
type PathModifier struct {
	// Type is "ReplaceFullPath" or "ReplacePrefixMatch" (Gateway API).
	Type string
	// Value is the full path or the replacement for the matched prefix.
	Value string
}

// Redirect is a compiled RequestRedirect filter. Empty fields keep the request's value.
type Redirect struct {
	Scheme     string
	Hostname   string
	Port       int32 // 0 = derive per Gateway API rules
	Path       *PathModifier
	StatusCode int // 301, 302, 303, 307 or 308
}

// Rewrite is a compiled URLRewrite filter or regex rewrite.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
	// Regex, when set, replaces the path with Regex.ReplaceAllString(path, RegexSubstitution)
	// (the rule's RegularExpression path match, anchored).
	Regex             *regexp.Regexp
	RegexSubstitution string
}

// SessionAffinity pins clients to an endpoint with a cookie.
type SessionAffinity struct {
	CookieName string
	TTL        time.Duration // 0 = session cookie
}

// Policy is the route-wide policy block, with EdgeProxy defaults already applied.
type Policy struct {
	MaxRequestBodyBytes int64
	SourceRanges        []netip.Prefix // empty = everyone
	SessionAffinity     *SessionAffinity
	// CORS, when set, answers preflight requests and adds CORS response headers.
	CORS      *CORS
	AccessLog bool
	Websocket bool
}

// CORS is the compiled policy.cors block (Gateway API HTTPCORSFilter semantics).
type CORS struct {
	AllowOrigins     []string `json:"allowOrigins,omitempty"` // "*" or scheme://host[:port]; host may be "*" or start with "*."
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`  // upper-case methods or "*"
	AllowHeaders     []string `json:"allowHeaders,omitempty"`  // canonical names or "*"
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"` // canonical names or "*"
	MaxAge           int32    `json:"maxAge"`                  // seconds; 5 when the route says nothing
}

// Timeouts of a rule; 0 means "no limit" only where the Gateway API says so, otherwise defaults apply.
type Timeouts struct {
	Request time.Duration
	Backend time.Duration
}

// TLS is one TLS block of a route: hosts served with the key pair in Secret.
type TLS struct {
	Hosts  []string
	Secret types.NamespacedName
}

// Route is a compiled, validated TenantRoute. Immutable.
type Route struct {
	Namespace string
	Name      string
	// Created orders conflicting routes: the oldest wins (then namespace/name).
	Created time.Time
	// Hostnames, lower-cased; empty = the catch-all of the EdgeProxy.
	Hostnames []string
	TLS       []TLS
	Policy    Policy
	Rules     []*Rule
	// Source names the Ingress/HTTPRoute this route came from ("" for hand-written routes).
	SourceKind, SourceName string
	// DeepWildcards: the route's wildcard hostnames match any number of extra labels, as the
	// Gateway API says ("*.example.com" serves "a.b.example.com"); routes from Ingresses and
	// hand-written ones keep Ingress's one label. Set for routes translated from HTTPRoutes.
	DeepWildcards bool
}

// Rule is one compiled rule. Immutable.
type Rule struct {
	Route *Route
	Index int
	Name  string

	// Matches of the rule; a rule written without matches has one: PathPrefix "/".
	Matches []RouteMatch

	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *Rewrite
	Backends        []Backend
	Timeouts        Timeouts
	RetryAttempts   int
}

// RouteMatch is one compiled HTTPRouteMatch: every condition must hold.
type RouteMatch struct {
	// Index of the match in the rule's matches (0 for the implicit match of a rule without any).
	Index int
	// PathType is Exact, PathPrefix or RegularExpression.
	PathType gwapiv1.PathMatchType
	// Path is the value as written, except that a PathPrefix loses its trailing "/" ("/foo/" and
	// "/foo" are the same prefix; "/" stays "/").
	Path string
	// PathRegex is the anchored RE2 form of a RegularExpression path (it must match the whole path).
	PathRegex *regexp.Regexp
	// Method, upper-case; "" matches every method.
	Method string
	// Headers, names canonical, each name once (later duplicates are ignored, as Gateway API says).
	Headers []HeaderMatch
	// QueryParams, each name once (later duplicates are ignored).
	QueryParams []QueryMatch
}

// HeaderMatch matches one request header: Value exactly, or the anchored Regex when set.
type HeaderMatch struct {
	Name  string // canonical (http.CanonicalHeaderKey)
	Value string
	Regex *regexp.Regexp
}

// QueryMatch matches the first value of one query parameter: Value exactly, or the anchored Regex.
type QueryMatch struct {
	Name  string
	Value string
	Regex *regexp.Regexp
}

// Defaults are the EdgeProxy-level settings applied where a route says nothing.
type Defaults struct {
	MaxRequestBodyBytes int64
	RequestTimeout      time.Duration
	BackendTimeout      time.Duration
}

// Snapshot is everything Build needs. Routes are the admitted TenantRoutes of one EdgeProxy.
type Snapshot struct {
	Version  string
	Defaults Defaults
	Routes   []edgev1alpha1.TenantRoute
}

// RouteError reports a route that Build left out, with the field errors Compile gave.
type RouteError struct {
	Namespace, Name string
	Errors          field.ErrorList
}

// Request is what Lookup needs of an HTTP request. Path is already normalized by the proxy.
type Request struct {
	Host     string // may carry a port; matched case-insensitively
	Path     string
	Method   string
	Header   http.Header
	RawQuery string
}

// Match is the outcome of a successful Lookup.
type Match struct {
	Rule *Rule
	// MatchedPrefix is the path prefix that matched (for ReplacePrefixMatch); "" otherwise.
	MatchedPrefix string
}

// LookupResult says why a lookup did not match.
type LookupResult int

const (
	// Matched: Match is valid.
	Matched LookupResult = iota
	// NoHost: no route serves the host (404 no_route).
	NoHost
	// NoRule: the host is served but no rule matches the request (404 no_route).
	NoRule
)
