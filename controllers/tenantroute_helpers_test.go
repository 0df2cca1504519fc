package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// tenancy is one EdgeProxy shared by two served namespaces (a and b, by name), a namespace served
// through the label selector once labelled (d), and one it never serves (c). Each test gets its own.
type tenancy struct {
	suffix     string
	edgeProxy  string
	a, b, c, d string
	domain     string // the EdgeProxy allows domain and *.domain
}

func newTenancy() tenancy {
	GinkgoHelper()
	s := unique("t")
	t := tenancy{suffix: s, edgeProxy: "shared-" + s, a: "team-a-" + s, b: "team-b-" + s, c: "team-c-" + s, d: "team-d-" + s,
		domain: s + ".example.com"}
	for _, ns := range []string{t.a, t.b, t.c, t.d} {
		createNamespace(ns, nil)
		createService(ns, "web", corev1.ServiceTypeClusterIP)
	}
	ep := newEdgeProxy(t.edgeProxy, t.edgeProxy+"-edge", []string{t.a, t.b},
		edgev1alpha1.Hostname(t.domain), edgev1alpha1.Hostname("*."+t.domain))
	ep.Spec.TenantNamespaces.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": s}}
	Expect(k8sClient.Create(ctx, ep)).To(Succeed())
	return t
}

func (t tenancy) host(label string) edgev1alpha1.Hostname {
	return edgev1alpha1.Hostname(label + "." + t.domain)
}

func createService(ns, name string, typ corev1.ServiceType) *corev1.Service {
	GinkgoHelper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Type: typ}}
	if typ == corev1.ServiceTypeExternalName {
		svc.Spec.ExternalName = "api.example.net"
	} else {
		svc.Spec.Ports = []corev1.ServicePort{{Port: 80}}
	}
	Expect(k8sClient.Create(ctx, svc)).To(Succeed())
	return svc
}

// newRoute sends every request for hosts to Service "web" of its namespace.
func (t tenancy) newRoute(ns, name string, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.TenantRoute {
	return &edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: t.edgeProxy,
			Hostnames: hosts,
			Rules: []edgev1alpha1.TenantRouteRule{{
				BackendRefs: []gwapiv1.HTTPBackendRef{backendRef("", "web")},
			}},
		},
	}
}

func backendRef(ns, name string) gwapiv1.HTTPBackendRef {
	ref := gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
		Name: gwapiv1.ObjectName(name), Port: ptr.To(gwapiv1.PortNumber(80)),
	}}}
	if ns != "" {
		ref.Namespace = ptr.To(gwapiv1.Namespace(ns))
	}
	return ref
}

func createRoute(tr *edgev1alpha1.TenantRoute) types.NamespacedName {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, tr)).To(Succeed())
	return types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}
}

// expectCondition waits until the route's condition t has this status and reason for its current
// generation, and returns the route.
func expectCondition(key types.NamespacedName, t edgev1alpha1.ConditionType, s metav1.ConditionStatus, reason edgev1alpha1.ConditionReason, inMessage ...string) *edgev1alpha1.TenantRoute {
	GinkgoHelper()
	var tr *edgev1alpha1.TenantRoute
	Eventually(func(g Gomega) {
		tr = getRoute(key)
		g.Expect(tr.Status.ObservedGeneration).To(Equal(tr.Generation))
		g.Expect(tr.Status.Conditions).To(haveCondition(t, s, reason, tr.Generation))
		for _, m := range inMessage {
			g.Expect(condition(tr.Status.Conditions, t).Message).To(ContainSubstring(m))
		}
	}).Should(Succeed())
	return tr
}

func expectAccepted(key types.NamespacedName) *edgev1alpha1.TenantRoute {
	GinkgoHelper()
	return expectCondition(key, edgev1alpha1.RouteConditionAccepted, metav1.ConditionTrue, edgev1alpha1.RouteReasonAccepted)
}

// expectWarning waits for a Warning Event about the route with this reason and note substrings.
func expectWarning(key types.NamespacedName, reason edgev1alpha1.ConditionReason, note ...string) {
	GinkgoHelper()
	Eventually(func() any { return eventsAbout(key.Namespace, key.Name) }).Should(
		haveEvent(corev1.EventTypeWarning, string(reason), note...))
}

func updateRoute(key types.NamespacedName, mutate func(*edgev1alpha1.TenantRoute)) {
	GinkgoHelper()
	Eventually(func() error {
		tr := getRoute(key)
		mutate(tr)
		return k8sClient.Update(ctx, tr)
	}).Should(Succeed())
}

func updateEdgeProxy(name string, mutate func(*edgev1alpha1.EdgeProxy)) {
	GinkgoHelper()
	Eventually(func() error {
		ep := getEdgeProxy(name)
		mutate(ep)
		return k8sClient.Update(ctx, ep)
	}).Should(Succeed())
}
