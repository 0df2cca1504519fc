package translate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

const (
	httpRouteKind   = "HTTPRoute"
	gatewayKind     = "Gateway"
	edgeProxyKind   = "EdgeProxy"
	httpRoutePrefix = "httproute-"
	catchAllSuffix  = "-catch-all"
	// gatewayProxyPrefix starts the name of the EdgeProxy generated for a Gateway.
	gatewayProxyPrefix = "gateway-"
)

// Labels of the EdgeProxy generated for a Gateway: a cluster-scoped EdgeProxy cannot carry an owner
// reference to a namespaced Gateway, so these (and a finalizer on the Gateway) tie them together.
const (
	LabelGatewayName      = "edge.portico.dev/gateway-name"
	LabelGatewayNamespace = "edge.portico.dev/gateway-namespace"
)

// GatewayProxy is the EdgeProxy serving a Gateway.
type GatewayProxy struct {
	// Name of the EdgeProxy.
	Name string `json:"name"`
	// Generated is true when no parametersRef names an EdgeProxy: Portico creates one for the
	// Gateway (GatewayEdgeProxy) and deletes it with the Gateway.
	Generated bool `json:"generated,omitempty"`
}

// GatewayEdgeProxyName is the name of the EdgeProxy generated for a Gateway that names none:
// "gateway-<namespace>.<name>". A namespace has no dots, so the first dot separates the two and no
// two Gateways share a name. Names past 63 characters are shortened with a hash of the whole, so
// that the name is also a label value (edge.portico.dev/edgeproxy) without further shortening.
func GatewayEdgeProxyName(gw *gwapiv1.Gateway) string {
	return shorten(gatewayProxyPrefix+gw.Namespace+"."+gw.Name, maxLabelValue)
}

// PorticoGatewayClass returns the named GatewayClass when its controllerName is Portico's, else nil.
func PorticoGatewayClass(classes []gwapiv1.GatewayClass, name string) *gwapiv1.GatewayClass {
	for i := range classes {
		if c := &classes[i]; c.Name == name {
			if c.Spec.ControllerName == edgev1alpha1.GatewayControllerName {
				return c
			}
			return nil
		}
	}
	return nil
}

// ResolveGatewayProxy says which EdgeProxy serves a Gateway: the one its
// spec.infrastructure.parametersRef names, else the one its GatewayClass's parametersRef names,
// else the generated one (GatewayEdgeProxyName). It returns nil for a Gateway whose class is not
// Portico's (or not known). The error (InvalidParameters) names the field at fault: a reference to
// something other than an edge.portico.dev EdgeProxy, or to one that does not exist.
func ResolveGatewayProxy(gw *gwapiv1.Gateway, classes []gwapiv1.GatewayClass, edgeProxies []edgev1alpha1.EdgeProxy) (*GatewayProxy, *field.Error) {
	class := PorticoGatewayClass(classes, string(gw.Spec.GatewayClassName))
	if class == nil {
		return nil, nil
	}
	if inf := gw.Spec.Infrastructure; inf != nil && inf.ParametersRef != nil {
		p := inf.ParametersRef
		name, err := edgeProxyRef(string(p.Group), string(p.Kind), p.Name, nil, edgeProxies,
			field.NewPath("spec", "infrastructure", "parametersRef"))
		return &GatewayProxy{Name: name}, err
	}
	if p := class.Spec.ParametersRef; p != nil {
		name, err := edgeProxyRef(string(p.Group), string(p.Kind), p.Name, p.Namespace, edgeProxies,
			field.NewPath("spec", "parametersRef"))
		if err != nil {
			err = field.Invalid(field.NewPath("spec", "gatewayClassName"), class.Name,
				fmt.Sprintf("GatewayClass %s: %s", class.Name, err.Error()))
		}
		return &GatewayProxy{Name: name}, err
	}
	return &GatewayProxy{Name: GatewayEdgeProxyName(gw), Generated: true}, nil
}

