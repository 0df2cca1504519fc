package files

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

// Hooks are the decisions files mode shares with the operator. Nothing in dataplane imports
// controllers/, so the caller injects them (cmd/portico passes internal/filesmode, which wraps
// controllers/translate and controllers/admission): one implementation, whether a route comes from a
// cluster or a directory.
type Hooks struct {
	// TranslateIngress lowers one Ingress into TenantRoutes. Nil: Ingress and IngressClass
	// documents are reported as not read.
	TranslateIngress func(IngressInput) IngressOutput
	// TranslateGatewayAPI lowers the directory's HTTPRoutes into TenantRoutes through its Gateways,
	// with the Gateway API's attachment rules. Nil: GatewayClass, Gateway, HTTPRoute and
	// ReferenceGrant documents are reported as not read.
	TranslateGatewayAPI func(GatewayAPIInput) GatewayAPIOutput
	// Admit decides which routes the directory's EdgeProxy serves, and the routing defaults it sets.
	// Nil: routes are served without the EdgeProxy's checks or defaults, and a warning says so.
	Admit func(AdmitInput) AdmitOutput
}

// IngressInput is what the translation of one Ingress reads from the directory.
type IngressInput struct {
	Ingress        *networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	// Services and Ingresses of the Ingress's namespace (the Ingresses for its canaries).
	Services  []corev1.Service
	Ingresses []networkingv1.Ingress
	// EdgeProxy of the directory, nil when it has none.
	EdgeProxy *edgev1alpha1.EdgeProxy
}

// IngressOutput is the translation of one Ingress.
type IngressOutput struct {
	// Ignored says why the Ingress is not served at all (its class is not a Portico IngressClass of
	// the directory, say); reported as a warning. Routes and Problems are empty then.
	Ignored string
	Routes  []edgev1alpha1.TenantRoute
	// Problems are located in the Ingress: errors (none of its routes are served) and warnings
	// (annotations not reproduced exactly).
	Problems []Finding
}

// GatewayAPIInput is every Gateway API object of the directory and what their translation reads.
// Secrets have their stringData merged into data, as the API server would.
type GatewayAPIInput struct {
	GatewayClasses  []gwapiv1.GatewayClass
	Gateways        []gwapiv1.Gateway
	HTTPRoutes      []gwapiv1.HTTPRoute
	ReferenceGrants []gwapiv1beta1.ReferenceGrant
	Namespaces      []corev1.Namespace
	Services        []corev1.Service
	Secrets         []corev1.Secret
	// EdgeProxy of the directory, nil when it has none.
	EdgeProxy *edgev1alpha1.EdgeProxy
}

// GatewayAPIOutput is the translation of the directory's Gateway API objects, by index in the input.
type GatewayAPIOutput struct {
	// Gateways are the problems of each Gateway (invalid listeners, unresolved certificates...).
	Gateways []GatewayOutput
	// HTTPRoutes are the TenantRoutes of each HTTPRoute and its problems (parents refusing it).
	HTTPRoutes []HTTPRouteOutput
}

// GatewayOutput is what the translation says about one Gateway.
type GatewayOutput struct {
	// Ignored says why the Gateway is not served at all (its class is not Portico's); a warning.
	Ignored  string
	Problems []Finding
}

// HTTPRouteOutput is the translation of one HTTPRoute.
type HTTPRouteOutput struct {
	// Ignored says why the route is not served at all (no parentRef names a Portico Gateway of
	// the directory); a warning. The rest is empty then.
	Ignored string
	Routes  []edgev1alpha1.TenantRoute
	// Certificates are listener certificates the Routes serve from Secrets outside the route's
	// namespace, which a TenantRoute's spec.tls cannot name.
	Certificates []Certificate
	// Problems are located in the HTTPRoute: refusals by its parents, unresolved references and
	// translation warnings; all warnings, as a refused HTTPRoute does not stop others in a cluster.
	Problems []Finding
}

// Certificate is a key pair a TenantRoute serves for some hosts from a Secret of another namespace.
type Certificate struct {
	// Route is the TenantRoute's name, in its HTTPRoute's namespace.
	Route  string
	Hosts  []string
	Secret types.NamespacedName
}

// Finding is one problem a hook found in an object.
type Finding struct {
	Field   string
	Message string
	Warning bool
}

// AdmitInput is what admission by the directory's EdgeProxy reads.
type AdmitInput struct {
	EdgeProxy *edgev1alpha1.EdgeProxy
	Routes    []*edgev1alpha1.TenantRoute
	// NamespaceLabels are the labels of the directory's Namespaces, by name.
	NamespaceLabels map[string]map[string]string
}

// AdmitOutput says which routes are served.
type AdmitOutput struct {
	Defaults routing.Defaults
	// Refused holds, by index in AdmitInput.Routes, why a route is not served. Routes that do not
	// compile are left to routing.Build, which reports their errors field by field.
	Refused map[int]string
}
