package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// unique returns prefix plus a random suffix: the control plane lives for the whole suite, so every
// test works on its own objects.
func unique(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func createNamespace(name string, labels map[string]string) *corev1.Namespace {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns
}

// newEdgeProxy serves tenantNamespaces, lets them claim hosts and runs its fleet in proxyNamespace.
func newEdgeProxy(name, proxyNamespace string, tenantNamespaces []string, hosts ...edgev1alpha1.Hostname) *edgev1alpha1.EdgeProxy {
	return &edgev1alpha1.EdgeProxy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: edgev1alpha1.EdgeProxySpec{
			TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: tenantNamespaces},
			Hostnames:        hosts,
			ProxyNamespace:   proxyNamespace,
		},
	}
}

func getEdgeProxy(name string) *edgev1alpha1.EdgeProxy {
	GinkgoHelper()
	ep := &edgev1alpha1.EdgeProxy{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Name: name}, ep)).To(Succeed())
	return ep
}

func getRoute(key types.NamespacedName) *edgev1alpha1.TenantRoute {
	GinkgoHelper()
	tr := &edgev1alpha1.TenantRoute{}
	Expect(k8sClient.Get(ctx, key, tr)).To(Succeed())
	return tr
}

// haveCondition matches a conditions slice holding condition t with this status and reason, stamped
// with observedGeneration gen (any generation when gen is 0).
func haveCondition(t edgev1alpha1.ConditionType, s metav1.ConditionStatus, reason edgev1alpha1.ConditionReason, gen int64) OmegaMatcher {
	fields := And(
		HaveField("Type", string(t)),
		HaveField("Status", s),
		HaveField("Reason", string(reason)),
	)
	if gen != 0 {
		fields = And(fields, HaveField("ObservedGeneration", gen))
	}
	return ContainElement(fields)
}

func condition(conds []metav1.Condition, t edgev1alpha1.ConditionType) metav1.Condition {
	GinkgoHelper()
	c := meta.FindStatusCondition(conds, string(t))
	Expect(c).NotTo(BeNil(), "condition %s missing", t)
	return *c
}

// kstatusOf computes an object's status the way Flux, Argo CD and kubectl wait do.
func kstatusOf(obj client.Object, gvk string) status.Status {
	GinkgoHelper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(edgev1alpha1.GroupVersion.String())
	u.SetKind(gvk)
	res, err := status.Compute(u)
	Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// eventsAbout lists the events.k8s.io Events regarding one object.
func eventsAbout(namespace, name string) []eventsv1.Event {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// haveEvent matches Events of this type and reason whose note contains every substring.
func haveEvent(eventType, reason string, note ...string) OmegaMatcher {
	m := And(HaveField("Type", eventType), HaveField("Reason", reason))
	for _, n := range note {
		m = And(m, HaveField("Note", ContainSubstring(n)))
	}
	return ContainElement(m)
}

// selfSignedKeyPair returns a PEM certificate for hosts and its key.
func selfSignedKeyPair(hosts ...string) (certPEM, keyPEM []byte) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// keyOf is the key of a cluster-scoped object.
func keyOf(name string) types.NamespacedName { return types.NamespacedName{Name: name} }
