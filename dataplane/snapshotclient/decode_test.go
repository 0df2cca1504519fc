package snapshotclient

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
)

func valid(t *testing.T) *snapshotv1.Snapshot {
	ep, _ := json.Marshal(edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}})
	return &snapshotv1.Snapshot{Version: "v1-x", EdgeProxy: ep,
		Endpoints: []*snapshotv1.BackendEndpoints{{Backend: &snapshotv1.BackendKey{Namespace: "shop", Service: "web", Port: 80},
			Endpoints: []*snapshotv1.Endpoint{{Address: "198.51.100.1", Port: 8080, Ready: true}, {Address: "198.51.100.2", Port: 8080}}}}}
}

func TestDecode(t *testing.T) {
	d, err := Decode(valid(t), proxy.Settings{TrustedHops: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d.Settings.Tenant != "acme" || d.Settings.TrustedHops != 2 || d.Table.Version() != "v1-x" {
		t.Errorf("settings %+v, table version %q", d.Settings, d.Table.Version())
	}
	if eps := d.Endpoints[routing.BackendKey{Namespace: "shop", Name: "web", Port: 80}]; len(eps) != 1 {
		t.Errorf("endpoints = %v, want the ready one", eps)
	}
	for name, mutate := range map[string]func(*snapshotv1.Snapshot){
		"no version": func(s *snapshotv1.Snapshot) { s.Version = "" },
		"unknown field": func(s *snapshotv1.Snapshot) {
			s.EdgeProxy = []byte(`{"metadata":{"name":"acme"},"spec":{"fromTheFuture":1}}`)
		},
		"route not JSON": func(s *snapshotv1.Snapshot) { s.TenantRoutes = [][]byte{[]byte("{")} },
		"bad keypair": func(s *snapshotv1.Snapshot) {
			s.TlsKeypairs = []*snapshotv1.TLSKeypair{{Namespace: "shop", Name: "x", CertPem: []byte("x"), KeyPem: []byte("y")}}
		},
		"bad endpoint": func(s *snapshotv1.Snapshot) { s.Endpoints[0].Endpoints[0].Address = "nope" },
		"route invalid": func(s *snapshotv1.Snapshot) {
			s.TenantRoutes = [][]byte{[]byte(`{"metadata":{"namespace":"shop","name":"r"},"spec":{"edgeProxy":"acme","rules":[{"matches":[{"path":{"type":"RegularExpression","value":"("}}]}]}}`)}
		},
	} {
		s := valid(t)
		mutate(s)
		if _, err := Decode(s, proxy.Settings{}, time.Now()); err == nil {
			t.Errorf("%s: decoded, want an error (NACK)", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty reason", name)
		}
	}
}

func TestDecodeReusesUnchangedRoutes(t *testing.T) {
	route := func(name, host string) []byte {
		b, err := json.Marshal(edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: "acme", Hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(host)},
				Rules: []edgev1alpha1.TenantRouteRule{{}}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var cache RouteCache
	s := valid(t)
	s.TenantRoutes = [][]byte{route("a", "a.example.com"), route("b", "b.example.com")}
	d1, err := decode(s, proxy.Settings{}, time.Now(), &cache)
	if err != nil {
		t.Fatal(err)
	}
	s2 := valid(t)
	s2.Version = "v1-y"
	s2.TenantRoutes = [][]byte{route("a", "a.example.com"), route("b", "b2.example.com"), route("c", "c.example.com")}
	d2, err := decode(s2, proxy.Settings{}, time.Now(), &cache)
	if err != nil {
		t.Fatal(err)
	}
	if &d1.Routes[0].Spec.Hostnames[0] != &d2.Routes[0].Spec.Hostnames[0] {
		t.Error("unchanged route a decoded again")
	}
	if got := string(d2.Routes[1].Spec.Hostnames[0]); got != "b2.example.com" {
		t.Errorf("changed route b: %s", got)
	}
	for _, h := range []string{"a.example.com", "b2.example.com", "c.example.com"} {
		if _, res := d2.Table.Lookup(&routing.Request{Host: h, Path: "/"}); res != routing.Matched {
			t.Errorf("%s: %v", h, res)
		}
	}
	if len(cache.m) != 3 {
		t.Errorf("cache holds %d routes, want the last snapshot's 3", len(cache.m))
	}
	// A route that does not decode refuses the snapshot, as without the cache.
	s2.TenantRoutes = append(s2.TenantRoutes, []byte(`{"metadata":{"name":"x"},"spec":{"unknown":1}}`))
	if _, err := decode(s2, proxy.Settings{}, time.Now(), &cache); err == nil {
		t.Error("unknown field decoded")
	}
}
