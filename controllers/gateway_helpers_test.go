package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

func createGatewayClass(name string) *gwapiv1.GatewayClass {
	GinkgoHelper()
	gc := &gwapiv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       gwapiv1.GatewayClassSpec{ControllerName: edgev1alpha1.GatewayControllerName},
	}
	Expect(k8sClient.Create(ctx, gc)).To(Succeed())
	return gc
}

// httpListener admits routes of the namespaces `from` says (Same, All).
func httpListener(name, hostname string, from gwapiv1.FromNamespaces) gwapiv1.Listener {
	l := gwapiv1.Listener{
		Name:          gwapiv1.SectionName(name),
		Protocol:      gwapiv1.HTTPProtocolType,
		Port:          80,
		AllowedRoutes: &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(from)}},
	}
	if hostname != "" {
		l.Hostname = ptr.To(gwapiv1.Hostname(hostname))
	}
	return l
}

func createGateway(ns, name, class string, listeners ...gwapiv1.Listener) *gwapiv1.Gateway {
	GinkgoHelper()
	gw := &gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       gwapiv1.GatewaySpec{GatewayClassName: gwapiv1.ObjectName(class), Listeners: listeners},
	}
	Expect(k8sClient.Create(ctx, gw)).To(Succeed())
	return gw
}

func getGateway(key types.NamespacedName) *gwapiv1.Gateway {
	GinkgoHelper()
	gw := &gwapiv1.Gateway{}
	Expect(k8sClient.Get(ctx, key, gw)).To(Succeed())
	return gw
}

func getHTTPRoute(key types.NamespacedName) *gwapiv1.HTTPRoute {
	GinkgoHelper()
	r := &gwapiv1.HTTPRoute{}
	Expect(k8sClient.Get(ctx, key, r)).To(Succeed())
	return r
}

// newHTTPRoute attaches to the named Gateway and sends everything to one Service port 80.
func newHTTPRoute(ns, name string, gateway types.NamespacedName, backend types.NamespacedName, hostnames ...string) *gwapiv1.HTTPRoute {
	ref := gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
		Name: gwapiv1.ObjectName(backend.Name), Port: ptr.To(gwapiv1.PortNumber(80)),
	}}}
	if backend.Namespace != ns {
		ref.Namespace = ptr.To(gwapiv1.Namespace(backend.Namespace))
	}
	r := &gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{
				Name: gwapiv1.ObjectName(gateway.Name), Namespace: ptr.To(gwapiv1.Namespace(gateway.Namespace)),
			}}},
			Rules: []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{ref}}},
		},
	}
	for _, h := range hostnames {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gwapiv1.Hostname(h))
	}
	return r
}

// haveStdCondition matches a Gateway API conditions slice holding condition t with this status and
// reason, stamped with observedGeneration gen (any when 0).
func haveStdCondition[T ~string, R ~string](t T, s metav1.ConditionStatus, reason R, gen int64) OmegaMatcher {
	m := And(HaveField("Type", string(t)), HaveField("Status", s), HaveField("Reason", string(reason)))
	if gen != 0 {
		m = And(m, HaveField("ObservedGeneration", gen))
	}
	return ContainElement(m)
}

// ourParent returns Portico's status entry for the parentRef naming gateway, or nil.
func ourParent(r *gwapiv1.HTTPRoute, gateway types.NamespacedName) *gwapiv1.RouteParentStatus {
	for i := range r.Status.Parents {
		p := &r.Status.Parents[i]
		if p.ControllerName == edgev1alpha1.GatewayControllerName && string(p.ParentRef.Name) == gateway.Name {
			return p
		}
	}
	return nil
}

// expectParent waits for Portico's parent status of the route to hold condition t with this
// status and reason, and returns the route.
func expectParent[T ~string, R ~string](key, gateway types.NamespacedName, t T, s metav1.ConditionStatus, reason R, inMessage ...string) *gwapiv1.HTTPRoute {
	GinkgoHelper()
	var route *gwapiv1.HTTPRoute
	Eventually(func(g Gomega) {
		route = getHTTPRoute(key)
		p := ourParent(route, gateway)
		g.Expect(p).NotTo(BeNil(), "no parent status of ours")
		g.Expect(p.Conditions).To(haveStdCondition(t, s, reason, route.Generation))
		for _, c := range p.Conditions {
			if c.Type == string(t) {
				for _, m := range inMessage {
					g.Expect(c.Message).To(ContainSubstring(m))
				}
			}
		}
	}).Should(Succeed())
	return route
}

// rollOutEdgeProxy plays the Deployment controller for an EdgeProxy's fleet: every replica ready.
func rollOutEdgeProxy(name string) {
	GinkgoHelper()
	Eventually(func() error {
		ep := &edgev1alpha1.EdgeProxy{}
		if err := k8sClient.Get(ctx, keyOf(name), ep); err != nil {
			return err
		}
		dep := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ep.Spec.ProxyNamespace, Name: render.ObjectName(ep)}, dep); err != nil {
			return err
		}
		dep.Status = appsv1.DeploymentStatus{
			ObservedGeneration: dep.Generation,
			Replicas:           *dep.Spec.Replicas,
			UpdatedReplicas:    *dep.Spec.Replicas,
			ReadyReplicas:      *dep.Spec.Replicas,
			AvailableReplicas:  *dep.Spec.Replicas,
		}
		return k8sClient.Status().Update(ctx, dep)
	}).Should(Succeed())
}

// createTLSSecret creates a kubernetes.io/tls Secret valid for hosts.
func createTLSSecret(ns, name string, hosts ...string) {
	GinkgoHelper()
	cert, key := selfSignedKeyPair(hosts...)
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	})).To(Succeed())
}