// edgeProxyRef checks a parametersRef: an edge.portico.dev EdgeProxy (cluster-scoped, so without
// namespace) that exists.
func edgeProxyRef(group, kind, name string, ns *gwapiv1.Namespace, edgeProxies []edgev1alpha1.EdgeProxy, p *field.Path) (string, *field.Error) {
	switch {
	case group != edgev1alpha1.GroupVersion.Group || kind != edgeProxyKind:
		return "", field.Invalid(p, groupKind(group, kind)+" "+name, fmt.Sprintf(
			"must reference an EdgeProxy (group %s), or be left out for Portico to create one", edgev1alpha1.GroupVersion.Group))
	case ns != nil && *ns != "":
		return "", field.Invalid(p.Child("namespace"), string(*ns), "EdgeProxies are cluster-scoped: leave the namespace out")
	}
	for i := range edgeProxies {
		if edgeProxies[i].Name == name {
			return name, nil
		}
	}
	return name, field.NotFound(p.Child("name"), name)
}

func findEdgeProxy(edgeProxies []edgev1alpha1.EdgeProxy, name string) *edgev1alpha1.EdgeProxy {
	for i := range edgeProxies {
		if edgeProxies[i].Name == name {
			return &edgeProxies[i]
		}
	}
	return nil
}

// GatewayClassStatus computes the status of a Portico GatewayClass: Accepted (InvalidParameters when
// its parametersRef is not an existing EdgeProxy) and SupportedFeatures. It returns nil for a class
// of another controller. Conditions carry the class's generation and no transition time: the
// reconciler sets them with meta.SetStatusCondition, which fills it in.
func GatewayClassStatus(gc *gwapiv1.GatewayClass, edgeProxies []edgev1alpha1.EdgeProxy) *gwapiv1.GatewayClassStatus {
	if gc == nil || gc.Spec.ControllerName != edgev1alpha1.GatewayControllerName {
		return nil
	}
	accepted := condition(gwapiv1.GatewayClassConditionStatusAccepted, true, gwapiv1.GatewayClassReasonAccepted,
		"Portico serves Gateways of this class", gc.Generation)
	if p := gc.Spec.ParametersRef; p != nil {
		if _, err := edgeProxyRef(string(p.Group), string(p.Kind), p.Name, p.Namespace, edgeProxies, field.NewPath("spec", "parametersRef")); err != nil {
			accepted = condition(gwapiv1.GatewayClassConditionStatusAccepted, false, gwapiv1.GatewayClassReasonInvalidParameters,
				err.Error(), gc.Generation)
		} else {
			accepted.Message = fmt.Sprintf("Portico serves Gateways of this class with EdgeProxy %s, unless a Gateway names its own", p.Name)
		}
	}
	// The opt-in for hand-written EndpointSlices is said where the platform team looks, and a
	// value that does not turn it on is not silently ignored.
	switch v, set := gc.Annotations[edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices]; {
	case v == "true":
		accepted.Message += fmt.Sprintf("; EdgeProxies generated for its Gateways use hand-written EndpointSlices of Services without a selector (annotation %s)",
			edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices)
	case set && v != "false":
		accepted.Message += fmt.Sprintf("; annotation %s=%q is ignored: only \"true\" turns it on",
			edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices, v)
	}
	st := &gwapiv1.GatewayClassStatus{Conditions: []metav1.Condition{accepted}}
	for _, f := range SupportedGatewayFeatures {
		st.SupportedFeatures = append(st.SupportedFeatures, gwapiv1.SupportedFeature{Name: gwapiv1.FeatureName(f)})
	}
	slices.SortFunc(st.SupportedFeatures, func(a, b gwapiv1.SupportedFeature) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return st
}

// condition builds a status condition; its LastTransitionTime is left for the reconciler.
func condition[T, R ~string](typ T, ok bool, reason R, msg string, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               string(typ),
		Status:             status,
		Reason:             string(reason),
		Message:            truncateMessage(msg),
		ObservedGeneration: generation,
	}
}

// maxConditionMessage is the longest message metav1.Condition allows.
const maxConditionMessage = 32768

func truncateMessage(msg string) string {
	if len(msg) <= maxConditionMessage {
		return msg
	}
	return msg[:maxConditionMessage-3] + "..."
}
