package snapshot

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

func route(ns, name, ep string, gen int64, accepted bool, backends ...gwapiv1.HTTPBackendRef) edgev1alpha1.TenantRoute {
	st := metav1.ConditionFalse
	if accepted {
		st = metav1.ConditionTrue
	}
	return edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: gen},
		Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: ep, Hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(name + ".example.com")},
			Rules: []edgev1alpha1.TenantRouteRule{{BackendRefs: backends}}},
		Status: edgev1alpha1.TenantRouteStatus{Conditions: []metav1.Condition{
			{Type: "Accepted", Status: st, ObservedGeneration: gen, Reason: "Accepted"}}},
	}
}

func backendRef(ns, svc string, port int32) gwapiv1.HTTPBackendRef {
	var nsp *gwapiv1.Namespace
	if ns != "" {
		nsp = ptr.To(gwapiv1.Namespace(ns))
	}
	return gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
		Name: gwapiv1.ObjectName(svc), Namespace: nsp, Port: ptr.To(gwapiv1.PortNumber(port))}}}
}

func slice(ns, svc, managedBy, portName string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: managedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port)}},
		Endpoints:   eps,
	}
}

func ep(addr string, ready, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Terminating: ptr.To(terminating)}}
}

func input() Input {
	svc := func(ns, name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "web", Port: 80}}}}
	}
	return Input{
		EdgeProxy: &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: edgev1alpha1.EdgeProxySpec{ProxyNamespace: "acme-edge"}},
		Routes: []edgev1alpha1.TenantRoute{
			route("shop", "a", "acme", 2, true, backendRef("", "web", 80)),
			route("shop", "stale", "acme", 3, true, backendRef("", "stale", 80)),
			route("other", "b", "globex", 1, true, backendRef("", "secret", 80)),
			route("shop", "refused", "acme", 1, false, backendRef("", "refused", 80)),
			route("shop", "cross", "acme", 1, true, backendRef("payments", "api", 80)),
		},
		Services: map[types.NamespacedName]*corev1.Service{
			{Namespace: "shop", Name: "web"}:     svc("shop", "web"),
			{Namespace: "payments", Name: "api"}: svc("payments", "api"),
		},
		Slices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{
			{Namespace: "shop", Name: "web"}: {
				slice("shop", "web", ManagedByEndpointSliceController, "web", 8080,
					ep("198.51.100.1", true, false), ep("198.51.100.2", false, false), ep("198.51.100.3", true, true),
					ep("169.254.169.254", true, false), ep("127.0.0.1", true, false)),
				slice("shop", "web", "someone-by-hand", "web", 8080, ep("198.51.100.9", true, false)),
				slice("shop", "web", ManagedByEndpointSliceController, "other-port", 9090, ep("198.51.100.7", true, false)),
			},
			{Namespace: "payments", Name: "api"}: {slice("payments", "api", ManagedByEndpointSliceController, "web", 8080, ep("198.51.100.5", true, false))},
		},
		Now: time.Unix(1_700_000_000, 0),
	}
}

func TestBuildSelectsAdmittedRoutesAndReadyEndpoints(t *testing.T) {
	in := input()
	in.Routes[1].Status.Conditions[0].ObservedGeneration = 2 // Accepted describes an older generation
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[types.NamespacedName]int64{{Namespace: "shop", Name: "a"}: 2, {Namespace: "shop", Name: "cross"}: 1}
	if len(s.Routes) != len(want) {
		t.Fatalf("routes = %v, want %v", s.Routes, want)
	}
	for k, g := range want {
		if s.Routes[k].Generation != g {
			t.Errorf("route %s generation %d, want %d", k, s.Routes[k].Generation, g)
		}
	}
	web := s.Endpoints[routing.BackendKey{Namespace: "shop", Name: "web", Port: 80}]
	if web == nil || len(web.Endpoints) != 1 || web.Endpoints[0].Address != "198.51.100.1" || web.Endpoints[0].Port != 8080 {
		t.Fatalf("shop/web endpoints = %v, want only 198.51.100.1:8080 (ready, not terminating, controller-managed, port by name, no loopback/link-local)", web)
	}
	if _, ok := s.Endpoints[routing.BackendKey{Namespace: "payments", Name: "api", Port: 80}]; ok {
		t.Error("cross-namespace backend sent although ResolvedRefs is not True")
	}
	if len(s.Endpoints) != 1 {
		t.Errorf("endpoints of %d backends, want 1: %v", len(s.Endpoints), s.Endpoints)
	}
	// A cross-namespace backend permitted by admission (ResolvedRefs=True) is sent.
	in.Routes[4].Status.Conditions = append(in.Routes[4].Status.Conditions,
		metav1.Condition{Type: "ResolvedRefs", Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "ResolvedRefs"})
	s2, _ := Build(in)
	if _, ok := s2.Endpoints[routing.BackendKey{Namespace: "payments", Name: "api", Port: 80}]; !ok {
		t.Error("permitted cross-namespace backend missing")
	}
	// The refused reference itself is not sent either (its rule answers 500), so granting it is a
	// new version.
	if s2.Version == s.Version {
		t.Error("version unchanged although the cross-namespace backend was granted")
	}
}

