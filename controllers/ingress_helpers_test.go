package controllers

import (
	"os"
	"path/filepath"
	"sort"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/internal/testenv"
)

// The migration fixture: the EdgeProxy "migration" owns the IngressClass "nginx" (spec.controller
// edge.portico.dev/ingress-controller, parameters naming the EdgeProxy), so that the source documents'
// examples, written for ingress-nginx, are applied unchanged. It serves namespace "app" (where the
// examples live) and every namespace labelled migrationLabel, and the examples' hostnames. IngressClass
// names are cluster-wide, so the whole suite shares it; tests clean up their Ingresses.
const (
	migrationEdgeProxy = "migration"
	migrationClass     = "nginx"
	migrationNamespace = "app"
	migrationLabel     = "portico-test/migration"
)

var migrationOnce sync.Once

func migrationFixture() {
	GinkgoHelper()
	migrationOnce.Do(func() {
		ensureNamespace(migrationNamespace) // the HTTPRoute example lives there too
		proxyNS := createNamespace("migration-edge", nil).Name
		ep := newEdgeProxy(migrationEdgeProxy, proxyNS, []string{migrationNamespace},
			"app.example.com", "admin.example.com", "api.example.com", "yourdomain.com")
		ep.Spec.TenantNamespaces.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{migrationLabel: "true"}}
		ep.Spec.IngressClass = &edgev1alpha1.IngressClassSpec{Name: migrationClass}
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		Eventually(func(g Gomega) {
			ic := &networkingv1.IngressClass{}
			g.Expect(k8sClient.Get(ctx, keyOf(migrationClass), ic)).To(Succeed())
			g.Expect(ic.Spec.Controller).To(Equal(edgev1alpha1.IngressControllerName))
			g.Expect(ic.Spec.Parameters).NotTo(BeNil())
			g.Expect(ic.Spec.Parameters.Name).To(Equal(migrationEdgeProxy))
			g.Expect(getEdgeProxy(migrationEdgeProxy).Status.Addresses).NotTo(BeEmpty())
		}).Should(Succeed())
	})
}

// migrationTenantNamespace creates a namespace the migration EdgeProxy serves.
func migrationTenantNamespace() string {
	GinkgoHelper()
	return createNamespace(unique("mig"), map[string]string{migrationLabel: "true"}).Name
}

// sourceExample reads one of test/testdata/source-examples, unchanged.
func sourceExample(name string) *networkingv1.Ingress {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test", "testdata", "source-examples", name))
	Expect(err).NotTo(HaveOccurred())
	ing := &networkingv1.Ingress{}
	Expect(yaml.UnmarshalStrict(b, ing)).To(Succeed())
	return ing
}

// createIngress creates an Ingress (in namespace when its metadata names none, as kubectl -n does)
// and deletes it, and waits for its routes to go, when the test ends.
func createIngress(ing *networkingv1.Ingress, namespace string) types.NamespacedName {
	GinkgoHelper()
	if ing.Namespace == "" {
		ing.Namespace = namespace
	}
	Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := client.ObjectKeyFromObject(ing)
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}))).To(Succeed())
		Eventually(func() []string { return routeNames(key) }).Should(BeEmpty())
	})
	return key
}

// ensureServices creates Services with one port each ("http", number port) unless they exist, and
// deletes those it created when the test ends (other tests use the examples' names too).
func ensureServices(namespace string, port int32, names ...string) {
	GinkgoHelper()
	for _, n := range names {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: n},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
		}
		err := k8sClient.Create(ctx, svc)
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, svc))).To(Succeed()) })
	}
}

func getIngress(key types.NamespacedName) *networkingv1.Ingress {
	GinkgoHelper()
	ing := &networkingv1.Ingress{}
	Expect(k8sClient.Get(ctx, key, ing)).To(Succeed())
	return ing
}

func updateIngress(key types.NamespacedName, mutate func(*networkingv1.Ingress)) {
	GinkgoHelper()
	Eventually(func() error {
		ing := getIngress(key)
		mutate(ing)
		return k8sClient.Update(ctx, ing)
	}).Should(Succeed())
}

// routesOfIngress lists the TenantRoutes labelled as generated from the Ingress.
func routesOfIngress(key types.NamespacedName) []edgev1alpha1.TenantRoute {
	GinkgoHelper()
	var list edgev1alpha1.TenantRouteList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingLabels(translate.SourceLabels(key.Name)))).To(Succeed())
	return list.Items
}

func routeNames(key types.NamespacedName) []string {
	GinkgoHelper()
	var names []string
	for _, tr := range routesOfIngress(key) {
		names = append(names, tr.Name)
	}
	sort.Strings(names)
	return names
}

// hostsRouted lists, sorted, the hostnames of the Ingress's TenantRoutes.
func hostsRouted(key types.NamespacedName) []string {
	GinkgoHelper()
	var hosts []string
	for _, tr := range routesOfIngress(key) {
		for _, h := range tr.Spec.Hostnames {
			hosts = append(hosts, string(h))
		}
	}
	sort.Strings(hosts)
	return hosts
}

// expectRoutes waits until the Ingress's TenantRoutes are exactly these (by name).
func expectRoutes(key types.NamespacedName, names ...string) {
	GinkgoHelper()
	sort.Strings(names)
	Eventually(func() []string { return routeNames(key) }).Should(Equal(names))
}

func routeKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// expectedAddresses are the migration EdgeProxy's addresses as Ingress load-balancer entries.
func expectedAddresses(edgeProxy string) []networkingv1.IngressLoadBalancerIngress {
	GinkgoHelper()
	ep := getEdgeProxy(edgeProxy)
	Expect(ep.Status.Addresses).NotTo(BeEmpty())
	return loadBalancerIngress(ep.Status.Addresses)
}

// proxyService is the Service of an EdgeProxy's fleet.
func proxyService(edgeProxy string) *corev1.Service {
	GinkgoHelper()
	ep := getEdgeProxy(edgeProxy)
	svc := &corev1.Service{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ep.Spec.ProxyNamespace, Name: render.ObjectName(ep)}, svc)).To(Succeed())
	return svc
}

// ingressEvents lists the Events about the Ingress now called key (by UID: Ingresses of the same
// name in earlier tests had their own).
func ingressEvents(key types.NamespacedName) func() []eventsv1.Event {
	return func() []eventsv1.Event {
		GinkgoHelper()
		uid := getIngress(key).UID
		var out []eventsv1.Event
		for _, e := range eventsAbout(key.Namespace, key.Name) {
			if e.Regarding.UID == uid && e.Regarding.Kind == "Ingress" {
				out = append(out, e)
			}
		}
		return out
	}
}

// touchService changes a Service's labels, which re-translates the Ingresses sending traffic to it.
func touchService(key types.NamespacedName) {
	GinkgoHelper()
	Eventually(func() error {
		svc := &corev1.Service{}
		if err := k8sClient.Get(ctx, key, svc); err != nil {
			return err
		}
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels["touched"] = unique("t")
		return k8sClient.Update(ctx, svc)
	}).Should(Succeed())
}
