package translate

import (
	corev1 "k8s.io/api/core/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// GatewayInput is everything the translation of one HTTPRoute needs. The caller lists it from its
// cache; translation itself reads nothing. Objects the route does not refer to are ignored, so the
// caller may pass more than needed.
type GatewayInput struct {
	// Route to translate.
	Route *gwapiv1.HTTPRoute
	// Gateways the route's parentRefs name. A parentRef naming a Gateway that is not here, or one
	// whose GatewayClass is not Portico's, is left alone: no status, no routes.
	Gateways []gwapiv1.Gateway
	// GatewayClasses of those Gateways.
	GatewayClasses []gwapiv1.GatewayClass
	// EdgeProxies of the cluster: a parametersRef naming one that is not here makes its Gateway
	// InvalidParameters, and the EdgeProxy's traffic defaults (timeouts) decide which rules compile.
	EdgeProxies []edgev1alpha1.EdgeProxy
	// Namespaces, for their labels (listeners' allowedRoutes.namespaces.selector). The route's own
	// namespace is the one that matters; a missing one has no labels.
	Namespaces []corev1.Namespace
	// ReferenceGrants of the namespaces the route's backends and the Gateways' certificates live in.
	// Both apiVersions share the type (v1beta1 is the storage version).
	ReferenceGrants []gwapiv1beta1.ReferenceGrant
	// Services the route's backendRefs name (its own namespace and granted others).
	Services []corev1.Service
	// Secrets the Gateways' HTTPS listeners name in certificateRefs.
	Secrets []corev1.Secret
}

// GatewayResult of translating one HTTPRoute.
type GatewayResult struct {
	// Routes are the TenantRoutes to apply, in the route's namespace, owned by the HTTPRoute, in a
	// stable order: per parent Gateway (in parentRefs order), "httproute-<route>-<gateway>-<hash>"
	// (split into "-2", "-3"... past 64 hostnames) and, when a listener and the route both name no
	// hostname, "<...>-catch-all". Nil for a route no parent accepts.
	Routes []*edgev1alpha1.TenantRoute `json:"routes,omitempty"`
	// Parents holds one status per parentRef that names a Gateway of a Portico GatewayClass, in
	// parentRefs order, with ControllerName set. The reconciler merges them into status.parents and
	// never touches entries of other controllers.
	Parents []gwapiv1.RouteParentStatus `json:"parents,omitempty"`
	// Certificates are the TLS key pairs the Routes need that a TenantRoute cannot name: those of
	// Secrets outside the route's namespace (a TenantRoute's spec.tls names Secrets of its own
	// namespace only). Files mode serves them for these hosts; in a cluster, the snapshot builder
	// derives the same certificates from the Gateways its EdgeProxy serves (ListenerCertificates)
	// and never from anything written on a TenantRoute.
	Certificates []RouteCertificate `json:"certificates,omitempty"`
	// Warnings are worth an Event on the HTTPRoute: things Portico serves differently from what the
	// route asks, where the status conditions have no room to say so.
	Warnings []string `json:"warnings,omitempty"`
}

// RouteCertificate is a certificate a TenantRoute serves from a Secret it cannot name itself.
type RouteCertificate struct {
	// Route is the TenantRoute's name (in the HTTPRoute's namespace).
	Route string `json:"route"`
	// Listener is the Gateway listener the certificate belongs to: "<namespace>/<gateway>/<listener>".
	Listener string `json:"listener"`
	// Hosts the certificate serves (SNI).
	Hosts []edgev1alpha1.Hostname `json:"hosts"`
	// SecretNamespace and SecretName name the kubernetes.io/tls Secret holding the key pair, checked
	// by the translation: it exists, parses, and a ReferenceGrant lets the Gateway use it.
	SecretNamespace string `json:"secretNamespace"`
	SecretName      string `json:"secretName"`
}

// HTTPRoute translates one HTTPRoute into TenantRoutes and its parent statuses. It is pure: the same
// input gives the same result.
func HTTPRoute(in GatewayInput) GatewayResult {
	if in.Route == nil {
		return GatewayResult{}
	}
	t := newRouteTranslator(in)
	return t.translate()
}

// HTTPRouteSource is the status.source the reconciler records on every TenantRoute of the HTTPRoute.
func HTTPRouteSource(r *gwapiv1.HTTPRoute) *edgev1alpha1.RouteSource {
	return &edgev1alpha1.RouteSource{
		Group:              gwapiv1.GroupName,
		Kind:               httpRouteKind,
		Name:               r.Name,
		ObservedGeneration: r.Generation,
	}
}

// HTTPRouteSourceLabels select the TenantRoutes generated from the named HTTPRoute (in its
// namespace), for finding the ones a new translation no longer produces.
func HTTPRouteSourceLabels(routeName string) map[string]string {
	return sourceLabels(httpRouteKind, routeName)
}

// GatewayRouteName is the name of the TenantRoute lowering an HTTPRoute for one parent Gateway:
// "httproute-<route>-<gateway>-<hash>", the hash of all three names keeping routes of different
// Gateways (or of names that concatenate alike) apart, shortened to fit an object name.
func GatewayRouteName(routeName, gatewayNamespace, gatewayName string) string {
	suffix := "-" + hashOf(routeName+"/"+gatewayNamespace+"/"+gatewayName)
	// Leave room for the "-catch-all" and "-<n>" suffixes of further routes.
	base := shorten(httpRoutePrefix+routeName+"-"+gatewayName, maxObjectName-len(suffix)-len(catchAllSuffix))
	return base + suffix
}
