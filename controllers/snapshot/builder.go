// Package snapshot is the operator's side of config delivery: it computes, per EdgeProxy, the
// versioned snapshot its proxies serve (builder.go, pure), keeps the latest one per EdgeProxy
// (hub.go), streams it to authenticated proxies over gRPC (server.go, auth.go, tls.go), and tracks
// which version every connected replica acknowledged (tracker.go), from which TenantRoutes get
// their Programmed condition.
package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// ManagedByEndpointSliceController is the only endpointslice.kubernetes.io/managed-by value whose
// slices are trusted: a tenant can create EndpointSlices by hand that point anywhere.
const ManagedByEndpointSliceController = "endpointslice-controller.k8s.io"

// Input is everything one EdgeProxy's snapshot is computed from. The builder reads nothing else.
type Input struct {
	EdgeProxy *edgev1alpha1.EdgeProxy
	// Routes name the EdgeProxy (spec.edgeProxy); the builder keeps the admitted ones.
	Routes []edgev1alpha1.TenantRoute
	// Services and EndpointSlices (by Service) the routes' backends may refer to.
	Services map[types.NamespacedName]*corev1.Service
	Slices   map[types.NamespacedName][]*discoveryv1.EndpointSlice
	// Secrets the routes' TLS blocks may refer to.
	Secrets map[types.NamespacedName]*corev1.Secret
	// Now decides certificate validity.
	Now time.Time
}

// Snapshot is one computed, immutable snapshot of an EdgeProxy. Config holds everything but the
// endpoints (its Version is a digest of exactly that); Endpoints travel separately so that a change
// to them alone is a delta, not a new version.
type Snapshot struct {
	EdgeProxy string
	Version   string
	// Config is the wire message without endpoints (and endpoints_revision): never modify it.
	Config *snapshotv1.Snapshot
	// Routes are the admitted routes in the snapshot with their generation.
	Routes map[types.NamespacedName]int64
	// Endpoints of every referenced backend with at least one ready endpoint.
	Endpoints map[routing.BackendKey]*snapshotv1.BackendEndpoints
}

// Admitted reports whether the route's current generation is Accepted.
func Admitted(tr *edgev1alpha1.TenantRoute) bool {
	c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted))
	return tr.DeletionTimestamp.IsZero() && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == tr.Generation
}

// refsResolved: admission permitted every reference of the route's current generation. ResolvedRefs
// False for NoReadyEndpoints says so too: that reason is given only when every reference resolved.
func refsResolved(tr *edgev1alpha1.TenantRoute) bool {
	c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionResolvedRefs))
	return c != nil && c.ObservedGeneration == tr.Generation &&
		(c.Status == metav1.ConditionTrue || c.Reason == string(edgev1alpha1.RouteReasonNoReadyEndpoints))
}

