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
