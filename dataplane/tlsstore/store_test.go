package tlsstore_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
)

// hosts is a Resolver for tests: exact names, then "*.suffix" entries for one label.
type hosts map[string]string

func (h hosts) TLSSecretFor(host string) (routing.TLS, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name, ok := h[host]
	if !ok {
		if i := strings.IndexByte(host, '.'); i > 0 {
			name, ok = h["*"+host[i:]]
		}
	}
	return routing.TLS{Secret: types.NamespacedName{Namespace: "ns", Name: name}}, ok
}

func TestCertificateSelection(t *testing.T) {
	ca := dpt.NewCA(t)
	_, _, a := ca.Issue(t, "a.example")
	_, _, w := ca.Issue(t, "*.w.example")
	s := tlsstore.New()
	if c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example"}); c != nil {
		t.Fatal("certificate before Set")
	}
	s.Set(hosts{"a.example": "a", "*.w.example": "w", "nokey.example": "missing"}, tlsstore.Keypairs{
		{Namespace: "ns", Name: "a"}: a, {Namespace: "ns", Name: "w"}: w,
	})
	for sni, want := range map[string]*tls.Certificate{
		"a.example": a, "A.EXAMPLE": a, "x.w.example": w, "x.y.w.example": nil, "b.example": nil,
		"nokey.example": nil, "": nil,
	} {
		got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil || got != want {
			t.Errorf("SNI %q: got %p %v, want %p", sni, got, err, want)
		}
	}
	cfg := s.ServerConfig(true)
	if cfg.MinVersion != tls.VersionTLS12 || strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" || len(cfg.Certificates) != 0 {
		t.Errorf("server config %+v", cfg)
	}
}

func TestMisdirected(t *testing.T) {
	r := hosts{"a.example": "a", "b.example": "b", "s1.example": "shared", "s2.example": "shared", "*.w.example": "w"}
	for _, tc := range []struct {
		sni, host string
		want      bool
	}{
		{"a.example", "a.example", false},
		{"a.example", "A.example:8443", false},
		{"a.example", "a.example.", false},
		{"a.example", "b.example", true},
		{"a.example", "plain.example", true},
		{"s1.example", "s2.example:443", false},
		{"x.w.example", "y.w.example", false},
		{"x.w.example", "a.example", true},
		{"a.example", "[::1]:443", true},
	} {
		if got := tlsstore.Misdirected(r, tc.sni, tc.host, false); got != tc.want {
			t.Errorf("Misdirected(%q, %q) = %v, want %v", tc.sni, tc.host, got, tc.want)
		}
	}
}

// A Gateway HTTPS listener without hostname makes its certificate the listener default: served for
// every name no route's TLS covers (and without SNI), never instead of a route's own certificate.
func TestListenerDefault(t *testing.T) {
	ca := dpt.NewCA(t)
	_, _, a := ca.Issue(t, "a.example")
	_, _, d := ca.Issue(t, "listener.example")
	s := tlsstore.New()
	r := hosts{"a.example": "a", "nokey.example": "missing"}
	s.Set(r, tlsstore.Keypairs{{Namespace: "ns", Name: "a"}: a})
	if s.HasDefault() {
		t.Fatal("a default without one set")
	}
	s.Set(r, tlsstore.Keypairs{{Namespace: "ns", Name: "a"}: a, tlsstore.DefaultKeypair: d})
	if !s.HasDefault() {
		t.Fatal("no default after Set")
	}
	for sni, want := range map[string]*tls.Certificate{
		"a.example": a, "unknown.example": d, "": d,
		"nokey.example": nil, // covered by a TLS block whose Secret is missing: that block's business
	} {
		if got, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni}); got != want {
			t.Errorf("SNI %q: got %p, want %p", sni, got, want)
		}
	}
	for _, tc := range []struct {
		sni, host string
		want      bool
	}{
		{"unknown.example", "other-unknown.example", false}, // both under the default
		{"unknown.example", "a.example", true},              // a.example has its own certificate
		{"a.example", "unknown.example", true},
		{"", "a.example", true},        // no SNI: the default was presented, a.example has its own
		{"", "unknown.example", false}, // no SNI, a name under the default
	} {
		if got := tlsstore.Misdirected(r, tc.sni, tc.host, true); got != tc.want {
			t.Errorf("Misdirected(%q, %q) with a default = %v, want %v", tc.sni, tc.host, got, tc.want)
		}
	}
}

func TestParseKeypair(t *testing.T) {
	ca := dpt.NewCA(t)
	crt, key, _ := ca.Issue(t, "a.example")
	now := time.Now()
	c, err := tlsstore.ParseKeypair(crt, key, now)
	if err != nil || c.Leaf == nil || c.Leaf.DNSNames[0] != "a.example" {
		t.Fatalf("valid pair: %v", err)
	}
	if _, err := tlsstore.ParseKeypair(crt, key, now.Add(48*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired pair: %v", err)
	}
	if _, err := tlsstore.ParseKeypair(crt, key, now.Add(-48*time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Errorf("not-yet-valid pair: %v", err)
	}
	_, otherKey, _ := ca.Issue(t, "b.example")
	if _, err := tlsstore.ParseKeypair(crt, otherKey, now); err == nil {
		t.Error("mismatched key accepted")
	}
	if _, err := tlsstore.ParseKeypair(nil, key, now); err == nil {
		t.Error("missing certificate accepted")
	}
}
