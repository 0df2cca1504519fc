package render

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Where cluster DNS runs: the kube-dns pods of kube-system (CoreDNS keeps the k8s-app=kube-dns label).
const (
	dnsNamespace = "kube-system"
	dnsPodLabel  = "k8s-app"
	dnsPodValue  = "kube-dns"
)

// networkPolicy lets anyone reach the proxy ports, the monitoring namespace reach the admin port, and
// lets the proxy reach only its tenants' pods, cluster DNS and the operator. ExternalName backends,
// when the EdgeProxy allows them, can be anywhere, so they open egress to every address except
// link-local ones (cloud metadata); the proxy's dialer refuses loopback and metadata addresses too.
func networkPolicy(ep *edgev1alpha1.EdgeProxy, p Params) *networkingv1.NetworkPolicy {
	tcp := ptr.To(corev1.ProtocolTCP)
	udp := ptr.To(corev1.ProtocolUDP)
	port := func(proto *corev1.Protocol, name string, number int32) networkingv1.NetworkPolicyPort {
		if name != "" {
			return networkingv1.NetworkPolicyPort{Protocol: proto, Port: ptr.To(intStr(name))}
		}
		return networkingv1.NetworkPolicyPort{Protocol: proto, Port: ptr.To(intInt(int(number)))}
	}

	ingress := []networkingv1.NetworkPolicyIngressRule{{
		Ports: []networkingv1.NetworkPolicyPort{port(tcp, PortNameHTTP, 0), port(tcp, PortNameHTTPS, 0)},
	}}
	if p.MonitoringNamespace != "" {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: namespaceNamed(p.MonitoringNamespace)}},
			Ports: []networkingv1.NetworkPolicyPort{port(tcp, PortNameAdmin, 0)},
		})
	}

	var tenants []networkingv1.NetworkPolicyPeer
	if names := ep.Spec.TenantNamespaces.Names; len(names) > 0 {
		sorted := slices.Clone(names)
		slices.Sort(sorted)
		tenants = append(tenants, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: sorted,
			}},
		}})
	}
	if sel := ep.Spec.TenantNamespaces.Selector; sel != nil {
		tenants = append(tenants, networkingv1.NetworkPolicyPeer{NamespaceSelector: sel.DeepCopy()})
	}
	var egress []networkingv1.NetworkPolicyEgressRule
	// An egress rule without peers allows every destination: never render one.
	if len(tenants) > 0 {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: tenants})
	}
	egress = append(egress, networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: namespaceNamed(dnsNamespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{dnsPodLabel: dnsPodValue}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{port(udp, "", 53), port(tcp, "", 53)},
	})
	if p.OperatorNamespace != "" {
		var podSel *metav1.LabelSelector
		if len(p.OperatorPodLabels) > 0 {
			podSel = &metav1.LabelSelector{MatchLabels: maps.Clone(p.OperatorPodLabels)}
		}
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{
			To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: namespaceNamed(p.OperatorNamespace), PodSelector: podSel}},
		})
	}
	if ep.Spec.AllowExternalNameServices {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{
			To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"169.254.0.0/16"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"fe80::/10"}}},
			},
		})
	}

	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(ep)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     ingress,
			Egress:      egress,
		},
	}
}

func namespaceNamed(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: name}}
}
