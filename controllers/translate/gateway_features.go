package translate

import (
	"sigs.k8s.io/gateway-api/pkg/features"
)

// GatewayFeature is one Gateway API conformance feature Portico supports, and how.
type GatewayFeature struct {
	// Name is the conformance feature name (sigs.k8s.io/gateway-api/pkg/features).
	Name features.FeatureName
	// Portico says how Portico provides it, for docs/gateway-api.md.
	Portico string
}

// GatewayFeatures are the conformance features Portico claims, sorted by name: the GatewayClass
// status lists them as supportedFeatures, docs/gateway-api.md as a table. A feature belongs here only
// when the translation and the data plane both implement it and its conformance tests pass
// (make test-conformance, docs/conformance/README.md). HTTPRouteParentRefPort is not claimed:
// parentRefs[].port is honoured, but its test needs several HTTP ports on one Gateway, and an
// EdgeProxy serves one.
var GatewayFeatures = []GatewayFeature{
	{features.SupportGateway, "Gateways of a Portico GatewayClass, HTTP and HTTPS (Terminate) listeners, served by an EdgeProxy."},
	{features.SupportGatewayInfrastructure, "spec.infrastructure: parametersRef names the EdgeProxy (else InvalidParameters); labels and annotations go onto the generated EdgeProxy and its proxy pods, which also carry gateway.networking.k8s.io/gateway-name."},
	{features.SupportHTTPRoute, "HTTPRoutes lowered to TenantRoutes: path (Exact, PathPrefix, RegularExpression as RE2), header and query matches, request header modifier, redirects, weighted Service backends."},
	{features.SupportHTTPRoute303RedirectStatusCode, "RequestRedirect with statusCode 303."},
	{features.SupportHTTPRoute307RedirectStatusCode, "RequestRedirect with statusCode 307."},
	{features.SupportHTTPRoute308RedirectStatusCode, "RequestRedirect with statusCode 308."},
	{features.SupportHTTPRouteBackendProtocolH2C, "A Service port with appProtocol kubernetes.io/h2c is reached over cleartext HTTP/2; the HTTP listeners of a Gateway's own proxies also accept prior-knowledge h2c."},
	{features.SupportHTTPRouteBackendProtocolWebSocket, "WebSocket upgrades are proxied on every HTTPRoute (the TenantRoute's policy.websocket is set)."},
	{features.SupportHTTPRouteBackendTimeout, "timeouts.backendRequest bounds each attempt until the backend's response headers."},
	{features.SupportHTTPRouteHostRewrite, "URLRewrite hostname."},
	{features.SupportHTTPRouteMethodMatching, "Method matches."},
	{features.SupportHTTPRouteNamedRouteRule, "Rule names are kept; access logs and metrics show them (an unnamed rule is called rule-N, N its index)."},
	{features.SupportHTTPRoutePathRedirect, "RequestRedirect path, ReplaceFullPath and ReplacePrefixMatch."},
	{features.SupportHTTPRoutePathRewrite, "URLRewrite path, ReplaceFullPath and ReplacePrefixMatch."},
	{features.SupportHTTPRoutePortRedirect, "RequestRedirect port."},
	{features.SupportHTTPRouteQueryParamMatching, "Query parameter matches, Exact and RegularExpression."},
	{features.SupportHTTPRouteRequestTimeout, "timeouts.request bounds the whole request."},
	{features.SupportHTTPRouteResponseHeaderModification, "ResponseHeaderModifier."},
	{features.SupportHTTPRouteSchemeRedirect, "RequestRedirect scheme."},
	{features.SupportReferenceGrant, "Cross-namespace backendRefs (from HTTPRoute to Service) and certificateRefs (from Gateway to Secret) need a ReferenceGrant; removing it revokes them."},
}

// SupportedGatewayFeatures are the names of GatewayFeatures, sorted.
var SupportedGatewayFeatures = func() []features.FeatureName {
	out := make([]features.FeatureName, len(GatewayFeatures))
	for i, f := range GatewayFeatures {
		out[i] = f.Name
	}
	return out
}()
