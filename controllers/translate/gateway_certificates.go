package translate

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// ListenerCertificatesInput is what ListenerCertificates reads, as listed from the operator's
// cache. Gateways not served by EdgeProxy, and objects none of them refers to, are ignored.
type ListenerCertificatesInput struct {
	// EdgeProxy whose Gateways' listeners are wanted.
	EdgeProxy string
	// Gateways of the cluster (or at least those EdgeProxy serves), their GatewayClasses, and the
	// EdgeProxies (a parametersRef to a missing one makes the Gateway InvalidParameters).
	Gateways       []gwapiv1.Gateway
	GatewayClasses []gwapiv1.GatewayClass
	EdgeProxies    []edgev1alpha1.EdgeProxy
	// Namespaces, for their labels (listeners' allowedRoutes selectors).
	Namespaces []corev1.Namespace
	// ReferenceGrants of the namespaces the listeners' certificate Secrets live in.
	ReferenceGrants []gwapiv1beta1.ReferenceGrant
	// Secrets the listeners' certificateRefs name.
	Secrets []corev1.Secret
	// Routes are the HTTPRoutes naming those Gateways in parentRefs: which namespaces attached to
	// each listener and, for a listener without hostname, which hosts its certificate serves.
	Routes []gwapiv1.HTTPRoute
}

// ListenerCertificate is the certificate of one HTTPS listener of a Gateway the EdgeProxy serves:
// the Gateway is accepted, the listener is usable, and its first usable certificateRef is a
// kubernetes.io/tls Secret with a valid key pair, in the Gateway's namespace or in one whose
// ReferenceGrant lets the Gateway's namespace use it. It is the same decision as the listener's
// ResolvedRefs condition (GatewayStatus): a listener whose ResolvedRefs says InvalidCertificateRef
// or RefNotPermitted for every certificateRef has none.
type ListenerCertificate struct {
	// Listener is "<namespace>/<gateway>/<listener>".
	Listener string
	// Secret holds the key pair.
	Secret types.NamespacedName
	// Hostname is the listener's, lower-case; "" when it names none. A listener with a hostname
	// serves its certificate for that name (SNI).
	Hostname string
	// Attached are the HTTPRoutes attached to the listener, by namespace (sorted): their
	// hostnames intersected with the listener's. A listener without hostname serves its
	// certificate for these names (a route without hostnames on it gets none: Portico chooses a
	// certificate by host name).
	Attached []AttachedHosts
}

// AttachedHosts are the hostnames the HTTPRoutes of one namespace serve on a listener.
type AttachedHosts struct {
	Namespace string
	Hosts     []string
}

// ListenerCertificates returns the certificates of the HTTPS listeners of every Gateway EdgeProxy
// serves, by Gateway namespace/name and then in listener order. It is pure and derives everything
// from Gateways (what their owner wrote) and ReferenceGrants (what the Secret's owner allowed):
// never from a TenantRoute, which a tenant writes.
func ListenerCertificates(in ListenerCertificatesInput) []ListenerCertificate {
	env := newGatewayEnv(in.Gateways, in.GatewayClasses, in.EdgeProxies, in.Namespaces, in.ReferenceGrants, nil, in.Secrets)
	keys := make([]types.NamespacedName, 0, len(in.Gateways))
	for i := range in.Gateways {
		keys = append(keys, types.NamespacedName{Namespace: in.Gateways[i].Namespace, Name: in.Gateways[i].Name})
	}
	slices.SortFunc(keys, compareObjectKeys)
	keys = slices.Compact(keys)
	routes := make([]*gwapiv1.HTTPRoute, 0, len(in.Routes))
	for i := range in.Routes {
		if in.Routes[i].DeletionTimestamp.IsZero() {
			routes = append(routes, &in.Routes[i])
		}
	}
	slices.SortFunc(routes, func(a, b *gwapiv1.HTTPRoute) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	var out []ListenerCertificate
	for _, key := range keys {
		v := env.gateway(key)
		if v == nil || v.proxy.Name != in.EdgeProxy || !v.accepted.ok {
			continue
		}
		first := len(out)
		byListener := map[*listenerView]int{}
		for _, l := range v.listeners {
			if l.spec.Protocol != gwapiv1.HTTPSProtocolType || !l.usable() || !l.certified || l.cert == nil {
				continue
			}
			byListener[l] = len(out)
			out = append(out, ListenerCertificate{Listener: v.listenerName(l), Secret: *l.cert, Hostname: l.hostname})
		}
		if len(byListener) == 0 {
			continue
		}
		for _, rt := range routes {
			hosts := httpRouteHostnames(rt)
			nsLabels := env.namespaceLabels(rt.Namespace)
			for i := range rt.Spec.ParentRefs {
				ref := &rt.Spec.ParentRefs[i]
				if k, ok := gatewayRef(ref, rt.Namespace); !ok || k != key {
					continue
				}
				atts, _ := attach(v, ref, rt.Namespace, hosts, nsLabels)
				for _, a := range atts {
					if idx, ok := byListener[a.listener]; ok {
						out[idx].Attached = addAttached(out[idx].Attached, rt.Namespace, a.hosts)
					}
				}
			}
		}
		for i := range out[first:] {
			slices.SortFunc(out[first+i].Attached, func(a, b AttachedHosts) int { return strings.Compare(a.Namespace, b.Namespace) })
		}
	}
	return out
}

func httpRouteHostnames(rt *gwapiv1.HTTPRoute) []string {
	var out []string
	for _, h := range rt.Spec.Hostnames {
		if h := strings.ToLower(string(h)); !containsString(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// addAttached records that routes of ns attached with hosts (none: a catch-all attachment, which
// still says the namespace attached).
func addAttached(list []AttachedHosts, ns string, hosts []string) []AttachedHosts {
	i := slices.IndexFunc(list, func(a AttachedHosts) bool { return a.Namespace == ns })
	if i < 0 {
		list = append(list, AttachedHosts{Namespace: ns})
		i = len(list) - 1
	}
	for _, h := range hosts {
		if !containsString(list[i].Hosts, h) {
			list[i].Hosts = append(list[i].Hosts, h)
		}
	}
	return list
}

func compareObjectKeys(a, b types.NamespacedName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
