package translate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// GatewayStatusInput is everything the status of one Gateway needs.
type GatewayStatusInput struct {
	// Gateway whose status to compute.
	Gateway *gwapiv1.Gateway
	// GatewayClasses, to tell whether the Gateway is Portico's.
	GatewayClasses []gwapiv1.GatewayClass
	// EdgeProxies of the cluster (for parametersRef and its Service ports).
	EdgeProxies []edgev1alpha1.EdgeProxy
	// Routes are the HTTPRoutes that may attach to the Gateway (those whose parentRefs name it);
	// others are ignored. They decide the listeners' attachedRoutes.
	Routes []gwapiv1.HTTPRoute
	// Namespaces, for the routes' namespace labels (allowedRoutes selectors).
	Namespaces []corev1.Namespace
	// ReferenceGrants of the namespaces the listeners' certificateRefs point to.
	ReferenceGrants []gwapiv1beta1.ReferenceGrant
	// Secrets the listeners' certificateRefs name.
	Secrets []corev1.Secret

	// EdgeProxyReady is what the reconciler observed: the Gateway's EdgeProxy exists and is Ready.
	EdgeProxyReady bool
	// Addresses of the EdgeProxy's Service, for status.addresses.
	Addresses []gwapiv1.GatewayStatusAddress
}

// GatewayStatusResult is a Gateway's computed status.
type GatewayStatusResult struct {
	// Proxy is the EdgeProxy serving the Gateway.
	Proxy GatewayProxy `json:"proxy"`
	// Status to write: conditions Accepted, Programmed and ResolvedRefs; per listener Accepted,
	// Programmed, ResolvedRefs and Conflicted, supportedKinds and attachedRoutes. Conditions carry
	// the Gateway's generation and no transition time (meta.SetStatusCondition fills it in).
	Status gwapiv1.GatewayStatus `json:"status"`
}

// GatewayStatus computes the status of a Gateway of a Portico GatewayClass; nil for another
// class. It is pure: what the reconciler observed about the EdgeProxy comes in the input.
func GatewayStatus(in GatewayStatusInput) *GatewayStatusResult {
	gw := in.Gateway
	if gw == nil {
		return nil
	}
	env := newGatewayEnv([]gwapiv1.Gateway{*gw}, in.GatewayClasses, in.EdgeProxies, in.Namespaces, in.ReferenceGrants, nil, in.Secrets)
	key := types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}
	v := env.gateway(key)
	if v == nil {
		return nil
	}
	attached := map[*listenerView]int32{}
	for i := range in.Routes {
		t := newRouteTranslatorIn(env, &in.Routes[i])
		seen := map[*listenerView]bool{}
		for _, o := range t.parents() {
			for _, a := range o.attachments {
				if o.view == v && !seen[a.listener] {
					seen[a.listener] = true
					attached[a.listener]++
				}
			}
		}
	}
	gen := gw.Generation
	programmed := v.programmed(in.EdgeProxyReady, len(in.Addresses) > 0)
	st := gwapiv1.GatewayStatus{
		Conditions: []metav1.Condition{
			condition(gwapiv1.GatewayConditionAccepted, v.accepted.ok, v.accepted.reason, v.accepted.msg, gen),
			condition(gwapiv1.GatewayConditionProgrammed, programmed.ok, programmed.reason, programmed.msg, gen),
		},
	}
	if programmed.ok {
		st.Addresses = append(st.Addresses, in.Addresses...)
	}
	var unresolved problems
	for _, l := range v.listeners {
		lp := l.programmed(v.accepted.ok, programmed)
		ls := gwapiv1.ListenerStatus{
			Name:           l.spec.Name,
			SupportedKinds: l.kinds,
			AttachedRoutes: attached[l],
			Conditions: []metav1.Condition{
				condition(gwapiv1.ListenerConditionAccepted, l.accepted.ok, l.accepted.reason, l.accepted.msg, gen),
				condition(gwapiv1.ListenerConditionProgrammed, lp.ok, lp.reason, lp.msg, gen),
				condition(gwapiv1.ListenerConditionResolvedRefs, l.resolved.ok, l.resolved.reason, l.resolved.msg, gen),
				// Conflicted is negative-polarity: False (NoConflicts) is the healthy state.
				condition(gwapiv1.ListenerConditionConflicted, !l.conflict.ok, l.conflict.reason, l.conflict.msg, gen),
			},
		}
		if over := v.overlappingTLS(l); over != "" {
			ls.Conditions = append(ls.Conditions, condition(gwapiv1.ListenerConditionOverlappingTLSConfig, true,
				gwapiv1.ListenerReasonOverlappingHostnames, over, gen))
		}
		if !l.resolved.ok {
			unresolved = append(unresolved, refuse(gwapiv1.GatewayReasonListenersNotResolved, "listener %s: %s", l.spec.Name, l.resolved.msg))
		}
		st.Listeners = append(st.Listeners, ls)
	}
	resolved := unresolved.verdict(string(gwapiv1.GatewayReasonResolvedRefs), "all references resolved")
	st.Conditions = append(st.Conditions, condition(gwapiv1.GatewayConditionResolvedRefs, resolved.ok, resolved.reason, resolved.msg, gen))
	return &GatewayStatusResult{Proxy: v.proxy, Status: st}
}

