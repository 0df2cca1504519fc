package render

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Every name and label the renderer derives from an EdgeProxy is spelt here, so the reconciler, the
// tests and later `kubectl portico diagnose` cannot disagree.
const (
	// LabelName, LabelComponent, LabelInstance, LabelManagedBy and LabelPartOf are the
	// app.kubernetes.io labels of every rendered object.
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	// AppName is app.kubernetes.io/name of everything Portico runs; ComponentProxy marks the proxy fleet.
	AppName        = "portico"
	ComponentProxy = "proxy"
	// ManagedBy is app.kubernetes.io/managed-by of everything the operator applies.
	ManagedBy = edgev1alpha1.FieldOwner

	// ContainerName is the proxy container of the Deployment.
	ContainerName = "proxy"

	// Container ports of the proxy and their names.
	PortNameHTTP  = "http"
	PortNameHTTPS = "https"
	PortNameAdmin = "admin"
	PortHTTP      = int32(8080)
	PortHTTPS     = int32(8443)
	PortAdmin     = int32(9901)

	// DefaultServiceHTTPPort and DefaultServiceHTTPSPort are the Service ports when the spec sets none.
	DefaultServiceHTTPPort  = int32(80)
	DefaultServiceHTTPSPort = int32(443)

	// TokenAudience is the audience of the projected ServiceAccount token the proxy presents to the
	// operator (verified by TokenReview); TokenVolume/TokenMountPath/TokenPath locate it in the pod.
	TokenAudience  = "portico-operator"
	TokenVolume    = "operator-token"
	TokenMountPath = "/var/run/secrets/edge.portico.dev/operator"
	TokenFile      = "token"
	// OperatorCAVolume and OperatorCAMountPath locate, in the proxy pod, the operator's CA bundle
	// (OperatorCAKey of the ConfigMap OperatorCAName): the directory of the proxy's default
	// --operator-ca-file.
	OperatorCAVolume    = "operator-ca"
	OperatorCAMountPath = "/var/run/secrets/edge.portico.dev/operator-ca"
	OperatorCAKey       = "ca.crt"
	// TokenExpirationSeconds is the lifetime of the projected token; the kubelet rotates it at 80%.
	TokenExpirationSeconds = int64(3600)

	// AnnotationDefaultIngressClass marks the cluster's default IngressClass.
	AnnotationDefaultIngressClass = "ingressclass.kubernetes.io/is-default-class"

	// maxNameLength is the longest name every rendered kind accepts (a Service name is a DNS-1035 label).
	maxNameLength = 63
	// namePrefix starts every namespaced object's name, so it is a DNS-1035 label even when the
	// EdgeProxy's name starts with a digit.
	namePrefix = "portico-"
)

// ObjectName is the name of the proxy's Deployment, Service, ServiceAccount, PodDisruptionBudget,
// HorizontalPodAutoscaler and NetworkPolicy in the proxy namespace: "portico-<edgeproxy>". An
// EdgeProxy name that does not fit a DNS-1035 label (dots, more than 54 characters) is shortened and
// suffixed with a hash of the full name, so two EdgeProxies never share a name.
func ObjectName(ep *edgev1alpha1.EdgeProxy) string {
	return boundedName(namePrefix+ep.Name, maxNameLength)
}

// OperatorCAName is the ConfigMap in the proxy namespace holding the operator's CA bundle
// ("<ObjectName>-operator-ca"; a ConfigMap name may be a 253-character DNS subdomain).
func OperatorCAName(ep *edgev1alpha1.EdgeProxy) string {
	return ObjectName(ep) + "-operator-ca"
}

// IngressClassName is the IngressClass created for the EdgeProxy: spec.ingressClass.name, else the
// EdgeProxy's own name.
func IngressClassName(ep *edgev1alpha1.EdgeProxy) string {
	if ep.Spec.IngressClass != nil && ep.Spec.IngressClass.Name != "" {
		return ep.Spec.IngressClass.Name
	}
	return ep.Name
}

// LabelValue is the value of the edge.portico.dev/edgeproxy and app.kubernetes.io/instance labels:
// the EdgeProxy's name, shortened with a hash suffix when longer than a label value may be.
func LabelValue(ep *edgev1alpha1.EdgeProxy) string {
	if len(ep.Name) <= maxNameLength {
		return ep.Name
	}
	return boundedName(ep.Name, maxNameLength)
}

// SelectorLabels select the proxy pods of one EdgeProxy. They are part of the Deployment's immutable
// selector: never change them.
func SelectorLabels(ep *edgev1alpha1.EdgeProxy) map[string]string {
	return map[string]string{
		LabelName:                   AppName,
		LabelComponent:              ComponentProxy,
		edgev1alpha1.LabelEdgeProxy: LabelValue(ep),
	}
}

// Labels are set on every rendered object.
func Labels(ep *edgev1alpha1.EdgeProxy) map[string]string {
	l := SelectorLabels(ep)
	l[LabelInstance] = LabelValue(ep)
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = AppName
	return l
}

// boundedName returns s with dots turned into dashes when it fits in max characters; otherwise a
// prefix of it, a dash and the first 8 hex digits of the SHA-256 of s.
func boundedName(s string, max int) string {
	clean := strings.ReplaceAll(s, ".", "-")
	if len(clean) <= max && clean == s {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	suffix := hex.EncodeToString(sum[:])[:8]
	head := clean
	if len(head) > max-len(suffix)-1 {
		head = head[:max-len(suffix)-1]
	}
	head = strings.TrimRight(head, "-")
	return head + "-" + suffix
}