// Build computes the snapshot of in.EdgeProxy. It is deterministic: the same input gives the same
// Version in every operator replica.
func Build(in Input) (*Snapshot, error) {
	ep := in.EdgeProxy
	s := &Snapshot{EdgeProxy: ep.Name, Routes: map[types.NamespacedName]int64{},
		Endpoints: map[routing.BackendKey]*snapshotv1.BackendEndpoints{}}
	epJSON, err := json.Marshal(edgev1alpha1.EdgeProxy{
		TypeMeta:   metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "EdgeProxy"},
		ObjectMeta: metav1.ObjectMeta{Name: ep.Name}, Spec: ep.Spec})
	if err != nil {
		return nil, fmt.Errorf("encode edgeproxy %s: %w", ep.Name, err)
	}
	cfg := &snapshotv1.Snapshot{EdgeProxy: epJSON}
	routes := make([]*edgev1alpha1.TenantRoute, 0, len(in.Routes))
	for i := range in.Routes {
		tr := &in.Routes[i]
		if tr.Spec.EdgeProxy == ep.Name && Admitted(tr) {
			routes = append(routes, tr)
		}
	}
	slices.SortFunc(routes, func(a, b *edgev1alpha1.TenantRoute) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	backends := map[routing.BackendKey]bool{}
	secrets := map[types.NamespacedName]bool{}
	for _, tr := range routes {
		b, err := json.Marshal(wireRoute(tr))
		if err != nil {
			return nil, fmt.Errorf("encode tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		}
		cfg.TenantRoutes = append(cfg.TenantRoutes, b)
		s.Routes[types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}] = tr.Generation
		for _, k := range BackendKeys(tr) {
			// A cross-namespace backend only when admission found it permitted (ReferenceGrant).
			if k.Namespace == tr.Namespace || refsResolved(tr) {
				backends[k] = true
			}
		}
		for _, ref := range admission.SecretRefs(tr) {
			secrets[ref.Secret] = true
		}
	}
	for _, nn := range sortedNames(secrets) {
		if kp := keypair(in.Secrets[nn], in.Now); kp != nil {
			cfg.TlsKeypairs = append(cfg.TlsKeypairs, kp)
		}
	}
	for k := range backends {
		if be := backendEndpoints(k, in.Services, in.Slices); be != nil {
			s.Endpoints[k] = be
		}
	}
	s.Version = digest(cfg)
	cfg.Version = s.Version
	s.Config = cfg
	return s, nil
}

// wireRoute is the part of a TenantRoute the proxy needs: identity, generation, age (hostname
// ownership and precedence use it) and spec; never status, annotations or managed fields.
func wireRoute(tr *edgev1alpha1.TenantRoute) *edgev1alpha1.TenantRoute {
	return &edgev1alpha1.TenantRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "TenantRoute"},
		ObjectMeta: metav1.ObjectMeta{Namespace: tr.Namespace, Name: tr.Name, UID: tr.UID,
			Generation: tr.Generation, CreationTimestamp: tr.CreationTimestamp},
		Spec: tr.Spec,
	}
}

// BackendKeys are the Service ports a route sends traffic to, as routing keys them.
func BackendKeys(tr *edgev1alpha1.TenantRoute) []routing.BackendKey {
	var out []routing.BackendKey
	for _, rule := range tr.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if b.Group != nil && *b.Group != "" || b.Kind != nil && *b.Kind != "Service" || b.Port == nil {
				continue
			}
			ns := tr.Namespace
			if b.Namespace != nil && *b.Namespace != "" {
				ns = string(*b.Namespace)
			}
			out = append(out, routing.BackendKey{Namespace: ns, Name: string(b.Name), Port: int32(*b.Port)})
		}
	}
	return out
}

