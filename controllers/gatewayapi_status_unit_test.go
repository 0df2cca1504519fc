package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func TestMergeParentStatuses(t *testing.T) {
	then := metav1.NewTime(time.Unix(1000, 0))
	ref := func(name string) gwapiv1.ParentReference {
		return gwapiv1.ParentReference{Group: ptr.To(gwapiv1.Group(gwapiv1.GroupName)), Kind: ptr.To(gwapiv1.Kind("Gateway")), Name: gwapiv1.ObjectName(name)}
	}
	cond := func(typ string, s metav1.ConditionStatus, reason string, at metav1.Time) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: reason, ObservedGeneration: 2, LastTransitionTime: at}
	}
	theirs := gwapiv1.RouteParentStatus{ParentRef: ref("edge"), ControllerName: "example.com/other",
		Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", then)}}
	current := []gwapiv1.RouteParentStatus{
		theirs,
		{ParentRef: ref("edge"), ControllerName: edgev1alpha1.GatewayControllerName, Conditions: []metav1.Condition{
			cond("Accepted", metav1.ConditionTrue, "Accepted", then),
			cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", then),
		}},
		{ParentRef: ref("gone"), ControllerName: edgev1alpha1.GatewayControllerName},
	}
	ours := []gwapiv1.RouteParentStatus{{ParentRef: ref("edge"), ControllerName: edgev1alpha1.GatewayControllerName, Conditions: []metav1.Condition{
		cond("Accepted", metav1.ConditionTrue, "Accepted", metav1.Time{}),
		cond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", metav1.Time{}),
	}}}
	got := mergeParentStatuses(current, ours)
	if len(got) != 2 {
		t.Fatalf("got %d entries, want theirs and ours: %+v", len(got), got)
	}
	if got[0].ControllerName != theirs.ControllerName || got[0].Conditions[0].LastTransitionTime != then {
		t.Errorf("the other controller's entry changed: %+v", got[0])
	}
	acc, res := got[1].Conditions[0], got[1].Conditions[1]
	if acc.LastTransitionTime != then {
		t.Errorf("unchanged Accepted lost its transition time: %v", acc.LastTransitionTime)
	}
	if res.Status != metav1.ConditionFalse || res.LastTransitionTime == then || res.LastTransitionTime.IsZero() {
		t.Errorf("ResolvedRefs flipped, want a new transition time: %+v", res)
	}
}

func TestMergeGatewayStatusKeepsTransitionTimes(t *testing.T) {
	then := metav1.NewTime(time.Unix(1000, 0))
	st := gwapiv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: then}},
		Listeners: []gwapiv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{
			{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", LastTransitionTime: then},
		}}},
	}
	want := gwapiv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: 3}},
		Listeners: []gwapiv1.ListenerStatus{{Name: "http", AttachedRoutes: 2, Conditions: []metav1.Condition{
			{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: 3},
		}}},
	}
	mergeGatewayStatus(&st, want)
	if c := st.Conditions[0]; c.LastTransitionTime != then || c.ObservedGeneration != 3 {
		t.Errorf("gateway condition: %+v", c)
	}
	l := st.Listeners[0]
	if c := l.Conditions[0]; c.LastTransitionTime != then || c.ObservedGeneration != 3 || l.AttachedRoutes != 2 || l.SupportedKinds == nil {
		t.Errorf("listener: %+v", l)
	}
}
