package translate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// gatewayView is a Gateway as Portico serves it: its EdgeProxy, whether it is accepted, and what
// each listener admits.
type gatewayView struct {
	gw        *gwapiv1.Gateway
	proxy     GatewayProxy
	edgeProxy *edgev1alpha1.EdgeProxy // nil for a generated EdgeProxy not created yet
	accepted  verdict
	listeners []*listenerView
	// httpPort and httpsPort are the one HTTP and one HTTPS port an EdgeProxy serves (0: none).
	httpPort, httpsPort int32
}

// listenerView is one listener's evaluation.
type listenerView struct {
	spec     *gwapiv1.Listener
	hostname string // lower-case; "" matches every host
	// kinds are the route kinds the listener supports and its allowedRoutes admit.
	kinds     []gwapiv1.RouteGroupKind
	accepted  verdict
	conflict  verdict // ok: no conflict
	resolved  verdict
	certified bool                  // an HTTPS listener with a usable certificate
	cert      *types.NamespacedName // the Secret serving an HTTPS listener
}

// usable: routes may attach to the listener and it generates configuration.
func (l *listenerView) usable() bool { return l.accepted.ok && l.conflict.ok }

func (l *listenerView) admitsHTTPRoute() bool {
	for _, k := range l.kinds {
		if k.Kind == httpRouteKind {
			return true
		}
	}
	return false
}

func (v *gatewayView) listenerName(l *listenerView) string {
	return gatewayKey(v.gw) + "/" + string(l.spec.Name)
}

var httpRouteGroupKind = gwapiv1.RouteGroupKind{Group: ptrTo(gwapiv1.Group(gwapiv1.GroupName)), Kind: httpRouteKind}

// evaluateGateway decides what a Gateway of Portico's class serves; nil for another class.
func evaluateGateway(gw *gwapiv1.Gateway, env *gatewayEnv) *gatewayView {
	proxy, perr := ResolveGatewayProxy(gw, env.classes, env.edgeProxies)
	if proxy == nil {
		return nil
	}
	v := &gatewayView{gw: gw, proxy: *proxy}
	if !proxy.Generated {
		v.edgeProxy = findEdgeProxy(env.edgeProxies, proxy.Name)
	}
	for i := range gw.Spec.Listeners {
		v.listeners = append(v.listeners, evaluateListener(gw, &gw.Spec.Listeners[i], env))
	}
	v.markConflicts()
	v.assignPorts()

	var invalid []string
	for _, l := range v.listeners {
		if !l.usable() {
			invalid = append(invalid, string(l.spec.Name))
		}
	}
	switch {
	case perr != nil:
		v.accepted = refuse(gwapiv1.GatewayReasonInvalidParameters, "%s", perr.Error())
	case len(gw.Spec.Addresses) > 0:
		v.accepted = refuse(gwapiv1.GatewayReasonUnsupportedAddress,
			"spec.addresses is not supported: the Gateway's address is the one its EdgeProxy's Service gets")
	case gw.Spec.TLS != nil:
		v.accepted = refuse(gwapiv1.GatewayReasonInvalid,
			"spec.tls (client certificates to backends, client certificate validation) is not supported")
	case len(invalid) == len(v.listeners):
		v.accepted = refuse(gwapiv1.GatewayReasonListenersNotValid, "no listener is valid: %s", strings.Join(invalid, ", "))
	case len(invalid) > 0:
		v.accepted = okVerdict(string(gwapiv1.GatewayReasonListenersNotValid), fmt.Sprintf(
			"served by EdgeProxy %s, without the invalid listeners %s", proxy.Name, strings.Join(invalid, ", ")))
	default:
		v.accepted = okVerdict(string(gwapiv1.GatewayReasonAccepted), "served by EdgeProxy "+proxy.Name)
	}
	return v
}