func keypair(s *corev1.Secret, now time.Time) *snapshotv1.TLSKeypair {
	if s == nil || s.Type != corev1.SecretTypeTLS {
		return nil
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	// Admission reports a broken or expired pair on the route (ResolvedRefs=False,
	// InvalidCertificate); sending it would make every proxy refuse the whole snapshot.
	if _, err := tlsstore.ParseKeypair(crt, key, now); err != nil {
		return nil
	}
	return &snapshotv1.TLSKeypair{Namespace: s.Namespace, Name: s.Name, CertPem: crt, KeyPem: key}
}

// backendEndpoints resolves one Service port to the ready, non-terminating addresses of the
// Service's controller-managed EndpointSlices, matching ports by name as kube-proxy does.
func backendEndpoints(k routing.BackendKey, services map[types.NamespacedName]*corev1.Service,
	bySvc map[types.NamespacedName][]*discoveryv1.EndpointSlice) *snapshotv1.BackendEndpoints {
	nn := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	svc := services[nn]
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == k.Port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return nil
	}
	seen := map[netip.AddrPort]bool{}
	var eps []*snapshotv1.Endpoint
	for _, sl := range bySvc[nn] {
		for _, e := range sliceEndpoints(sl, sp) {
			ap := netip.AddrPortFrom(netip.MustParseAddr(e.Address), uint16(e.Port))
			if !seen[ap] {
				seen[ap] = true
				eps = append(eps, e)
			}
		}
	}
	if len(eps) == 0 {
		return nil
	}
	slices.SortFunc(eps, func(a, b *snapshotv1.Endpoint) int {
		if c := strings.Compare(a.Address, b.Address); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
	return &snapshotv1.BackendEndpoints{Backend: WireKey(k), Endpoints: eps}
}

func sliceEndpoints(s *discoveryv1.EndpointSlice, sp *corev1.ServicePort) []*snapshotv1.Endpoint {
	if s.Labels[discoveryv1.LabelManagedBy] != ManagedByEndpointSliceController ||
		s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	var port *discoveryv1.EndpointPort
	for i := range s.Ports {
		if name := s.Ports[i].Name; (name == nil && sp.Name == "") || (name != nil && *name == sp.Name) {
			port = &s.Ports[i]
			break
		}
	}
	if port == nil || port.Port == nil || *port.Port <= 0 || *port.Port > 65535 {
		return nil
	}
	proto := ""
	if port.AppProtocol != nil {
		proto = *port.AppProtocol
	} else if sp.AppProtocol != nil {
		proto = *sp.AppProtocol
	}
	// The proxy's dialer refuses these too; never sending them keeps a tenant from even
	// advertising its proxies' loopback, link-local or metadata addresses.
	guard := upstream.Guard{}
	var out []*snapshotv1.Endpoint
	for _, e := range s.Endpoints {
		if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || (e.Conditions.Terminating != nil && *e.Conditions.Terminating) {
			continue
		}
		for _, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			if guard.Check(netip.AddrPortFrom(ip, uint16(*port.Port))) != nil {
				continue
			}
			out = append(out, &snapshotv1.Endpoint{Address: ip.String(), Port: *port.Port, AppProtocol: proto, Ready: true})
		}
	}
	return out
}

// WireKey and Key convert between routing's and the wire's backend keys.
func WireKey(k routing.BackendKey) *snapshotv1.BackendKey {
	return &snapshotv1.BackendKey{Namespace: k.Namespace, Service: k.Name, Port: k.Port}
}

// Key is the routing key of a wire backend key.
func Key(k *snapshotv1.BackendKey) routing.BackendKey {
	return routing.BackendKey{Namespace: k.GetNamespace(), Name: k.GetService(), Port: k.GetPort()}
}

func sortedNames(set map[types.NamespacedName]bool) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(set))
	for nn := range set {
		out = append(out, nn)
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// digest is the version: a hash of the EdgeProxy, the routes and the key pairs, with length
// prefixes so that no two different inputs share a byte stream.
func digest(c *snapshotv1.Snapshot) string {
	h := sha256.New()
	put := func(b []byte) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	put(c.EdgeProxy)
	for _, r := range c.TenantRoutes {
		put(r)
	}
	for _, kp := range c.TlsKeypairs {
		put([]byte(kp.Namespace + "/" + kp.Name))
		put(kp.CertPem)
		put(kp.KeyPem)
	}
	return "v1-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// DiffEndpoints returns what turns the endpoints from into to: backends whose list changed or
// appeared, and backends that disappeared.
func DiffEndpoints(from, to map[routing.BackendKey]*snapshotv1.BackendEndpoints) (updated []*snapshotv1.BackendEndpoints, removed []*snapshotv1.BackendKey) {
	for k, be := range to {
		if old, ok := from[k]; !ok || !sameEndpoints(old, be) {
			updated = append(updated, be)
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			removed = append(removed, WireKey(k))
		}
	}
	slices.SortFunc(updated, func(a, b *snapshotv1.BackendEndpoints) int { return compareKeys(a.Backend, b.Backend) })
	slices.SortFunc(removed, compareKeys)
	return updated, removed
}

func compareKeys(a, b *snapshotv1.BackendKey) int {
	if c := strings.Compare(a.Namespace+"/"+a.Service, b.Namespace+"/"+b.Service); c != 0 {
		return c
	}
	return int(a.Port - b.Port)
}

func sameEndpoints(a, b *snapshotv1.BackendEndpoints) bool {
	if a == b {
		return true
	}
	return slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y *snapshotv1.Endpoint) bool {
		return x.Address == y.Address && x.Port == y.Port && x.AppProtocol == y.AppProtocol && x.Ready == y.Ready
	})
}
