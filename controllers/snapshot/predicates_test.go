package snapshot

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func TestRouteInputChanged(t *testing.T) {
	base := route("shop", "a", "acme", 2, true)
	base.Status.Conditions = append(base.Status.Conditions,
		metav1.Condition{Type: "ResolvedRefs", Status: metav1.ConditionTrue, ObservedGeneration: 2, Reason: "ResolvedRefs"})
	change := func(f func(*edgev1alpha1.TenantRoute)) bool {
		cur := base.DeepCopy()
		f(cur)
		return routeInputChanged.Update(event.UpdateEvent{ObjectOld: base.DeepCopy(), ObjectNew: cur})
	}
	for name, tc := range map[string]struct {
		f    func(*edgev1alpha1.TenantRoute)
		want bool
	}{
		"Programmed written": {func(tr *edgev1alpha1.TenantRoute) {
			tr.Status.Conditions = append(tr.Status.Conditions, metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, ObservedGeneration: 2})
			tr.Status.ProgrammedVersion = "v1-x"
		}, false},
		"labels": {func(tr *edgev1alpha1.TenantRoute) { tr.Labels = map[string]string{"a": "b"} }, false},
		"spec":   {func(tr *edgev1alpha1.TenantRoute) { tr.Generation = 3 }, true},
		"new generation refused": {func(tr *edgev1alpha1.TenantRoute) {
			tr.Status.Conditions[0].ObservedGeneration, tr.Status.Conditions[0].Status = 3, metav1.ConditionFalse
		}, true},
		"ResolvedRefs":        {func(tr *edgev1alpha1.TenantRoute) { tr.Status.Conditions[1].Status = metav1.ConditionFalse }, true},
		"ResolvedRefs reason": {func(tr *edgev1alpha1.TenantRoute) { tr.Status.Conditions[1].Reason = "NoReadyEndpoints" }, true},
		"other EdgeProxy":     {func(tr *edgev1alpha1.TenantRoute) { tr.Spec.EdgeProxy = "globex" }, true},
		"being deleted":       {func(tr *edgev1alpha1.TenantRoute) { now := metav1.Now(); tr.DeletionTimestamp = &now }, true},
	} {
		if got := change(tc.f); got != tc.want {
			t.Errorf("%s: rebuild %v, want %v", name, got, tc.want)
		}
	}
}