func evaluateListener(gw *gwapiv1.Gateway, spec *gwapiv1.Listener, env *gatewayEnv) *listenerView {
	l := &listenerView{spec: spec, conflict: okVerdict(string(gwapiv1.ListenerReasonNoConflicts), "no conflicts")}
	if spec.Hostname != nil {
		l.hostname = strings.ToLower(string(*spec.Hostname))
	}
	var refs problems
	http := spec.Protocol == gwapiv1.HTTPProtocolType || spec.Protocol == gwapiv1.HTTPSProtocolType
	switch {
	case !http:
		l.accepted = refuse(gwapiv1.ListenerReasonUnsupportedProtocol,
			"protocol %s is not supported: Portico serves HTTP and HTTPS listeners", spec.Protocol)
	case spec.Protocol == gwapiv1.HTTPSProtocolType && spec.TLS != nil && spec.TLS.Mode != nil && *spec.TLS.Mode != gwapiv1.TLSModeTerminate:
		l.accepted = refuse(gwapiv1.ListenerReasonUnsupportedValue, "tls.mode %s is not supported on HTTPS listeners: use Terminate", *spec.TLS.Mode)
	default:
		l.accepted = okVerdict(string(gwapiv1.ListenerReasonAccepted), "accepted")
	}
	l.kinds = []gwapiv1.RouteGroupKind{}
	if ar := spec.AllowedRoutes; ar != nil && len(ar.Kinds) > 0 {
		for i, k := range ar.Kinds {
			group := gwapiv1.GroupName
			if k.Group != nil {
				group = string(*k.Group)
			}
			if http && group == gwapiv1.GroupName && k.Kind == httpRouteKind {
				if !l.admitsHTTPRoute() {
					l.kinds = append(l.kinds, httpRouteGroupKind)
				}
				continue
			}
			refs = append(refs, refuse(gwapiv1.ListenerReasonInvalidRouteKinds,
				"allowedRoutes.kinds[%d]: %s is not supported on a %s listener; Portico supports HTTPRoute", i, groupKind(group, string(k.Kind)), spec.Protocol))
		}
	} else if http {
		l.kinds = append(l.kinds, httpRouteGroupKind)
	}
	if spec.Protocol == gwapiv1.HTTPSProtocolType && l.accepted.ok {
		refs = append(certificateProblems(gw, l, env), refs...)
	}
	l.resolved = refs.verdict(string(gwapiv1.ListenerReasonResolvedRefs), "all references resolved")
	return l
}

// certificateProblems resolves an HTTPS listener's certificateRefs: Secrets of the Gateway's
// namespace, or of another one whose ReferenceGrant admits the Gateway. The first usable one serves
// the listener (Portico serves one certificate per host name).
func certificateProblems(gw *gwapiv1.Gateway, l *listenerView, env *gatewayEnv) problems {
	var out problems
	if l.spec.TLS == nil || len(l.spec.TLS.CertificateRefs) == 0 {
		return problems{refuse(gwapiv1.ListenerReasonInvalidCertificateRef,
			"an HTTPS listener needs tls.certificateRefs naming a kubernetes.io/tls Secret")}
	}
	for i, ref := range l.spec.TLS.CertificateRefs {
		at := fmt.Sprintf("tls.certificateRefs[%d]", i)
		group, kind := "", "Secret"
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		key := types.NamespacedName{Namespace: gw.Namespace, Name: string(ref.Name)}
		if ref.Namespace != nil && *ref.Namespace != "" {
			key.Namespace = string(*ref.Namespace)
		}
		switch {
		case group != "" || kind != "Secret":
			out = append(out, refuse(gwapiv1.ListenerReasonInvalidCertificateRef,
				"%s: %s is not supported; name a Secret", at, groupKind(group, kind)))
			continue
		case key.Namespace != gw.Namespace && !env.granted(gatewayKind, gw.Namespace, "", "Secret", key.Namespace, key.Name):
			out = append(out, refuse(gwapiv1.ListenerReasonRefNotPermitted,
				"%s: no ReferenceGrant in namespace %q lets Gateways of namespace %q use Secret %q", at, key.Namespace, gw.Namespace, key.Name))
			continue
		}
		secret := env.secrets[key]
		if secret == nil {
			out = append(out, refuse(gwapiv1.ListenerReasonInvalidCertificateRef, "%s: Secret %s not found", at, key))
			continue
		}
		if why := checkKeyPair(secret); why != "" {
			out = append(out, refuse(gwapiv1.ListenerReasonInvalidCertificateRef, "%s: Secret %s: %s", at, key, why))
			continue
		}
		if l.cert == nil {
			l.cert, l.certified = &key, true
		}
	}
	return out
}

