package translate

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// maxEdgeProxyHostnames is the most hostnames an EdgeProxy lists.
const maxEdgeProxyHostnames = 256

// NoHostnamePlaceholder is the hostname a generated EdgeProxy allows when its Gateway's listeners
// name no hostname and no attached route names one yet (an EdgeProxy allows at least one hostname;
// the catch-all needs none). .invalid is reserved (RFC 6761): it never reaches a real client.
const NoHostnamePlaceholder = "no-hostname.gateway.invalid"

// GatewayEdgeProxyInput is what the EdgeProxy generated for a Gateway depends on.
type GatewayEdgeProxyInput struct {
	// Gateway the EdgeProxy serves.
	Gateway *gwapiv1.Gateway
	// GatewayClasses, to tell whether the Gateway is Portico's and names no EdgeProxy.
	GatewayClasses []gwapiv1.GatewayClass
	// Namespaces of the cluster, needed only when listeners select namespaces with different
	// selectors: an EdgeProxy has one selector, so those namespaces are listed by name.
	Namespaces []corev1.Namespace
	// RouteHostnames are the hostnames of the TenantRoutes generated for the Gateway (label
	// edge.portico.dev/gateway-name). They are allowed when a listener names no hostname: an
	// EdgeProxy cannot allow every hostname, so it lists the ones the attached routes use.
	RouteHostnames []edgev1alpha1.Hostname
}

// GatewayEdgeProxy is the EdgeProxy Portico creates for a Gateway that names none
// (ResolveGatewayProxy says Generated): named GatewayEdgeProxyName, proxies in the Gateway's
// namespace, serving the namespaces the listeners' allowedRoutes admit (Same: the Gateway's; All:
// every namespace; Selector: that selector) and the listeners' hostnames, on the ports of the first
// HTTP and HTTPS listeners. spec.infrastructure labels and annotations are copied onto it. It
// returns nil for a Gateway of another class or one that names its EdgeProxy. The errors say why the
// EdgeProxy cannot be created yet (an EdgeProxy needs at least one namespace and one hostname).
func GatewayEdgeProxy(in GatewayEdgeProxyInput) (*edgev1alpha1.EdgeProxy, field.ErrorList) {
	gw := in.Gateway
	if gw == nil {
		return nil, nil
	}
	env := newGatewayEnv([]gwapiv1.Gateway{*gw}, in.GatewayClasses, nil, in.Namespaces, nil, nil, nil)
	v := env.gateway(types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name})
	if v == nil || !v.proxy.Generated {
		return nil, nil
	}
	ep := &edgev1alpha1.EdgeProxy{
		TypeMeta: metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: edgeProxyKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:   v.proxy.Name,
			Labels: map[string]string{},
		},
		Spec: edgev1alpha1.EdgeProxySpec{ProxyNamespace: gw.Namespace},
	}
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, val := range inf.Labels {
			ep.Labels[string(k)] = string(val)
		}
		for k, val := range inf.Annotations {
			if ep.Annotations == nil {
				ep.Annotations = map[string]string{}
			}
			ep.Annotations[string(k)] = string(val)
		}
	}
	ep.Labels[LabelGatewayNamespace] = gw.Namespace
	ep.Labels[LabelGatewayName] = labelValue(gw.Name)
	// The Gateway API's label for the resources generated for a Gateway, on its proxy pods (with
	// the spec.infrastructure labels and annotations the reconciler adds).
	ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{PodLabels: map[string]string{gwapiv1.GatewayNameLabelKey: labelValue(gw.Name)}}

	var errs field.ErrorList
	listeners := field.NewPath("spec", "listeners")
	var hosts []string
	anyHost := false
	var served []*listenerView
	for _, l := range v.listeners {
		if !l.usable() || !l.admitsHTTPRoute() {
			continue
		}
		served = append(served, l)
		if l.hostname == "" {
			anyHost = true
		} else if !containsString(hosts, l.hostname) {
			hosts = append(hosts, l.hostname)
		}
	}
	if len(served) == 0 {
		return ep, field.ErrorList{field.Invalid(listeners, len(gw.Spec.Listeners), "the Gateway has no valid HTTP or HTTPS listener admitting HTTPRoutes")}
	}
	// Route hostnames were intersected with the listeners' already. With a listener without
	// hostname they are what the EdgeProxy allows; under a listener's wildcard, those deeper than
	// the one label an EdgeProxy wildcard allows ("a.b.example.com" under "*.example.com", as the
	// Gateway API intersects) are allowed by name.
	listenerHosts := make([]edgev1alpha1.Hostname, 0, len(hosts))
	for _, h := range hosts {
		listenerHosts = append(listenerHosts, edgev1alpha1.Hostname(h))
	}
	for _, h := range in.RouteHostnames {
		h := strings.ToLower(string(h))
		if containsString(hosts, h) || !anyHost && admission.HostnameAllowed(listenerHosts, h) {
			continue
		}
		hosts = append(hosts, h)
	}
	if anyHost && len(hosts) == 0 {
		// A listener without hostname serves the catch-all (routes without hostnames) even before
		// any route names a host, but an EdgeProxy must allow at least one hostname: allow a name
		// under the reserved .invalid TLD (RFC 6761), which no client can ever send as a real host.
		hosts = append(hosts, NoHostnamePlaceholder)
	}
	slices.Sort(hosts)
	switch {
	case len(hosts) == 0:
		errs = append(errs, field.Required(listeners.Child("hostname"),
			"no listener names a hostname and no attached route does: an EdgeProxy needs at least one hostname to allow"))
	case len(hosts) > maxEdgeProxyHostnames:
		errs = append(errs, field.TooMany(listeners.Child("hostname"), len(hosts), maxEdgeProxyHostnames))
		hosts = hosts[:maxEdgeProxyHostnames]
	}
	for _, h := range hosts {
		ep.Spec.Hostnames = append(ep.Spec.Hostnames, edgev1alpha1.Hostname(h))
	}
	ep.Spec.TenantNamespaces = tenantNamespaces(gw, served, in.Namespaces)
	// The one platform choice a generated EdgeProxy takes from its class (the Gateway is the
	// tenant's and never loosens what the proxies may reach).
	if class := PorticoGatewayClass(in.GatewayClasses, string(gw.Spec.GatewayClassName)); class != nil &&
		class.Annotations[edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices] == "true" {
		ep.Spec.AllowUnmanagedEndpointSlices = true
	}
	if v.httpPort != 0 || v.httpsPort != 0 {
		ep.Spec.Service = &edgev1alpha1.ProxyServiceSpec{}
		if v.httpPort != 0 {
			ep.Spec.Service.HTTPPort = ptrTo(v.httpPort)
		}
		if v.httpsPort != 0 {
			ep.Spec.Service.HTTPSPort = ptrTo(v.httpsPort)
		}
	}
	return ep, errs
}

