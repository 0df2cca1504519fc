package snapshot

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func TestWithoutRefusedBackends(t *testing.T) {
	ref := func(ns, name string, weight *int32) gwapiv1.HTTPBackendRef {
		b := gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{Weight: weight,
			BackendObjectReference: gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(name), Port: ptr.To(gwapiv1.PortNumber(80))}}}
		if ns != "" {
			b.Namespace = ptr.To(gwapiv1.Namespace(ns))
		}
		return b
	}
	tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r"},
		Spec: edgev1alpha1.TenantRouteSpec{Rules: []edgev1alpha1.TenantRouteRule{
			{BackendRefs: []gwapiv1.HTTPBackendRef{ref("", "own", nil)}},
			{BackendRefs: []gwapiv1.HTTPBackendRef{ref("shared", "api", nil)}},
			{BackendRefs: []gwapiv1.HTTPBackendRef{ref("app", "own", nil), ref("shared", "api", nil)}},
			{BackendRefs: []gwapiv1.HTTPBackendRef{ref("", "own", ptr.To(int32(0))), ref("shared", "api", ptr.To(int32(1)))}},
		}}}
	if !refusedBackends(tr) {
		t.Fatal("a cross-namespace backend without ResolvedRefs=True is not refused")
	}
	got := withoutRefusedBackends(tr)
	want := []int{1, 0, 1, 0}
	for i, r := range got {
		if len(r.BackendRefs) != want[i] {
			t.Errorf("rule %d: %d backends, want %d", i, len(r.BackendRefs), want[i])
		}
	}
	if len(tr.Spec.Rules[1].BackendRefs) != 1 || len(tr.Spec.Rules[2].BackendRefs) != 2 {
		t.Error("the route itself was modified")
	}
	tr.Generation = 1
	tr.Status.Conditions = []metav1.Condition{{Type: string(edgev1alpha1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue, ObservedGeneration: 1}}
	if refusedBackends(tr) {
		t.Error("refused although ResolvedRefs=True")
	}
}