// markConflicts flags listeners that are not distinct: HTTP and HTTPS on one port
// (ProtocolConflict), or the same port, protocol and hostname (HostnameConflict). None of them is
// accepted: the spec forbids picking a winner.
func (v *gatewayView) markConflicts() {
	served := make([]bool, len(v.listeners))
	for i, l := range v.listeners {
		served[i] = l.accepted.ok
	}
	for i, a := range v.listeners {
		if !served[i] {
			continue
		}
		for j, b := range v.listeners {
			if i == j || !served[j] || a.spec.Port != b.spec.Port {
				continue
			}
			switch {
			case a.spec.Protocol != b.spec.Protocol:
				a.conflict = refuse(gwapiv1.ListenerReasonProtocolConflict,
					"listener %s uses port %d with protocol %s", b.spec.Name, b.spec.Port, b.spec.Protocol)
			case a.hostname == b.hostname && a.conflict.ok:
				a.conflict = refuse(gwapiv1.ListenerReasonHostnameConflict,
					"listener %s uses port %d, protocol %s and the same hostname", b.spec.Name, b.spec.Port, b.spec.Protocol)
			}
		}
	}
	for _, l := range v.listeners {
		if !l.conflict.ok {
			l.accepted = refuse(gwapiv1.ListenerReasonPortUnavailable, "conflicts with another listener: %s", l.conflict.msg)
		}
	}
}

// assignPorts checks the listeners' ports against what the EdgeProxy serves: one HTTP port and one
// HTTPS port. A generated EdgeProxy takes them from the first valid HTTP and HTTPS listeners; an
// EdgeProxy named by parametersRef has them in its spec.service (80 and 443 by default).
func (v *gatewayView) assignPorts() {
	if v.proxy.Generated {
		for _, l := range v.listeners {
			if !l.usable() {
				continue
			}
			if l.spec.Protocol == gwapiv1.HTTPProtocolType && v.httpPort == 0 {
				v.httpPort = l.spec.Port
			}
			if l.spec.Protocol == gwapiv1.HTTPSProtocolType && v.httpsPort == 0 {
				v.httpsPort = l.spec.Port
			}
		}
	} else {
		v.httpPort, v.httpsPort = edgeProxyPorts(v.edgeProxy)
	}
	for _, l := range v.listeners {
		if !l.usable() {
			continue
		}
		want, what := v.httpPort, "HTTP"
		if l.spec.Protocol == gwapiv1.HTTPSProtocolType {
			want, what = v.httpsPort, "HTTPS"
		}
		if l.spec.Port != want {
			l.accepted = refuse(gwapiv1.ListenerReasonPortUnavailable,
				"EdgeProxy %s serves %s on port %d only: Portico serves one HTTP and one HTTPS port per Gateway", v.proxy.Name, what, want)
		}
	}
}

// edgeProxyPorts are the Service ports an EdgeProxy serves HTTP and HTTPS on.
func edgeProxyPorts(ep *edgev1alpha1.EdgeProxy) (int32, int32) {
	httpPort, httpsPort := int32(80), int32(443)
	if ep != nil && ep.Spec.Service != nil {
		if p := ep.Spec.Service.HTTPPort; p != nil {
			httpPort = *p
		}
		if p := ep.Spec.Service.HTTPSPort; p != nil {
			httpsPort = *p
		}
	}
	return httpPort, httpsPort
}
