package filesmode

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/dataplane/files"
)

// TranslateGatewayAPI runs the operator's Gateway API translation on the directory:
// translate.HTTPRoute for every HTTPRoute (attachment by parentRefs, sectionName and port, the
// listeners' allowedRoutes, hostname intersection, ReferenceGrants for backends and certificates)
// and translate.GatewayStatus for every Gateway. Files mode writes no status, so what the status
// would say is wrong becomes a warning: a parent refusing a route (NotAllowedByListeners,
// NoMatchingListenerHostname...) with its reason and message, unresolved references, invalid
// listeners. The directory's EdgeProxy, if any, is the only one a parametersRef may name.
func TranslateGatewayAPI(in files.GatewayAPIInput) files.GatewayAPIOutput {
	var edgeProxies []edgev1alpha1.EdgeProxy
	if in.EdgeProxy != nil {
		edgeProxies = []edgev1alpha1.EdgeProxy{*in.EdgeProxy}
	}
	out := files.GatewayAPIOutput{
		Gateways:   make([]files.GatewayOutput, len(in.Gateways)),
		HTTPRoutes: make([]files.HTTPRouteOutput, len(in.HTTPRoutes)),
	}
	for i := range in.Gateways {
		out.Gateways[i] = checkGateway(in, &in.Gateways[i], edgeProxies)
	}
	for i := range in.HTTPRoutes {
		out.HTTPRoutes[i] = translateHTTPRoute(in, &in.HTTPRoutes[i], edgeProxies)
	}
	return out
}

func checkGateway(in files.GatewayAPIInput, gw *gwapiv1.Gateway, edgeProxies []edgev1alpha1.EdgeProxy) files.GatewayOutput {
	res := translate.GatewayStatus(translate.GatewayStatusInput{
		Gateway:         gw,
		GatewayClasses:  in.GatewayClasses,
		EdgeProxies:     edgeProxies,
		Routes:          in.HTTPRoutes,
		Namespaces:      in.Namespaces,
		ReferenceGrants: in.ReferenceGrants,
		Secrets:         in.Secrets,
		EdgeProxyReady:  true, // the proxy reading the directory
	})
	if res == nil {
		return files.GatewayOutput{Ignored: fmt.Sprintf(
			"not served: its GatewayClass %q is not a GatewayClass of the directory with controllerName %s",
			gw.Spec.GatewayClassName, edgev1alpha1.GatewayControllerName)}
	}
	var out files.GatewayOutput
	warn := func(p *field.Path, format string, args ...any) {
		f := files.Finding{Message: fmt.Sprintf(format, args...), Warning: true}
		if p != nil {
			f.Field = p.String()
		}
		out.Problems = append(out.Problems, f)
	}
	accepted := meta.FindStatusCondition(res.Status.Conditions, string(gwapiv1.GatewayConditionAccepted))
	if accepted != nil && accepted.Status == metav1.ConditionFalse {
		warn(nil, "not accepted, none of its routes are served: %s: %s", accepted.Reason, accepted.Message)
	} else if in.EdgeProxy != nil && res.Proxy.Name != in.EdgeProxy.Name {
		warn(nil, "served by EdgeProxy %s, generated for it, but files mode serves the directory's EdgeProxy %s only: "+
			"its routes are refused; name %s in spec.infrastructure.parametersRef (group %s, kind EdgeProxy)",
			res.Proxy.Name, in.EdgeProxy.Name, in.EdgeProxy.Name, edgev1alpha1.GroupVersion.Group)
	}
	listeners := field.NewPath("spec", "listeners")
	for _, ls := range res.Status.Listeners {
		p := listeners.Key(string(ls.Name))
		for i := range gw.Spec.Listeners {
			if gw.Spec.Listeners[i].Name == ls.Name {
				p = listeners.Index(i)
				break
			}
		}
		for _, c := range ls.Conditions {
			bad := c.Status == metav1.ConditionFalse
			switch gwapiv1.ListenerConditionType(c.Type) {
			case gwapiv1.ListenerConditionProgrammed:
				continue // follows from the others
			case gwapiv1.ListenerConditionConflicted, gwapiv1.ListenerConditionOverlappingTLSConfig:
				bad = c.Status == metav1.ConditionTrue // negative polarity
			}
			if bad {
				warn(p, "%s: %s: %s", c.Type, c.Reason, c.Message)
			}
		}
	}
	return out
}

func translateHTTPRoute(in files.GatewayAPIInput, route *gwapiv1.HTTPRoute, edgeProxies []edgev1alpha1.EdgeProxy) files.HTTPRouteOutput {
	res := translate.HTTPRoute(translate.GatewayInput{
		Route:           route,
		Gateways:        in.Gateways,
		GatewayClasses:  in.GatewayClasses,
		EdgeProxies:     edgeProxies,
		Namespaces:      in.Namespaces,
		ReferenceGrants: in.ReferenceGrants,
		Services:        in.Services,
		Secrets:         in.Secrets,
	})
	if len(res.Parents) == 0 {
		return files.HTTPRouteOutput{Ignored: fmt.Sprintf(
			"not served: none of its parentRefs names a Gateway of the directory whose GatewayClass has controllerName %s",
			edgev1alpha1.GatewayControllerName)}
	}
	var out files.HTTPRouteOutput
	refs := field.NewPath("spec", "parentRefs")
	reported := map[string]bool{}
	for _, st := range res.Parents {
		p := refs
		for i := range route.Spec.ParentRefs {
			if equality.Semantic.DeepEqual(route.Spec.ParentRefs[i], st.ParentRef) {
				p = refs.Index(i)
				break
			}
		}
		gw := types.NamespacedName{Namespace: route.Namespace, Name: string(st.ParentRef.Name)}
		if st.ParentRef.Namespace != nil && *st.ParentRef.Namespace != "" {
			gw.Namespace = string(*st.ParentRef.Namespace)
		}
		for _, c := range st.Conditions {
			var msg string
			switch gwapiv1.RouteConditionType(c.Type) {
			case gwapiv1.RouteConditionAccepted:
				if c.Status == metav1.ConditionFalse {
					msg = fmt.Sprintf("not served by Gateway %s: %s: %s", gw, c.Reason, c.Message)
				}
			case gwapiv1.RouteConditionPartiallyInvalid:
				if c.Status == metav1.ConditionTrue {
					msg = fmt.Sprintf("Gateway %s: %s: %s", gw, c.Reason, c.Message)
				}
			default: // ResolvedRefs: the same for every parent, reported once
				if c.Status == metav1.ConditionFalse && !reported[c.Message] {
					reported[c.Message] = true
					out.Problems = append(out.Problems, files.Finding{
						Message: fmt.Sprintf("%s: %s: %s", c.Type, c.Reason, c.Message), Warning: true})
				}
			}
			if msg != "" {
				out.Problems = append(out.Problems, files.Finding{Field: p.String(), Message: msg, Warning: true})
			}
		}
	}
	for _, w := range res.Warnings {
		out.Problems = append(out.Problems, files.Finding{Message: w, Warning: true})
	}
	for _, r := range res.Routes {
		out.Routes = append(out.Routes, *r)
	}
	for _, c := range res.Certificates {
		cert := files.Certificate{Route: c.Route, Secret: types.NamespacedName{Namespace: c.SecretNamespace, Name: c.SecretName}}
		for _, h := range c.Hosts {
			cert.Hosts = append(cert.Hosts, string(h))
		}
		out.Certificates = append(out.Certificates, cert)
	}
	return out
}
