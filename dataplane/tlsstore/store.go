// Package tlsstore terminates TLS with the tenants' certificates: SNI selects the key pair, there
// is no default certificate unless a Gateway's HTTPS listener without hostname asks for one (its
// certificate then answers every name no route's TLS covers), and the whole set is swapped
// atomically so rotation never drops a connection (established connections keep the certificate
// they negotiated).
package tlsstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/dataplane/routing"
)

// Resolver maps a host name to the TLS block serving it: exact names first, then one-label
// wildcards, the oldest route winning (*routing.Table implements it). Host matching rules live in
// one place, the routing table, so the certificate chosen for a name and the route serving it can
// never disagree.
type Resolver interface {
	TLSSecretFor(host string) (routing.TLS, bool)
}

// Keypairs are parsed kubernetes.io/tls Secrets by namespace/name. The entry under DefaultKeypair,
// when present, is the listener default: the certificate of a Gateway HTTPS listener that names no
// hostname, served for SNI names (and handshakes without SNI) that no TLS block covers.
type Keypairs map[types.NamespacedName]*tls.Certificate

// DefaultKeypair is the key of the listener default in Keypairs.
var DefaultKeypair = types.NamespacedName{}

type keyring struct {
	hosts Resolver
	pairs Keypairs
}

// Store holds the current resolver and key pairs.
type Store struct {
	cur atomic.Pointer[keyring]
}

// New returns an empty store: every handshake fails until Set is called.
func New() *Store { return &Store{} }

// Set swaps in a new resolver (usually the new routing table) and key pairs, together.
func (s *Store) Set(hosts Resolver, pairs Keypairs) {
	s.cur.Store(&keyring{hosts: hosts, pairs: pairs})
}

// Certificate returns the key pair for an SNI name, if any.
func (s *Store) Certificate(serverName string) (*tls.Certificate, bool) {
	k := s.cur.Load()
	if k == nil || k.hosts == nil {
		return nil, false
	}
	if serverName == "" {
		c := k.pairs[DefaultKeypair]
		return c, c != nil
	}
	return k.pairs.lookup(k.hosts, serverName)
}

// lookup finds the key pair for a name: the TLS block covering it, else the listener default.
func (p Keypairs) lookup(hosts Resolver, serverName string) (*tls.Certificate, bool) {
	if t, ok := hosts.TLSSecretFor(serverName); ok {
		c := p[t.Secret]
		return c, c != nil
	}
	c := p[DefaultKeypair]
	return c, c != nil
}

// GetCertificate is a tls.Config.GetCertificate. An unknown (or absent) SNI gets no certificate,
// which crypto/tls turns into an unrecognized_name alert: a client never sees another tenant's
// certificate by guessing. The one exception is the listener default, which its Gateway's owner
// asked to serve for every name.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, _ := s.Certificate(hello.ServerName)
	return c, nil
}

// ServerConfig is the listener's TLS configuration: TLS 1.2 minimum, Go's default cipher suites,
// ALPN h2 then http/1.1 (h2 only when enableH2).
func (s *Store) ServerConfig(enableH2 bool) *tls.Config {
	protos := []string{"http/1.1"}
	if enableH2 {
		protos = []string{"h2", "http/1.1"}
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: s.GetCertificate,
	}
}

// Misdirected reports whether a request for host must be refused (421) on a connection whose
// SNI was sni: the host is not served under the certificate that SNI selected. HTTP/2 clients
// reuse a connection for every name its certificate covers, and HTTP/1.1 clients can send any
// Host; either way a request must not reach a vhost the handshake did not vouch for.
//
// With a listener default (hasDefault), names no TLS block covers are served under it: a request
// for such a name on a connection that negotiated the default is not misdirected, while one for a
// name with its own certificate is.
func Misdirected(hosts Resolver, sni, host string, hasDefault bool) bool {
	h := hostOnly(host)
	if sni == "" {
		// Without SNI only the listener default can have been presented: a host with a
		// certificate of its own is not served under it.
		if !hasDefault {
			return false
		}
		_, own := hosts.TLSSecretFor(h)
		return own
	}
	if strings.EqualFold(strings.TrimSuffix(h, "."), strings.TrimSuffix(sni, ".")) {
		return false
	}
	a, okA := hosts.TLSSecretFor(sni)
	b, okB := hosts.TLSSecretFor(h)
	if hasDefault && !okA && !okB {
		return false // both under the listener default
	}
	return !(okA && okB && a.Secret == b.Secret)
}

// HasDefault reports whether the current key pairs hold a listener default.
func (s *Store) HasDefault() bool {
	k := s.cur.Load()
	return k != nil && k.pairs[DefaultKeypair] != nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// ParseKeypair parses the tls.crt and tls.key of a kubernetes.io/tls Secret. It refuses a pair
// whose leaf has expired or is not yet valid at now, so that a broken Secret is reported where it
// is loaded instead of failing every handshake later.
func ParseKeypair(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("tls.crt and tls.key are both required")
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	switch {
	case now.After(c.Leaf.NotAfter):
		return nil, fmt.Errorf("certificate expired at %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Leaf.NotBefore):
		return nil, fmt.Errorf("certificate not valid before %s", c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}