func TestBuildVersionIsDeterministicAndTracksConfig(t *testing.T) {
	a, _ := Build(input())
	in := input()
	in.Routes[0], in.Routes[4] = in.Routes[4], in.Routes[0] // order does not matter
	b, _ := Build(in)
	if a.Version != b.Version {
		t.Fatalf("versions differ for the same input: %s %s", a.Version, b.Version)
	}
	in.Slices = nil
	c, _ := Build(in)
	if c.Version != a.Version || len(c.Endpoints) != 0 {
		t.Fatalf("endpoint-only change: version %s → %s, endpoints %v", a.Version, c.Version, c.Endpoints)
	}
	in.Routes[0].Generation, in.Routes[0].Status.Conditions[0].ObservedGeneration = 9, 9
	d, _ := Build(in)
	if d.Version == a.Version {
		t.Fatal("route change kept the version")
	}
	up, rm := DiffEndpoints(a.Endpoints, c.Endpoints)
	if len(up) != 0 || len(rm) != 1 || rm[0].Service != "web" {
		t.Fatalf("diff = %v / %v", up, rm)
	}
}

func TestTrackerProgrammedWhenEveryReadyReplicaAcked(t *testing.T) {
	tr := NewTracker()
	key := types.NamespacedName{Namespace: "shop", Name: "a"}
	s1 := &Snapshot{EdgeProxy: "acme", Version: "v1", Routes: map[types.NamespacedName]RouteRevision{key: rev(1)}}
	tr.Published(s1)
	if st := tr.RouteState("acme", key, rev(1)); st.Reason != edgev1alpha1.RouteReasonPending || st.Message != msgNoReplica {
		t.Fatalf("no replica: %+v", st)
	}
	r1, r2 := tr.Connected("acme", "p1"), tr.Connected("acme", "p2")
	tr.Acked("acme", r1, "v1")
	if st := tr.RouteState("acme", key, rev(1)); st.Status != metav1.ConditionTrue {
		t.Fatalf("one ready replica acked, the other not ready yet: %+v", st)
	}
	s2 := &Snapshot{EdgeProxy: "acme", Version: "v2", Routes: map[types.NamespacedName]RouteRevision{key: rev(2)}}
	tr.Published(s2)
	tr.Acked("acme", r2, "v2")
	if st := tr.RouteState("acme", key, rev(2)); st.Status != metav1.ConditionFalse || st.Reason != edgev1alpha1.RouteReasonPending {
		t.Fatalf("p1 still on v1: %+v", st)
	}
	tr.Nacked("acme", r1, "v2", "bad")
	if st := tr.RouteState("acme", key, rev(2)); st.Reason != edgev1alpha1.RouteReasonRejected {
		t.Fatalf("after NACK: %+v", st)
	}
	tr.Acked("acme", r1, "v2")
	st := tr.RouteState("acme", key, rev(2))
	if st.Status != metav1.ConditionTrue || st.Version != "v2" {
		t.Fatalf("both acked v2: %+v", st)
	}
	tr.Disconnected("acme", r1)
	tr.Disconnected("acme", r2)
	if st := tr.RouteState("acme", key, rev(2)); st.Status != metav1.ConditionFalse {
		t.Fatalf("no replica left: %+v", st)
	}
}
