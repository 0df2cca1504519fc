// Package render turns an EdgeProxy into the Kubernetes objects of its proxy fleet: ServiceAccount,
// Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy and IngressClass.
//
// It is pure: values in, values out, no client and no clock. The same EdgeProxy and Params always
// render byte-identical objects, so applying them again is a no-op and the Deployment rolls only when
// its pod template really changes. The reconciler applies the result with server-side apply.
package render

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Params are what the renderer needs besides the EdgeProxy: facts about the operator itself.
type Params struct {
	// Image of the proxy unless the EdgeProxy overrides it: the operator's own image, so that control
	// and data plane versions cannot drift.
	Image string
	// OperatorAddress is host:port of the operator's snapshot service. When set, the proxy gets
	// --operator-address and mounts the operator's CA bundle from the ConfigMap OperatorCAName(ep)
	// (OperatorCAConfigMap), which the reconciler applies next to the rendered objects.
	OperatorAddress string
	// OperatorNamespace and OperatorPodLabels locate the operator pods, the only destination besides
	// tenant backends and DNS that the NetworkPolicy lets the proxy reach. No egress rule for the
	// operator is rendered when OperatorNamespace is empty.
	OperatorNamespace string
	OperatorPodLabels map[string]string
	// MonitoringNamespace may scrape the admin port (metrics). No admin ingress rule when empty.
	MonitoringNamespace string
}

// Object is a rendered Kubernetes object.
type Object interface {
	metav1.Object
	runtime.Object
}

// Objects are the rendered children of one EdgeProxy. PodDisruptionBudget and HorizontalPodAutoscaler
// are nil when the EdgeProxy does not want them; the reconciler deletes them then.
type Objects struct {
	ServiceAccount          *corev1.ServiceAccount
	Deployment              *appsv1.Deployment
	Service                 *corev1.Service
	PodDisruptionBudget     *policyv1.PodDisruptionBudget
	HorizontalPodAutoscaler *autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicy           *networkingv1.NetworkPolicy
	IngressClass            *networkingv1.IngressClass
}

// List returns the rendered objects in apply order (ServiceAccount before the Deployment that uses
// it), leaving out the absent ones.
func (o *Objects) List() []Object {
	var out []Object
	add := func(obj Object, present bool) {
		if present {
			out = append(out, obj)
		}
	}
	add(o.ServiceAccount, o.ServiceAccount != nil)
	add(o.Deployment, o.Deployment != nil)
	add(o.Service, o.Service != nil)
	add(o.PodDisruptionBudget, o.PodDisruptionBudget != nil)
	add(o.HorizontalPodAutoscaler, o.HorizontalPodAutoscaler != nil)
	add(o.NetworkPolicy, o.NetworkPolicy != nil)
	add(o.IngressClass, o.IngressClass != nil)
	return out
}

// Kinds are every kind Render may produce, optional ones included: what the reconciler watches and prunes.
var Kinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	corev1.SchemeGroupVersion.WithKind("Service"),
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"),
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	networkingv1.SchemeGroupVersion.WithKind("IngressClass"),
}

// Render renders the children of ep. It fails only on an EdgeProxy the API server should have
// refused, or on Params without an image.
func Render(ep *edgev1alpha1.EdgeProxy, p Params) (*Objects, error) {
	if ep == nil || ep.Name == "" {
		return nil, fmt.Errorf("render: EdgeProxy without a name")
	}
	if ep.Spec.ProxyNamespace == "" {
		return nil, fmt.Errorf("render: EdgeProxy %s has no spec.proxyNamespace", ep.Name)
	}
	image := p.Image
	if d := ep.Spec.Deployment; d != nil && d.Image != "" {
		image = d.Image
	}
	if image == "" {
		return nil, fmt.Errorf("render: no proxy image (operator --proxy-image is empty and spec.deployment.image unset)")
	}
	dep, err := deployment(ep, p, image)
	if err != nil {
		return nil, err
	}
	return &Objects{
		ServiceAccount:          serviceAccount(ep),
		Deployment:              dep,
		Service:                 service(ep),
		PodDisruptionBudget:     podDisruptionBudget(ep),
		HorizontalPodAutoscaler: horizontalPodAutoscaler(ep),
		NetworkPolicy:           networkPolicy(ep, p),
		IngressClass:            ingressClass(ep),
	}, nil
}

// OwnerReference makes ep the controller of a rendered object, so that deleting the EdgeProxy
// garbage-collects its fleet (a cluster-scoped owner may own namespaced objects).
func OwnerReference(ep *edgev1alpha1.EdgeProxy) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         edgev1alpha1.GroupVersion.String(),
		Kind:               "EdgeProxy",
		Name:               ep.Name,
		UID:                ep.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func objectMeta(ep *edgev1alpha1.EdgeProxy, name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       namespace,
		Labels:          Labels(ep),
		OwnerReferences: []metav1.OwnerReference{OwnerReference(ep)},
	}
}

