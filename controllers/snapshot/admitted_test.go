package snapshot

import (
	"fmt"
	"slices"
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

// Hand-written EndpointSlices add endpoints only to a selectorless Service of an EdgeProxy that opts
// in (spec.allowUnmanagedEndpointSlices): by default a tenant could point them at any Pod or node and
// have the proxies reach it on its behalf. Controller-managed slices always count; the egress guard
// refuses loopback and link-local addresses even under the opt-in.
func TestHandWrittenSlicesTrustedOnlyWhenAllowed(t *testing.T) {
	key := routing.BackendKey{Namespace: "shop", Name: "db", Port: 80}
	nn := types.NamespacedName{Namespace: "shop", Name: "db"}
	slice := func(managedBy string, addrs ...string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-" + managedBy, Labels: map[string]string{
				discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: managedBy}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("web"), Port: ptr.To(int32(8080))}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs}},
		}
	}
	hand := slice("someone-by-hand", "198.51.100.20", "127.0.0.1", "169.254.169.254")
	managed := slice(ManagedByEndpointSliceController, "198.51.100.30")
	for _, tc := range []struct {
		selector map[string]string
		svcType  corev1.ServiceType
		slices   []*discoveryv1.EndpointSlice
		allow    bool
		want     []string
	}{
		{nil, "", []*discoveryv1.EndpointSlice{hand}, false, nil},
		{map[string]string{"app": "db"}, "", []*discoveryv1.EndpointSlice{hand}, false, nil},
		{nil, "", []*discoveryv1.EndpointSlice{hand}, true, []string{"198.51.100.20:8080"}},
		// The controller writes a selector's slices; a hand-written one beside them is never taken.
		{map[string]string{"app": "db"}, "", []*discoveryv1.EndpointSlice{hand, managed}, true, []string{"198.51.100.30:8080"}},
		{map[string]string{"app": "db"}, "", []*discoveryv1.EndpointSlice{hand, managed}, false, []string{"198.51.100.30:8080"}},
		{nil, corev1.ServiceTypeExternalName, []*discoveryv1.EndpointSlice{hand}, true, nil},
		// A selectorless Service's slice is hand-written whatever its label claims (the API server
		// does not check managed-by): only the opt-in lets it count.
		{nil, "", []*discoveryv1.EndpointSlice{managed}, false, nil},
		{nil, "", []*discoveryv1.EndpointSlice{managed}, true, []string{"198.51.100.30:8080"}},
	} {
		slicesOf := map[types.NamespacedName][]*discoveryv1.EndpointSlice{nn: tc.slices}
		svc := map[types.NamespacedName]*corev1.Service{nn: {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: corev1.ServiceSpec{Selector: tc.selector, Type: tc.svcType, Ports: []corev1.ServicePort{{Name: "web", Port: 80}}}}}
		var got []string
		if be := backendEndpoints(key, svc, slicesOf, tc.allow); be != nil {
			for _, e := range be.Endpoints {
				got = append(got, fmt.Sprintf("%s:%d", e.Address, e.Port))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("selector %v, type %q, %d slices, allow %v: endpoints %v, want %v", tc.selector, tc.svcType, len(tc.slices), tc.allow, got, tc.want)
		}
	}
}

// ReadyEndpointCount, which ResolvedRefs uses, counts what the proxies are sent for the port: a
// slice whose ports do not carry the Service port's name gives none, nor do loopback addresses.
func TestReadyEndpointCountMatchesThePort(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "admin", Port: 9000}}}}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: ManagedByEndpointSliceController}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.20"}}, {Addresses: []string{"127.0.0.1"}}},
	}
	for _, tc := range []struct {
		port int32
		want int
	}{{80, 1}, {9000, 0}, {81, 0}} {
		if got := ReadyEndpointCount(svc, tc.port, []*discoveryv1.EndpointSlice{sl}, false); got != tc.want {
			t.Errorf("port %d: %d ready endpoints, want %d", tc.port, got, tc.want)
		}
	}
}
