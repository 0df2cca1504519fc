package admission

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// A missing Secret that a cert-manager Certificate will write does not fail ResolvedRefs; any
// other missing Secret still does.
func TestResolveRefsPendingSecret(t *testing.T) {
	tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r"}}
	tr.Spec.Hostnames = []edgev1alpha1.Hostname{"a.example.com"}
	tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: "issued"}, {SecretName: "missing"}}
	refs := Refs{PendingSecrets: map[types.NamespacedName]string{{Namespace: "app", Name: "issued"}: "Certificate portico-issued"}}
	v := ResolveRefs(tr, refs)
	if v.OK || v.Reason != edgev1alpha1.RouteReasonSecretNotFound || strings.Contains(v.Message, `"issued"`) {
		t.Fatalf("one pending, one missing: %+v", v)
	}
	tr.Spec.TLS = tr.Spec.TLS[:1]
	v = ResolveRefs(tr, refs)
	if !v.OK || !strings.Contains(v.Message, "not issued yet") || !strings.Contains(v.Message, "portico-issued") {
		t.Fatalf("pending only: %+v", v)
	}
}