func serviceAccount(ep *edgev1alpha1.EdgeProxy) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace),
		// The proxy holds no Kubernetes credentials; its only token is the projected, audience-bound
		// one it presents to the operator.
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// desiredReplicas is spec.deployment.replicas, 2 when unset; nil when an autoscaler owns replicas.
func desiredReplicas(ep *edgev1alpha1.EdgeProxy) *int32 {
	if ep.Spec.Autoscaling != nil {
		return nil
	}
	if d := ep.Spec.Deployment; d != nil && d.Replicas != nil {
		return ptr.To(*d.Replicas)
	}
	return ptr.To(DefaultReplicas)
}

// DefaultReplicas of the proxy fleet and minimum replicas of its autoscaler.
const DefaultReplicas = int32(2)

// DefaultTargetCPUUtilization of the autoscaler, in percent.
const DefaultTargetCPUUtilization = int32(70)

func minReplicas(ep *edgev1alpha1.EdgeProxy) int32 {
	if a := ep.Spec.Autoscaling; a != nil && a.MinReplicas != nil {
		return *a.MinReplicas
	}
	return DefaultReplicas
}

func service(ep *edgev1alpha1.EdgeProxy) *corev1.Service {
	spec := ep.Spec.Service
	if spec == nil {
		spec = &edgev1alpha1.ProxyServiceSpec{}
	}
	svcType := spec.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeLoadBalancer
	}
	httpPort, httpsPort := DefaultServiceHTTPPort, DefaultServiceHTTPSPort
	if spec.HTTPPort != nil {
		httpPort = *spec.HTTPPort
	}
	if spec.HTTPSPort != nil {
		httpsPort = *spec.HTTPSPort
	}
	meta := objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace)
	meta.Annotations = copyMap(spec.Annotations)
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: SelectorLabels(ep),
			Ports: []corev1.ServicePort{
				{Name: PortNameHTTP, Protocol: corev1.ProtocolTCP, Port: httpPort, TargetPort: intStr(PortNameHTTP)},
				{Name: PortNameHTTPS, Protocol: corev1.ProtocolTCP, Port: httpsPort, TargetPort: intStr(PortNameHTTPS)},
			},
		},
	}
	// The API server refuses these fields on Service types they do not apply to.
	if svcType == corev1.ServiceTypeLoadBalancer && spec.LoadBalancerClass != nil {
		svc.Spec.LoadBalancerClass = ptr.To(*spec.LoadBalancerClass)
	}
	if svcType != corev1.ServiceTypeClusterIP && spec.ExternalTrafficPolicy != "" {
		svc.Spec.ExternalTrafficPolicy = spec.ExternalTrafficPolicy
	}
	return svc
}

func podDisruptionBudget(ep *edgev1alpha1.EdgeProxy) *policyv1.PodDisruptionBudget {
	// A budget for a single replica would block node drains forever; none is rendered then.
	if r := desiredReplicas(ep); r != nil && *r <= 1 {
		return nil
	}
	if ep.Spec.Autoscaling != nil && minReplicas(ep) <= 1 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             ptr.To(intInt(1)),
			Selector:                   &metav1.LabelSelector{MatchLabels: SelectorLabels(ep)},
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}

func horizontalPodAutoscaler(ep *edgev1alpha1.EdgeProxy) *autoscalingv2.HorizontalPodAutoscaler {
	a := ep.Spec.Autoscaling
	if a == nil {
		return nil
	}
	target := DefaultTargetCPUUtilization
	if a.TargetCPUUtilizationPercentage != nil {
		target = *a.TargetCPUUtilizationPercentage
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: objectMeta(ep, ObjectName(ep), ep.Spec.ProxyNamespace),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1", Kind: "Deployment", Name: ObjectName(ep),
			},
			MinReplicas: ptr.To(minReplicas(ep)),
			MaxReplicas: a.MaxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{
						Type:               autoscalingv2.UtilizationMetricType,
						AverageUtilization: ptr.To(target),
					},
				},
			}},
		},
	}
}

func ingressClass(ep *edgev1alpha1.EdgeProxy) *networkingv1.IngressClass {
	meta := objectMeta(ep, IngressClassName(ep), "")
	if ep.Spec.IngressClass != nil && ep.Spec.IngressClass.Default {
		meta.Annotations = map[string]string{AnnotationDefaultIngressClass: "true"}
	}
	return &networkingv1.IngressClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass"},
		ObjectMeta: meta,
		Spec: networkingv1.IngressClassSpec{
			Controller: edgev1alpha1.IngressControllerName,
			Parameters: &networkingv1.IngressClassParametersReference{
				APIGroup: ptr.To(edgev1alpha1.GroupVersion.Group),
				Kind:     "EdgeProxy",
				Name:     ep.Name,
				Scope:    ptr.To(networkingv1.IngressClassParametersReferenceScopeCluster),
			},
		},
	}
}

func copyMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// OperatorCAConfigMap is the ConfigMap OperatorCAName(ep) in the proxy namespace holding caPEM (ca.crt
// of the operator's CA Secret) under OperatorCAKey, the bundle the proxies verify the snapshot server
// with. It is not part of Objects: its content comes from the cluster, not from the EdgeProxy.
func OperatorCAConfigMap(ep *edgev1alpha1.EdgeProxy, caPEM []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(ep, OperatorCAName(ep), ep.Spec.ProxyNamespace),
		Data:       map[string]string{OperatorCAKey: string(caPEM)},
	}
}