// tenantNamespaces admits what the listeners' allowedRoutes admit: All wins (an empty selector
// matches every namespace), Same lists the Gateway's namespace, one distinct Selector is kept as
// is, and several are resolved to the names of the namespaces they match today.
func tenantNamespaces(gw *gwapiv1.Gateway, served []*listenerView, namespaces []corev1.Namespace) edgev1alpha1.TenantNamespaces {
	var out edgev1alpha1.TenantNamespaces
	var selectors []*metav1.LabelSelector
	for _, l := range served {
		from := gwapiv1.NamespacesFromSame
		var sel *metav1.LabelSelector
		if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
			if ar.Namespaces.From != nil {
				from = *ar.Namespaces.From
			}
			sel = ar.Namespaces.Selector
		}
		switch from {
		case gwapiv1.NamespacesFromAll:
			return edgev1alpha1.TenantNamespaces{Selector: &metav1.LabelSelector{}}
		case gwapiv1.NamespacesFromSame:
			if !containsString(out.Names, gw.Namespace) {
				out.Names = append(out.Names, gw.Namespace)
			}
		case gwapiv1.NamespacesFromSelector:
			if sel != nil && !slices.ContainsFunc(selectors, func(s *metav1.LabelSelector) bool { return equality.Semantic.DeepEqual(s, sel) }) {
				selectors = append(selectors, sel)
			}
		}
	}
	switch len(selectors) {
	case 0:
	case 1:
		out.Selector = selectors[0].DeepCopy()
	default:
		for _, s := range selectors {
			sel, err := metav1.LabelSelectorAsSelector(s)
			if err != nil {
				continue
			}
			for _, ns := range namespaces {
				lbl := labels.Set(ns.Labels)
				if ns.Labels[corev1.LabelMetadataName] == "" {
					lbl = labels.Merge(lbl, labels.Set{corev1.LabelMetadataName: ns.Name})
				}
				if sel.Matches(lbl) && !containsString(out.Names, ns.Name) {
					out.Names = append(out.Names, ns.Name)
				}
			}
		}
	}
	slices.Sort(out.Names)
	return out
}
