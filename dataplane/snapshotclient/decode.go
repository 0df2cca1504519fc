package snapshotclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Decoded is a snapshot validated and compiled, ready to go live.
type Decoded struct {
	Version   string
	EdgeProxy *edgev1alpha1.EdgeProxy
	Routes    []edgev1alpha1.TenantRoute
	Table     *routing.Table
	Keypairs  tlsstore.Keypairs
	Settings  proxy.Settings
	Endpoints upstream.Endpoints
}

// Decode validates a snapshot completely: it is applied whole or refused whole (NACK). Unknown
// fields in the EdgeProxy or TenantRoute JSON are refused too: they mean an operator newer than
// this proxy, whose routes this proxy would serve differently.
func Decode(s *snapshotv1.Snapshot, base proxy.Settings, now time.Time) (*Decoded, error) {
	return decode(s, base, now, nil)
}

// RouteCache keeps the routes of the last snapshot decoded by their JSON. Consecutive snapshots
// differ in a few routes, so a proxy decodes only those again (the JSON is the route: its
// identity, generation, age and spec, encoded deterministically by the operator). Not safe for
// concurrent use; the zero value is empty.
type RouteCache struct {
	m map[string]*edgev1alpha1.TenantRoute
}

// decode is Decode with an optional route cache. Routes served from the cache share their
// contents with the previous snapshot's: nothing modifies a decoded route.
func decode(s *snapshotv1.Snapshot, base proxy.Settings, now time.Time, cache *RouteCache) (*Decoded, error) {
	if s.GetVersion() == "" {
		return nil, errors.New("snapshot without version")
	}
	d := &Decoded{Version: s.Version, EdgeProxy: &edgev1alpha1.EdgeProxy{}, Keypairs: tlsstore.Keypairs{}}
	if err := strictJSON(s.EdgeProxy, d.EdgeProxy); err != nil {
		return nil, fmt.Errorf("edge_proxy: %w", err)
	}
	defaults, settings := settingsFor(d.EdgeProxy, base)
	d.Settings = settings
	var seen map[string]*edgev1alpha1.TenantRoute
	if cache != nil {
		seen = make(map[string]*edgev1alpha1.TenantRoute, len(s.TenantRoutes))
	}
	d.Routes = make([]edgev1alpha1.TenantRoute, 0, len(s.TenantRoutes))
	for i, b := range s.TenantRoutes {
		if cache != nil {
			if tr, ok := cache.m[string(b)]; ok {
				seen[string(b)] = tr
				d.Routes = append(d.Routes, *tr)
				continue
			}
		}
		tr := &edgev1alpha1.TenantRoute{}
		if err := strictJSON(b, tr); err != nil {
			return nil, fmt.Errorf("tenant_routes[%d]: %w", i, err)
		}
		if seen != nil {
			seen[string(b)] = tr
		}
		d.Routes = append(d.Routes, *tr)
	}
	if cache != nil {
		// Routes that decoded stay known even when the snapshot is refused later on: the next
		// snapshot usually fixes one route and keeps the others.
		cache.m = seen
	}
	table, rerrs := routing.Build(routing.Snapshot{Version: s.Version, Defaults: defaults, Routes: d.Routes})
	if len(rerrs) > 0 {
		var msgs []string
		for _, e := range rerrs {
			msgs = append(msgs, fmt.Sprintf("TenantRoute %s/%s: %v", e.Namespace, e.Name, e.Errors.ToAggregate()))
		}
		return nil, fmt.Errorf("routes do not compile: %s", strings.Join(msgs, "; "))
	}
	d.Table = table
	for _, kp := range s.TlsKeypairs {
		cert, err := tlsstore.ParseKeypair(kp.CertPem, kp.KeyPem, now)
		if err != nil {
			return nil, fmt.Errorf("tls key pair %s/%s: %w", kp.Namespace, kp.Name, err)
		}
		if kp.ListenerDefault {
			// A Gateway HTTPS listener without hostname: served for every name no TLS block covers.
			d.Keypairs[tlsstore.DefaultKeypair] = cert
			d.Settings.ListenerDefaultTLS = true
			continue
		}
		d.Keypairs[types.NamespacedName{Namespace: kp.Namespace, Name: kp.Name}] = cert
	}
	eps, err := endpoints(s.Endpoints)
	if err != nil {
		return nil, err
	}
	d.Endpoints = eps
	return d, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func endpoints(in []*snapshotv1.BackendEndpoints) (upstream.Endpoints, error) {
	out := upstream.Endpoints{}
	for _, be := range in {
		k, list, err := backend(be)
		if err != nil {
			return nil, err
		}
		out[k] = list
	}
	return out, nil
}

func backend(be *snapshotv1.BackendEndpoints) (routing.BackendKey, []upstream.Endpoint, error) {
	b := be.GetBackend()
	k := routing.BackendKey{Namespace: b.GetNamespace(), Name: b.GetService(), Port: b.GetPort()}
	list := make([]upstream.Endpoint, 0, len(be.Endpoints))
	for _, e := range be.Endpoints {
		ip, err := netip.ParseAddr(e.Address)
		if err != nil || e.Port <= 0 || e.Port > 65535 {
			return k, nil, fmt.Errorf("backend %s/%s:%d: bad endpoint %q port %d", k.Namespace, k.Name, k.Port, e.Address, e.Port)
		}
		if !e.Ready {
			continue
		}
		list = append(list, upstream.Endpoint{Addr: netip.AddrPortFrom(ip.Unmap(), uint16(e.Port)), AppProtocol: e.AppProtocol})
	}
	return k, list, nil
}

// settingsFor applies the EdgeProxy's traffic defaults and switches, as files mode does for an
// EdgeProxy in its directory (dataplane/files admit).
func settingsFor(ep *edgev1alpha1.EdgeProxy, s proxy.Settings) (routing.Defaults, proxy.Settings) {
	var d routing.Defaults
	s.Tenant = ep.Name
	s.Observability = ep.Spec.Observability
	if t := ep.Spec.Traffic; t != nil {
		if t.MaxRequestBodySize != nil {
			d.MaxRequestBodyBytes = t.MaxRequestBodySize.Value()
		}
		if t.RequestTimeout != nil {
			d.RequestTimeout = t.RequestTimeout.Duration
		}
		if t.BackendTimeout != nil {
			d.BackendTimeout = t.BackendTimeout.Duration
		}
		if t.TrustedHops > 0 {
			s.TrustedHops = int(t.TrustedHops)
		}
	}
	if ep.Spec.TLS != nil && ep.Spec.TLS.RedirectHTTPToHTTPS {
		s.RedirectHTTPToHTTPS = true
	}
	return d, s
}
