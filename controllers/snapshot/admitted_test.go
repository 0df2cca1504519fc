package snapshot

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

func TestLastAdmittedBridgesReadmission(t *testing.T) {
	route := func(gen, acceptedGen int64, status metav1.ConditionStatus, path string) edgev1alpha1.TenantRoute {
		tr := edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", Generation: gen,
			ResourceVersion: path}}
		tr.Spec.Hostnames = []edgev1alpha1.Hostname{edgev1alpha1.Hostname(path)}
		if acceptedGen > 0 {
			tr.Status.Conditions = []metav1.Condition{{Type: string(edgev1alpha1.RouteConditionAccepted), Status: status,
				ObservedGeneration: acceptedGen, Reason: "r"}}
		}
		return tr
	}
	var l lastAdmitted
	served := func(routes ...edgev1alpha1.TenantRoute) []string {
		var names []string
		for _, tr := range l.resolve("ep", routes) {
			names = append(names, string(tr.Spec.Hostnames[0]))
		}
		return names
	}
	check := func(step string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) || len(got) > 0 && got[0] != want[0] {
			t.Errorf("%s: served %v, want %v", step, got, want)
		}
	}
	check("never admitted", served(route(1, 0, "", "v1")))
	check("admitted", served(route(1, 1, metav1.ConditionTrue, "v1")), "v1")
	check("new generation, not yet judged: the last admitted one", served(route(2, 1, metav1.ConditionTrue, "v2")), "v1")
	check("new generation admitted", served(route(2, 2, metav1.ConditionTrue, "v2")), "v2")
	check("third generation pending", served(route(3, 2, metav1.ConditionTrue, "v3")), "v2")
	check("third generation refused: dropped", served(route(3, 3, metav1.ConditionFalse, "v3")))
	check("fourth pending after a refusal: nothing remembered", served(route(4, 3, metav1.ConditionFalse, "v4")))
	check("admitted again", served(route(4, 4, metav1.ConditionTrue, "v4")), "v4")
	check("route gone", served())
	check("pending after it was gone: nothing remembered", served(route(5, 4, metav1.ConditionTrue, "v5")))
}

func TestRefsResolvedCountsNoReadyEndpoints(t *testing.T) {
	for _, tc := range []struct {
		status metav1.ConditionStatus
		reason edgev1alpha1.ConditionReason
		gen    int64
		want   bool
	}{
		{metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, 2, true},
		// Given only when every reference resolved: a granted cross-namespace backend keeps travelling.
		{metav1.ConditionFalse, edgev1alpha1.RouteReasonNoReadyEndpoints, 2, true},
		{metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted, 2, false},
		{metav1.ConditionFalse, edgev1alpha1.RouteReasonBackendNotFound, 2, false},
		{metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, 1, false}, // an older generation's verdict
	} {
		tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
		tr.Status.Conditions = []metav1.Condition{{Type: string(edgev1alpha1.RouteConditionResolvedRefs), Status: tc.status,
			Reason: string(tc.reason), ObservedGeneration: tc.gen}}
		if got := refsResolved(tr); got != tc.want {
			t.Errorf("ResolvedRefs %s/%s gen %d: refsResolved = %v, want %v", tc.status, tc.reason, tc.gen, got, tc.want)
		}
	}
}

// Hand-written EndpointSlices never add endpoints, with or without a selector on the Service: a
// tenant could point them at any Pod or node and have the proxies reach it on its behalf.
func TestHandWrittenSlicesAreNotTrusted(t *testing.T) {
	key := routing.BackendKey{Namespace: "shop", Name: "db", Port: 80}
	nn := types.NamespacedName{Namespace: "shop", Name: "db"}
	hand := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: "someone-by-hand"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("web"), Port: ptr.To(int32(8080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.20"}}},
	}
	slicesOf := map[types.NamespacedName][]*discoveryv1.EndpointSlice{nn: {hand}}
	for _, selector := range []map[string]string{nil, {"app": "db"}} {
		svc := map[types.NamespacedName]*corev1.Service{nn: {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Name: "web", Port: 80}}}}}
		if got := backendEndpoints(key, svc, slicesOf); got != nil {
			t.Errorf("Service with selector %v took hand-written endpoints: %v", selector, got)
		}
	}
}