// programmed: accepted, its EdgeProxy Ready, and an address.
func (v *gatewayView) programmed(ready, hasAddress bool) verdict {
	switch {
	case !v.accepted.ok:
		return refuse(gwapiv1.GatewayReasonInvalid, "the Gateway is not accepted")
	case !ready:
		return refuse(gwapiv1.GatewayReasonPending, "waiting for EdgeProxy %s to be Ready", v.proxy.Name)
	case !hasAddress:
		return refuse(gwapiv1.GatewayReasonAddressNotAssigned, "EdgeProxy %s's Service has no address yet", v.proxy.Name)
	}
	return okVerdict(string(gwapiv1.GatewayReasonProgrammed), fmt.Sprintf("served by EdgeProxy %s", v.proxy.Name))
}

// programmed: a valid listener of a programmed Gateway.
func (l *listenerView) programmed(gatewayAccepted bool, gateway verdict) verdict {
	switch {
	case !l.usable():
		return refuse(gwapiv1.ListenerReasonInvalid, "the listener is not accepted")
	case !gatewayAccepted:
		return refuse(gwapiv1.ListenerReasonInvalid, "the Gateway is not accepted")
	case !l.resolved.ok && l.spec.Protocol == gwapiv1.HTTPSProtocolType && !l.certified:
		return refuse(gwapiv1.ListenerReasonInvalid, "the listener has no usable certificate")
	case !gateway.ok:
		return refuse(gwapiv1.ListenerReasonPending, "%s", gateway.msg)
	}
	return okVerdict(string(gwapiv1.ListenerReasonProgrammed), "programmed")
}

// overlappingTLS names the other HTTPS listeners on l's port whose hostname overlaps l's (one
// matches the other's wildcard, or one has none), as the OverlappingTLSConfig condition requires.
func (v *gatewayView) overlappingTLS(l *listenerView) string {
	if l.spec.Protocol != gwapiv1.HTTPSProtocolType || !l.usable() {
		return ""
	}
	var names []string
	for _, o := range v.listeners {
		if o == l || o.spec.Protocol != gwapiv1.HTTPSProtocolType || !o.usable() || o.spec.Port != l.spec.Port {
			continue
		}
		if _, _, ok := intersectHostnames(l.hostname, nonEmpty(o.hostname)); ok {
			names = append(names, string(o.spec.Name))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("the hostname overlaps that of listener %s on port %d", strings.Join(names, ", "), l.spec.Port)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
