package controllers

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-dev/portico/internal/manifest"
	"github.com/portico-dev/portico/internal/testenv"
)

// These are `kubectl apply --dry-run=server -f DIR` against the real API server: every object must
// pass the installed schemas (Portico's, the Gateway API's, cert-manager's).
func ensureNamespace(name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

func dryRunApplyDir(dir string) {
	objs, err := manifest.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	Expect(objs).NotTo(BeEmpty())
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			ensureNamespace(ns)
		} else if mapping, err := k8sClient.RESTMapper().RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version); err == nil &&
			mapping.Scope.Name() == "namespace" {
			o.SetNamespace("default")
		}
		Expect(k8sClient.Create(ctx, o.Unstructured, client.DryRunAll)).To(Succeed(), "%s #%d %s/%s", o.File, o.Index, o.GetKind(), o.GetName())
	}
}

var _ = Describe("Shipped manifests", func() {
	root := testenv.RepoRoot()

	It("accepts config/samples", func() {
		dryRunApplyDir(filepath.Join(root, "config", "samples"))
	})

	It("accepts the source documents' examples (Ingress, Gateway, HTTPRoute)", func() {
		dryRunApplyDir(filepath.Join(root, "test", "testdata", "source-examples"))
	})

	It("rejects an EdgeProxy with an invalid hostname, naming the field", func() {
		objs, err := manifest.ReadFile(filepath.Join(root, "controllers", "testdata", "invalid-hostname-edgeproxy.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(objs).To(HaveLen(1))
		err = k8sClient.Create(ctx, objs[0].Unstructured, client.DryRunAll)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
		Expect(err.Error()).To(And(ContainSubstring("spec.hostnames[0]"), ContainSubstring("team_a.example.com")))
	})
})
