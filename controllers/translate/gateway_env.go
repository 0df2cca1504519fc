package translate

import (
	"crypto/tls"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// gatewayEnv indexes the objects a Gateway API translation consults, and remembers the Gateways it
// has evaluated.
type gatewayEnv struct {
	gateways    []gwapiv1.Gateway
	classes     []gwapiv1.GatewayClass
	edgeProxies []edgev1alpha1.EdgeProxy
	nsLabels    map[string]map[string]string
	grants      []gwapiv1beta1.ReferenceGrant
	services    map[types.NamespacedName]*corev1.Service
	secrets     map[types.NamespacedName]*corev1.Secret
	views       map[types.NamespacedName]*gatewayView
}

func newGatewayEnv(gateways []gwapiv1.Gateway, classes []gwapiv1.GatewayClass, edgeProxies []edgev1alpha1.EdgeProxy,
	namespaces []corev1.Namespace, grants []gwapiv1beta1.ReferenceGrant, services []corev1.Service, secrets []corev1.Secret,
) *gatewayEnv {
	env := &gatewayEnv{
		gateways: gateways, classes: classes, edgeProxies: edgeProxies, grants: grants,
		nsLabels: map[string]map[string]string{},
		services: map[types.NamespacedName]*corev1.Service{},
		secrets:  map[types.NamespacedName]*corev1.Secret{},
		views:    map[types.NamespacedName]*gatewayView{},
	}
	for i := range namespaces {
		env.nsLabels[namespaces[i].Name] = namespaces[i].Labels
	}
	for i := range services {
		s := &services[i]
		env.services[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	for i := range secrets {
		s := &secrets[i]
		env.secrets[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	return env
}

// gateway evaluates the named Gateway once; nil when it is unknown or not Portico's.
func (env *gatewayEnv) gateway(key types.NamespacedName) *gatewayView {
	if v, ok := env.views[key]; ok {
		return v
	}
	var v *gatewayView
	for i := range env.gateways {
		if gw := &env.gateways[i]; gw.Namespace == key.Namespace && gw.Name == key.Name {
			v = evaluateGateway(gw, env)
			break
		}
	}
	env.views[key] = v
	return v
}

// namespaceLabels are the labels of a namespace. The API server gives every namespace
// kubernetes.io/metadata.name; it is added when the caller's copy lacks it.
func (env *gatewayEnv) namespaceLabels(ns string) map[string]string {
	labels := env.nsLabels[ns]
	if labels[corev1.LabelMetadataName] == ns {
		return labels
	}
	out := map[string]string{corev1.LabelMetadataName: ns}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

// granted reports whether a ReferenceGrant in toNamespace lets objects of fromKind in
// fromNamespace refer to the named object of toGroup/toKind.
func (env *gatewayEnv) granted(fromKind, fromNamespace, toGroup, toKind, toNamespace, toName string) bool {
	for _, g := range env.grants {
		if g.Namespace != toNamespace {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == gwapiv1.GroupName && string(f.Kind) == fromKind && string(f.Namespace) == fromNamespace {
				from = true
				break
			}
		}
		if !from {
			continue
		}
		for _, t := range g.Spec.To {
			if string(t.Group) == toGroup && string(t.Kind) == toKind && (t.Name == nil || *t.Name == "" || string(*t.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// checkKeyPair reports why a Secret cannot serve TLS: not kubernetes.io/tls, or a certificate and
// key that do not parse or do not match. Which hosts it covers is the admission's question.
func checkKeyPair(s *corev1.Secret) string {
	if s.Type != corev1.SecretTypeTLS {
		return fmt.Sprintf("its type is %q, not %q", s.Type, corev1.SecretTypeTLS)
	}
	if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return "tls.crt and tls.key are not a valid key pair: " + err.Error()
	}
	return ""
}

// verdict is the outcome of one status question: OK, or a reason and a message.
type verdict struct {
	ok     bool
	reason string
	msg    string
}

func okVerdict(reason, msg string) verdict { return verdict{ok: true, reason: reason, msg: msg} }

func refuse[R ~string](reason R, format string, args ...any) verdict {
	return verdict{reason: string(reason), msg: fmt.Sprintf(format, args...)}
}

// problems gathers refusals: the first one's reason is reported, every message is listed.
type problems []verdict

// maxReported caps the problems a condition message lists.
const maxReported = 8

func (p problems) verdict(okReason, okMsg string) verdict {
	if len(p) == 0 {
		return okVerdict(okReason, okMsg)
	}
	msgs := make([]string, 0, len(p))
	for i, v := range p {
		if i == maxReported {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(p)-i))
			break
		}
		msgs = append(msgs, v.msg)
	}
	return verdict{reason: p[0].reason, msg: strings.Join(msgs, "; ")}
}

func gatewayKey(gw *gwapiv1.Gateway) string { return gw.Namespace + "/" + gw.Name }
