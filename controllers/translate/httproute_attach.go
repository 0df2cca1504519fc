package translate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// attachment is one listener a route attached to, and the hostnames it serves there.
type attachment struct {
	listener *listenerView
	// hosts are the route's hostnames intersected with the listener's; none with catchAll: the
	// listener and the route both name no hostname, every host is served.
	hosts    []string
	catchAll bool
}

// gatewayRef returns the Gateway a parentRef names, or false for another kind of parent.
func gatewayRef(ref *gwapiv1.ParentReference, routeNamespace string) (types.NamespacedName, bool) {
	if ref.Group != nil && *ref.Group != gwapiv1.GroupName || ref.Kind != nil && *ref.Kind != gatewayKind {
		return types.NamespacedName{}, false
	}
	key := types.NamespacedName{Namespace: routeNamespace, Name: string(ref.Name)}
	if ref.Namespace != nil && *ref.Namespace != "" {
		key.Namespace = string(*ref.Namespace)
	}
	return key, true
}

// attach decides whether a route in routeNamespace with these hostnames attaches to a Gateway
// through one parentRef, and to which listeners: those the parentRef selects (sectionName, port),
// whose allowedRoutes admit the route's kind and namespace, and whose hostname intersects the
// route's. The verdict is the Accepted condition's (before the rules are looked at).
func attach(v *gatewayView, ref *gwapiv1.ParentReference, routeNamespace string, routeHosts []string, nsLabels map[string]string) ([]attachment, verdict) {
	gw := gatewayKey(v.gw)
	if !v.accepted.ok {
		return nil, refuse(gwapiv1.RouteReasonNoMatchingParent, "Gateway %s is not accepted (%s): %s", gw, v.accepted.reason, v.accepted.msg)
	}
	var selected []*listenerView
	for _, l := range v.listeners {
		if ref.SectionName != nil && *ref.SectionName != "" && l.spec.Name != *ref.SectionName {
			continue
		}
		if ref.Port != nil && l.spec.Port != *ref.Port {
			continue
		}
		selected = append(selected, l)
	}
	if len(selected) == 0 {
		return nil, refuse(gwapiv1.RouteReasonNoMatchingParent, "Gateway %s has no listener%s", gw, describeSection(ref))
	}
	var allowed []*listenerView
	var why reasonGroups
	for _, l := range selected {
		name := string(l.spec.Name)
		switch {
		case !l.usable():
			why.add(name, "not accepted ("+l.accepted.msg+")")
		case !l.admitsHTTPRoute():
			why.add(name, "HTTPRoute is not among its allowedRoutes.kinds")
		default:
			if ok, reason := namespaceAllowed(l.spec, v.gw.Namespace, routeNamespace, nsLabels); !ok {
				why.add(name, reason)
				continue
			}
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return nil, refuse(gwapiv1.RouteReasonNotAllowedByListeners, "Gateway %s does not admit this route: %s", gw, why)
	}
	var out []attachment
	for _, l := range allowed {
		hosts, catchAll, ok := intersectHostnames(l.hostname, routeHosts)
		if ok {
			out = append(out, attachment{listener: l, hosts: hosts, catchAll: catchAll})
		}
	}
	if len(out) == 0 {
		var lh []string
		for _, l := range allowed {
			lh = append(lh, fmt.Sprintf("%s (%s)", l.spec.Name, l.hostname))
		}
		return nil, refuse(gwapiv1.RouteReasonNoMatchingListenerHostname,
			"none of the route's hostnames (%s) matches the hostname of %s of Gateway %s",
			strings.Join(routeHosts, ", "), listenerNames(lh), gw)
	}
	var names []string
	for _, a := range out {
		names = append(names, string(a.listener.spec.Name))
	}
	return out, okVerdict(string(gwapiv1.RouteReasonAccepted),
		fmt.Sprintf("attached to %s of Gateway %s, served by EdgeProxy %s", listenerNames(names), gw, v.proxy.Name))
}

// reasonGroups lists why listeners refused a route, listeners with the same reason together.
type reasonGroups struct {
	reasons []string
	names   [][]string
}

func (g *reasonGroups) add(listener, reason string) {
	for i, r := range g.reasons {
		if r == reason {
			g.names[i] = append(g.names[i], listener)
			return
		}
	}
	g.reasons = append(g.reasons, reason)
	g.names = append(g.names, []string{listener})
}

func (g reasonGroups) String() string {
	parts := make([]string, len(g.reasons))
	for i, r := range g.reasons {
		parts[i] = listenerNames(g.names[i]) + ": " + r
	}
	return strings.Join(parts, "; ")
}

func listenerNames(names []string) string {
	if len(names) == 1 {
		return "listener " + names[0]
	}
	return "listeners " + strings.Join(names, ", ")
}

func describeSection(ref *gwapiv1.ParentReference) string {
	var parts []string
	if ref.SectionName != nil && *ref.SectionName != "" {
		parts = append(parts, fmt.Sprintf(" named %q", *ref.SectionName))
	}
	if ref.Port != nil {
		parts = append(parts, fmt.Sprintf(" on port %d", *ref.Port))
	}
	if len(parts) == 0 {
		return "s"
	}
	return strings.Join(parts, " and")
}

// namespaceAllowed applies a listener's allowedRoutes.namespaces (From Same by default).
func namespaceAllowed(l *gwapiv1.Listener, gwNamespace, routeNamespace string, nsLabels map[string]string) (bool, string) {
	from := gwapiv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		selector = ar.Namespaces.Selector
	}
	switch from {
	case gwapiv1.NamespacesFromAll:
		return true, ""
	case gwapiv1.NamespacesFromSame:
		if routeNamespace == gwNamespace {
			return true, ""
		}
		return false, fmt.Sprintf("only routes of namespace %s are admitted (allowedRoutes.namespaces.from: Same, the default), "+
			"and this route is in %s: set allowedRoutes.namespaces.from to All, or to Selector with a selector matching %s",
			gwNamespace, routeNamespace, routeNamespace)
	case gwapiv1.NamespacesFromSelector:
		if selector == nil {
			return false, "allowedRoutes.namespaces.from is Selector without a selector, which admits no namespace"
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return false, "allowedRoutes.namespaces.selector is invalid: " + err.Error()
		}
		if sel.Matches(labels.Set(nsLabels)) {
			return true, ""
		}
		return false, fmt.Sprintf("only routes of namespaces matching %s are admitted, and namespace %s does not match", sel.String(), routeNamespace)
	}
	return false, fmt.Sprintf("allowedRoutes.namespaces.from is %s, which admits no route", from)
}

// intersectHostnames applies the Gateway API's hostname rules to a listener hostname ("" for none)
// and a route's hostnames: with neither, every host (catchAll); with one, that one's; with both,
// the route hostnames the listener matches, the more specific of each matching pair. ok is false
// when both name hostnames and none intersect. A wildcard matches any number of labels here, as
// the Gateway API says.
func intersectHostnames(listener string, route []string) (hosts []string, catchAll, ok bool) {
	switch {
	case listener == "" && len(route) == 0:
		return nil, true, true
	case listener == "":
		return route, false, true
	case len(route) == 0:
		return []string{listener}, false, true
	}
	for _, r := range route {
		var h string
		switch {
		case r == listener:
			h = r
		case wildcardCovers(listener, r):
			h = r
		case wildcardCovers(r, listener):
			h = listener
		default:
			continue
		}
		if !containsString(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, false, len(hosts) > 0
}

// wildcardCovers reports whether wildcard "*.<suffix>" matches host (exact or a narrower wildcard).
func wildcardCovers(wildcard, host string) bool {
	suffix, ok := strings.CutPrefix(wildcard, "*")
	return ok && strings.HasSuffix(host, suffix) && len(host) > len(suffix)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
