package v1alpha1

// Names that other components agree on. Keeping them here means the operator, the proxy and the
// tests cannot spell them differently.
const (
	// IngressControllerName is the spec.controller of every IngressClass Portico serves.
	IngressControllerName = "edge.portico.dev/ingress-controller"
	// GatewayControllerName is the controllerName of every GatewayClass Portico serves.
	GatewayControllerName = "edge.portico.dev/gateway-controller"
	// FieldOwner is the server-side apply field manager of the operator.
	FieldOwner = "portico-operator"

	// LabelEdgeProxy names the EdgeProxy an object belongs to.
	LabelEdgeProxy = "edge.portico.dev/edgeproxy"
	// LabelSourceKind and LabelSourceName name the Ingress or HTTPRoute a TenantRoute was lowered from.
	LabelSourceKind = "edge.portico.dev/source-kind"
	LabelSourceName = "edge.portico.dev/source-name"
	// AnnotationTranslation is set on TenantRoutes generated from an Ingress: JSON saying which
	// generation of the source they were translated from, the annotations Portico did not reproduce
	// exactly, and whether the source's latest version failed to translate. The TenantRoute
	// reconciler, the only writer of TenantRoute status, turns it into status.source and the
	// Translated condition.
	AnnotationTranslation = "edge.portico.dev/translation"
	// AnnotationAllowUnmanagedEndpointSlices on a GatewayClass ("true") sets
	// spec.allowUnmanagedEndpointSlices on the EdgeProxies Portico generates for the class's
	// Gateways. A GatewayClass is the platform team's (cluster-scoped), never a tenant's; the
	// generated EdgeProxies have no other place for the platform team's choice.
	AnnotationAllowUnmanagedEndpointSlices = "edge.portico.dev/allow-unmanaged-endpointslices"

	// DefaultMaxRequestBodyBytes is the per-route body cap when neither route nor EdgeProxy set one (1 MiB).
	DefaultMaxRequestBodyBytes int64 = 1 << 20
	// MaxRegexLength caps every regular expression a tenant may write (path matches, rewrites).
	MaxRegexLength = 1024
)
