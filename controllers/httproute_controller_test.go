package controllers

import (
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/internal/testenv"
)

// tenantRoutesOf lists the TenantRoutes generated from an HTTPRoute.
func tenantRoutesOf(g Gomega, key types.NamespacedName) []edgev1alpha1.TenantRoute {
	var list edgev1alpha1.TenantRouteList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingLabels(translate.HTTPRouteSourceLabels(key.Name)))).To(Succeed())
	return list.Items
}

var _ = Describe("Gateway API HTTPRoute", func() {
	It("refuses the source example's cross-namespace route (NotAllowedByListeners), and attaches it once the listener admits All", func() {
		// The example as written, unchanged, with a GatewayClass "nginx" pointing at Portico.
		data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test", "testdata", "source-examples", "gateway-httproute.yaml"))
		Expect(err).NotTo(HaveOccurred())
		decoder := serializer.NewCodecFactory(testenv.Scheme()).UniversalDeserializer()
		var gw *gwapiv1.Gateway
		var route *gwapiv1.HTTPRoute
		for _, doc := range strings.Split(string(data), "\n---") {
			obj, _, err := decoder.Decode([]byte(doc), nil, nil)
			Expect(err).NotTo(HaveOccurred())
			switch o := obj.(type) {
			case *gwapiv1.Gateway:
				gw = o
			case *gwapiv1.HTTPRoute:
				route = o
			}
		}
		Expect(gw).NotTo(BeNil())
		Expect(route).NotTo(BeNil())
		// The example's names are fixed and "Shipped manifests" dry-runs the same file: share the
		// namespaces, and leave nothing of the example behind.
		ensureNamespace(gw.Namespace)
		ensureNamespace(route.Namespace)
		class := createGatewayClass(string(gw.Spec.GatewayClassName))
		createTLSSecret(gw.Namespace, "api-example-com-tls", "api.example.com")
		svc := createService(route.Namespace, "web-api", corev1.ServiceTypeClusterIP)
		Expect(k8sClient.Create(ctx, gw)).To(Succeed())
		Expect(k8sClient.Create(ctx, route)).To(Succeed())
		gwKey, key := client.ObjectKeyFromObject(gw), client.ObjectKeyFromObject(route)
		DeferCleanup(func() {
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: gw.Namespace, Name: "api-example-com-tls"}}
			for _, o := range []client.Object{route, gw, svc, secret, class} {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed())
			}
			// The Gateway goes once Portico has deleted its generated EdgeProxy (finalizer).
			Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, gwKey, &gwapiv1.Gateway{})) }).Should(BeTrue())
		})

		expectParent(key, gwKey, gwapiv1.RouteConditionAccepted, metav1.ConditionFalse, gwapiv1.RouteReasonNotAllowedByListeners,
			"allowedRoutes.namespaces.from", "gateway-system", "app")
		Consistently(func(g Gomega) { g.Expect(tenantRoutesOf(g, key)).To(BeEmpty()) }).Should(Succeed())

		By("admitting routes of every namespace on the listener")
		Eventually(func() error {
			cur := getGateway(gwKey)
			cur.Spec.Listeners[0].AllowedRoutes = &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(gwapiv1.NamespacesFromAll)}}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		r := expectParent(key, gwKey, gwapiv1.RouteConditionAccepted, metav1.ConditionTrue, gwapiv1.RouteReasonAccepted)
		Expect(ourParent(r, gwKey).Conditions).To(haveStdCondition(gwapiv1.RouteConditionResolvedRefs,
			metav1.ConditionTrue, gwapiv1.RouteReasonResolvedRefs, r.Generation))
		Eventually(func(g Gomega) {
			trs := tenantRoutesOf(g, key)
			g.Expect(trs).To(HaveLen(1))
			tr := trs[0]
			g.Expect(tr.Spec.Hostnames).To(ConsistOf(edgev1alpha1.Hostname("api.example.com")))
			g.Expect(tr.Spec.EdgeProxy).To(Equal(translate.GatewayEdgeProxyName(gw)))
			g.Expect(metav1.GetControllerOf(&tr)).To(HaveField("UID", r.UID))
			g.Expect(tr.Status.Source).To(Equal(translate.HTTPRouteSource(r)))
			g.Expect(tr.GetManagedFields()).To(ContainElement(HaveField("Manager", edgev1alpha1.FieldOwner)))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getGateway(gwKey).Status.Listeners).To(ContainElement(HaveField("AttachedRoutes", BeEquivalentTo(1))))
		}).Should(Succeed())
	})

	Context("attached to a Portico Gateway", func() {
		var (
			ns, host string
			gwKey    types.NamespacedName
		)
		BeforeEach(func() {
			ns = createNamespace(unique("rt"), nil).Name
			host = ns + ".example.com"
			class := createGatewayClass(unique("portico")).Name
			gwKey = client.ObjectKeyFromObject(createGateway(ns, "edge", class, httpListener("http", host, gwapiv1.NamespacesFromAll)))
			createService(ns, "web", corev1.ServiceTypeClusterIP)
		})

		It("is NoMatchingListenerHostname when no hostname intersects the listener's", func() {
			route := newHTTPRoute(ns, "elsewhere", gwKey, types.NamespacedName{Namespace: ns, Name: "web"}, "other.example.org")
			Expect(k8sClient.Create(ctx, route)).To(Succeed())
			expectParent(client.ObjectKeyFromObject(route), gwKey, gwapiv1.RouteConditionAccepted, metav1.ConditionFalse,
				gwapiv1.RouteReasonNoMatchingListenerHostname, "other.example.org")
		})

		It("is BackendNotFound for a missing Service, and deletes TenantRoutes it no longer produces", func() {
			route := newHTTPRoute(ns, "missing", gwKey, types.NamespacedName{Namespace: ns, Name: "gone"}, host)
			Expect(k8sClient.Create(ctx, route)).To(Succeed())
			key := client.ObjectKeyFromObject(route)
			expectParent(key, gwKey, gwapiv1.RouteConditionResolvedRefs, metav1.ConditionFalse, gwapiv1.RouteReasonBackendNotFound, "gone")
			Eventually(func(g Gomega) { g.Expect(tenantRoutesOf(g, key)).To(HaveLen(1)) }).Should(Succeed())

			By("no longer attaching: its TenantRoute goes")
			Eventually(func() error {
				cur := getHTTPRoute(key)
				cur.Spec.Hostnames = []gwapiv1.Hostname{"other.example.org"}
				return k8sClient.Update(ctx, cur)
			}).Should(Succeed())
			Eventually(func(g Gomega) { g.Expect(tenantRoutesOf(g, key)).To(BeEmpty()) }).Should(Succeed())
		})

		It("is RefNotPermitted for a Service of another namespace until a ReferenceGrant allows it, and again once the grant goes", func() {
			other := createNamespace(unique("backend"), nil).Name
			createService(other, "search", corev1.ServiceTypeClusterIP)
			route := newHTTPRoute(ns, "cross", gwKey, types.NamespacedName{Namespace: other, Name: "search"}, host)
			Expect(k8sClient.Create(ctx, route)).To(Succeed())
			key := client.ObjectKeyFromObject(route)
			expectParent(key, gwKey, gwapiv1.RouteConditionResolvedRefs, metav1.ConditionFalse, gwapiv1.RouteReasonRefNotPermitted, other)

			By("granting HTTPRoutes of the route's namespace access")
			grant := &gwapiv1beta1.ReferenceGrant{
				ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "from-routes"},
				Spec: gwapiv1beta1.ReferenceGrantSpec{
					From: []gwapiv1beta1.ReferenceGrantFrom{{Group: gwapiv1.GroupName, Kind: "HTTPRoute", Namespace: gwapiv1.Namespace(ns)}},
					To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
				},
			}
			Expect(k8sClient.Create(ctx, grant)).To(Succeed())
			expectParent(key, gwKey, gwapiv1.RouteConditionResolvedRefs, metav1.ConditionTrue, gwapiv1.RouteReasonResolvedRefs)
			var trKey types.NamespacedName
			Eventually(func(g Gomega) {
				trs := tenantRoutesOf(g, key)
				g.Expect(trs).To(HaveLen(1))
				trKey = client.ObjectKeyFromObject(&trs[0])
				g.Expect(trs[0].Spec.Rules[0].BackendRefs).To(ContainElement(HaveField("Namespace", HaveValue(BeEquivalentTo(other)))))
				// The generated TenantRoute is admitted with the grant from HTTPRoute.
				g.Expect(trs[0].Status.Conditions).To(haveCondition(edgev1alpha1.RouteConditionResolvedRefs,
					metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, trs[0].Generation))
			}).Should(Succeed())

			By("revoking the grant")
			Expect(k8sClient.Delete(ctx, grant)).To(Succeed())
			expectParent(key, gwKey, gwapiv1.RouteConditionResolvedRefs, metav1.ConditionFalse, gwapiv1.RouteReasonRefNotPermitted, other)
			Eventually(func(g Gomega) {
				tr := &edgev1alpha1.TenantRoute{}
				g.Expect(k8sClient.Get(ctx, trKey, tr)).To(Succeed())
				g.Expect(tr.Spec.Rules[0].BackendRefs).NotTo(ContainElement(HaveField("Namespace", HaveValue(BeEquivalentTo(other)))))
			}).Should(Succeed())
		})

		It("never touches another controller's parent status", func() {
			foreignClass := &gwapiv1.GatewayClass{
				ObjectMeta: metav1.ObjectMeta{Name: unique("other")},
				Spec:       gwapiv1.GatewayClassSpec{ControllerName: "example.com/other-controller"},
			}
			Expect(k8sClient.Create(ctx, foreignClass)).To(Succeed())
			createGateway(ns, "foreign", foreignClass.Name, httpListener("http", "", gwapiv1.NamespacesFromSame))
			route := newHTTPRoute(ns, "both", gwKey, types.NamespacedName{Namespace: ns, Name: "web"}, host)
			route.Spec.ParentRefs = append(route.Spec.ParentRefs, gwapiv1.ParentReference{Name: "foreign"})
			Expect(k8sClient.Create(ctx, route)).To(Succeed())
			key := client.ObjectKeyFromObject(route)
			expectParent(key, gwKey, gwapiv1.RouteConditionAccepted, metav1.ConditionTrue, gwapiv1.RouteReasonAccepted)

			theirs := gwapiv1.RouteParentStatus{
				ParentRef:      gwapiv1.ParentReference{Group: ptr.To(gwapiv1.Group(gwapiv1.GroupName)), Kind: ptr.To(gwapiv1.Kind("Gateway")), Name: "foreign"},
				ControllerName: "example.com/other-controller",
				Conditions: []metav1.Condition{{
					Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "theirs",
					LastTransitionTime: metav1.Now(),
				}},
			}
			Eventually(func() error {
				cur := getHTTPRoute(key)
				for _, p := range cur.Status.Parents {
					Expect(p.ControllerName).To(BeEquivalentTo(edgev1alpha1.GatewayControllerName), "we write no entry for a foreign Gateway")
				}
				cur.Status.Parents = append(cur.Status.Parents, theirs)
				return k8sClient.Status().Update(ctx, cur)
			}).Should(Succeed())

			By("changing the route: our entry changes, theirs stays")
			Eventually(func() error {
				cur := getHTTPRoute(key)
				cur.Spec.Hostnames = []gwapiv1.Hostname{"other.example.org"}
				return k8sClient.Update(ctx, cur)
			}).Should(Succeed())
			expectParent(key, gwKey, gwapiv1.RouteConditionAccepted, metav1.ConditionFalse, gwapiv1.RouteReasonNoMatchingListenerHostname)
			Consistently(func(g Gomega) {
				cur := getHTTPRoute(key)
				g.Expect(cur.Status.Parents).To(HaveLen(2))
				g.Expect(cur.Status.Parents).To(ContainElement(And(
					HaveField("ControllerName", gwapiv1.GatewayController("example.com/other-controller")),
					HaveField("ParentRef.Name", gwapiv1.ObjectName("foreign")),
					HaveField("Conditions", ContainElement(HaveField("Message", "theirs"))),
				)))
			}).Should(Succeed())
		})
	})
})
