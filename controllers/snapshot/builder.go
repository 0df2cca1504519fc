// Package snapshot is the operator's side of config delivery: it computes, per EdgeProxy, the
// versioned snapshot its proxies serve (builder.go, pure), keeps the latest one per EdgeProxy
// (hub.go), streams it to authenticated proxies over gRPC (server.go, auth.go, tls.go), and tracks
// which version every connected replica acknowledged (tracker.go), from which TenantRoutes get
// their Programmed condition.
package snapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// ManagedByEndpointSliceController is the endpointslice.kubernetes.io/managed-by value of the
// slices kube-controller-manager writes, the only ones trusted by default: a tenant can create
// EndpointSlices by hand that point anywhere (SliceTrusted).
const ManagedByEndpointSliceController = "endpointslice-controller.k8s.io"

// SliceTrusted reports whether the proxies may use an EndpointSlice of svc. For a Service with a
// selector, the slices kube-controller-manager manages; for a Service without one (which the
// controller writes nothing for, so all its slices are hand-written) any slice, but only where the
// EdgeProxy opts in (spec.allowUnmanagedEndpointSlices). A tenant owns its Services and could point hand-written
// slices at any Pod or node address, which the proxies (whose source address other namespaces'
// NetworkPolicies admit) would then reach on its behalf, bypassing ReferenceGrants; so by default
// selectorless Services with hand-written slices are not served (docs/gateway-api.md). The snapshot
// builder, the TenantRoute reconciler's ResolvedRefs and `portico diagnose` all decide with this.
func SliceTrusted(s *discoveryv1.EndpointSlice, svc *corev1.Service, allowUnmanaged bool) bool {
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	if len(svc.Spec.Selector) == 0 {
		// kube-controller-manager writes nothing for a selectorless Service, so every slice of it
		// is hand-written, whatever its managed-by label says: the API server does not check the
		// label, and the controller never reconciles such a slice away.
		return allowUnmanaged
	}
	// With a selector the controller owns the Service's slices (it deletes strays carrying its label).
	return s.Labels[discoveryv1.LabelManagedBy] == ManagedByEndpointSliceController
}

// Input is everything one EdgeProxy's snapshot is computed from. The builder reads nothing else.
type Input struct {
	EdgeProxy *edgev1alpha1.EdgeProxy
	// Routes name the EdgeProxy (spec.edgeProxy); the builder keeps the admitted ones.
	Routes []edgev1alpha1.TenantRoute
	// Services and EndpointSlices (by Service) the routes' backends may refer to.
	Services map[types.NamespacedName]*corev1.Service
	Slices   map[types.NamespacedName][]*discoveryv1.EndpointSlice
	// Secrets the routes' TLS blocks and the Gateways' listeners may refer to.
	Secrets map[types.NamespacedName]*corev1.Secret
	// Now decides certificate validity.
	Now time.Time

	// Gateway API objects, from which the certificates of the HTTPS listeners of the Gateways this
	// EdgeProxy serves are taken (translate.ListenerCertificates): never from a TenantRoute, which
	// a tenant writes. All empty without the Gateway API. EdgeProxies defaults to EdgeProxy alone.
	Gateways        []gwapiv1.Gateway
	GatewayClasses  []gwapiv1.GatewayClass
	EdgeProxies     []edgev1alpha1.EdgeProxy
	Namespaces      []corev1.Namespace
	ReferenceGrants []gwapiv1beta1.ReferenceGrant
	// HTTPRoutes naming those Gateways (which namespaces and hosts attached to each listener).
	HTTPRoutes []gwapiv1.HTTPRoute

	// Encoded, when set, remembers the wire JSON of routes between builds of this EdgeProxy (by
	// UID and generation): a build encodes only the routes that changed. It never changes the result.
	Encoded *RouteCache
}

// Snapshot is one computed, immutable snapshot of an EdgeProxy. Config holds everything but the
// endpoints (its Version is a digest of exactly that); Endpoints travel separately so that a change
// to them alone is a delta, not a new version.
type Snapshot struct {
	EdgeProxy string
	Version   string
	// Config is the wire message without endpoints (and endpoints_revision): never modify it.
	Config *snapshotv1.Snapshot
	// Routes are the admitted routes in the snapshot: which object (UID) and generation of each.
	Routes map[types.NamespacedName]RouteRevision
	// Endpoints of every referenced backend with at least one ready endpoint.
	Endpoints map[routing.BackendKey]*snapshotv1.BackendEndpoints
}

// RouteRevision names one generation of one TenantRoute object. The UID keeps a route deleted and
// created again under the same name (generation 1 again) from reading as already programmed.
type RouteRevision struct {
	UID        types.UID
	Generation int64
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
	s := &Snapshot{EdgeProxy: ep.Name, Routes: map[types.NamespacedName]RouteRevision{},
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
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	listeners := listenerTLS(in, routes)
	enc := in.Encoded.next()
	backends := map[routing.BackendKey]bool{}
	secrets := map[types.NamespacedName]bool{}
	cfg.TenantRoutes = make([][]byte, 0, len(routes))
	for _, tr := range routes {
		var b []byte
		if extra, refused := listeners.carried[tr], refusedBackends(tr); len(extra) > 0 || refused {
			// A carrier of listener certificates: its own TLS blocks first (within a route, the
			// first block naming a host serves it); a route with a refused cross-namespace
			// backend: without it. Never cached (the cache is by generation).
			w := wireRoute(tr)
			if len(extra) > 0 {
				w.Spec.TLS = append(slices.Clip(tr.Spec.TLS), extra...)
			}
			if refused {
				w.Spec.Rules = withoutRefusedBackends(tr)
			}
			b, err = json.Marshal(w)
		} else {
			b, err = enc.encode(tr)
		}
		if err != nil {
			return nil, fmt.Errorf("encode tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		}
		cfg.TenantRoutes = append(cfg.TenantRoutes, b)
		s.Routes[types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}] = RouteRevision{UID: tr.UID, Generation: tr.Generation}
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
	in.Encoded.done(enc)
	keypairs := map[types.NamespacedName]*snapshotv1.TLSKeypair{}
	for nn := range secrets {
		if kp := keypair(in.Secrets[nn], in.Now); kp != nil {
			keypairs[nn] = kp
		}
	}
	for nn, kp := range listeners.keypairs {
		keypairs[nn] = kp
	}
	for _, nn := range sortedKeys(keypairs) {
		cfg.TlsKeypairs = append(cfg.TlsKeypairs, keypairs[nn])
	}
	if listeners.listenerDefault != nil {
		cfg.TlsKeypairs = append(cfg.TlsKeypairs, listeners.listenerDefault)
	}
	for k := range backends {
		if be := backendEndpoints(k, in.Services, in.Slices, in.EdgeProxy.Spec.AllowUnmanagedEndpointSlices); be != nil {
			s.Endpoints[k] = be
		}
	}
	s.Version = digest(cfg)
	cfg.Version = s.Version
	s.Config = cfg
	return s, nil
}

// listenerCerts are the Gateways' listener certificates as the snapshot serves them: extra TLS
// blocks on one carrier route each, naming the key pair under an alias in the carrier's namespace.
type listenerCerts struct {
	carried  map[*edgev1alpha1.TenantRoute][]edgev1alpha1.RouteTLS
	keypairs map[types.NamespacedName]*snapshotv1.TLSKeypair
	// listenerDefault is the key pair of the first HTTPS listener that names no hostname: the
	// Gateway's owner asked for it to answer every name, so it is served for every SNI name no
	// route's TLS covers (snapshotv1.TLSKeypair.ListenerDefault).
	listenerDefault *snapshotv1.TLSKeypair
}

// maxTLSHosts is the most hosts one TLS block holds (the CRD's MaxItems).
const maxTLSHosts = 64

// listenerTLS serves the certificate of every HTTPS listener of the Gateways the EdgeProxy serves
// (translate.ListenerCertificates: the Secret in the Gateway's namespace, or in another one whose
// ReferenceGrant admits the Gateway) for the listener's hostname or, when it names none, for the
// hostnames of the HTTPRoutes attached to it that admitted routes of the same namespace hold.
//
// The proxy picks a certificate by SNI from the routes' TLS blocks, and a block names a Secret of
// its route's namespace, so the key pair travels under the alias "<secret namespace>.<secret
// name>" in the namespace of a carrier: the oldest admitted route (routing's precedence) of a
// namespace attached to the listener, else of any namespace. A namespace where an admitted route
// names a Secret of that very name in its own spec.tls is never a carrier: that route would serve
// the listener's key pair as its own Secret. Nothing a TenantRoute says makes the key pair travel.
func listenerTLS(in Input, routes []*edgev1alpha1.TenantRoute) listenerCerts {
	out := listenerCerts{carried: map[*edgev1alpha1.TenantRoute][]edgev1alpha1.RouteTLS{},
		keypairs: map[types.NamespacedName]*snapshotv1.TLSKeypair{}}
	if len(in.Gateways) == 0 || len(routes) == 0 {
		return out
	}
	eps := in.EdgeProxies
	if len(eps) == 0 {
		eps = []edgev1alpha1.EdgeProxy{*in.EdgeProxy}
	}
	secrets := make([]corev1.Secret, 0, len(in.Secrets))
	for _, nn := range sortedKeys(in.Secrets) {
		if sec := in.Secrets[nn]; sec != nil {
			secrets = append(secrets, *sec)
		}
	}
	certs := translate.ListenerCertificates(translate.ListenerCertificatesInput{
		EdgeProxy: in.EdgeProxy.Name, Gateways: in.Gateways, GatewayClasses: in.GatewayClasses, EdgeProxies: eps,
		Namespaces: in.Namespaces, ReferenceGrants: in.ReferenceGrants, Secrets: secrets, Routes: in.HTTPRoutes,
	})
	if len(certs) == 0 {
		return out
	}
	// What admitted routes hold: their hostnames and the Secret names their TLS blocks use, by namespace.
	hosts := map[string]map[string]bool{}
	named := map[types.NamespacedName]bool{}
	for _, tr := range routes {
		if hosts[tr.Namespace] == nil {
			hosts[tr.Namespace] = map[string]bool{}
		}
		for _, h := range tr.Spec.Hostnames {
			hosts[tr.Namespace][strings.ToLower(string(h))] = true
		}
		for _, ref := range admission.SecretRefs(tr) {
			named[ref.Secret] = true
		}
	}
	byAge := slices.Clone(routes)
	slices.SortStableFunc(byAge, func(a, b *edgev1alpha1.TenantRoute) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) // then namespace/name: routes is sorted so
	})
	served := map[string]bool{} // one certificate per host: the first listener naming it
	for _, lc := range certs {
		kp := keypair(in.Secrets[lc.Secret], in.Now)
		if kp == nil {
			continue // expired or not yet valid: every proxy would refuse the snapshot
		}
		if lc.Hostname == "" && out.listenerDefault == nil {
			out.listenerDefault = &snapshotv1.TLSKeypair{Namespace: lc.Secret.Namespace, Name: lc.Secret.Name,
				CertPem: kp.CertPem, KeyPem: kp.KeyPem, ListenerDefault: true}
		}
		var sni []edgev1alpha1.Hostname
		add := func(h string) {
			if !served[h] && admission.HostnameAllowed(in.EdgeProxy.Spec.Hostnames, h) {
				served[h] = true
				sni = append(sni, edgev1alpha1.Hostname(h))
			}
		}
		attached := map[string]bool{}
		for _, a := range lc.Attached {
			attached[a.Namespace] = true
			if lc.Hostname == "" {
				for _, h := range a.Hosts {
					if hosts[a.Namespace][h] {
						add(h)
					}
				}
			}
		}
		if lc.Hostname != "" {
			add(lc.Hostname)
		}
		if len(sni) == 0 {
			continue
		}
		alias := ListenerCertificateAlias(lc.Secret)
		usable := func(tr *edgev1alpha1.TenantRoute) bool {
			return !named[types.NamespacedName{Namespace: tr.Namespace, Name: alias}]
		}
		var carrier *edgev1alpha1.TenantRoute
		for _, tr := range byAge {
			if attached[tr.Namespace] && usable(tr) {
				carrier = tr
				break
			}
		}
		if carrier == nil {
			for _, tr := range byAge {
				if usable(tr) {
					carrier = tr
					break
				}
			}
		}
		if carrier == nil {
			continue
		}
		for part := range slices.Chunk(sni, maxTLSHosts) {
			out.carried[carrier] = append(out.carried[carrier], edgev1alpha1.RouteTLS{Hosts: part, SecretName: alias})
		}
		nn := types.NamespacedName{Namespace: carrier.Namespace, Name: alias}
		out.keypairs[nn] = &snapshotv1.TLSKeypair{Namespace: nn.Namespace, Name: nn.Name, CertPem: kp.CertPem, KeyPem: kp.KeyPem}
	}
	return out
}

// ListenerCertificateAlias is the name under which a route of another namespace serves a listener's
// Secret: "<namespace>.<name>" (a namespace has no dots, so two Secrets never share one), or, when
// that is longer than a Secret name may be, "<namespace>.<hash of the name>".
func ListenerCertificateAlias(secret types.NamespacedName) string {
	if a := secret.Namespace + "." + secret.Name; len(a) <= 253 {
		return a
	}
	sum := sha256.Sum256([]byte(secret.Name))
	return secret.Namespace + "." + hex.EncodeToString(sum[:16])
}

// RouteCache remembers the wire JSON of routes by UID and generation (the wire form holds only
// identity, generation, age and spec, and the spec changes only with the generation). Each build
// keeps the entries it used and drops the others. Safe for concurrent use by one EdgeProxy's builds.
type RouteCache struct {
	mu sync.Mutex
	m  map[routeKey][]byte
}

type routeKey struct {
	uid        types.UID
	generation int64
}

// routeEncoder is one build's view of a RouteCache (nil cache: encode everything).
type routeEncoder struct {
	old, cur map[routeKey][]byte
}

func (c *RouteCache) next() *routeEncoder {
	if c == nil {
		return &routeEncoder{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &routeEncoder{old: c.m, cur: make(map[routeKey][]byte, len(c.m))}
}

func (c *RouteCache) done(e *routeEncoder) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = e.cur
}

func (e *routeEncoder) encode(tr *edgev1alpha1.TenantRoute) ([]byte, error) {
	if e.cur == nil || tr.UID == "" {
		return json.Marshal(wireRoute(tr))
	}
	k := routeKey{uid: tr.UID, generation: tr.Generation}
	if b, ok := e.old[k]; ok {
		e.cur[k] = b
		return b, nil
	}
	b, err := json.Marshal(wireRoute(tr))
	if err == nil {
		e.cur[k] = b
	}
	return b, err
}

// wireRoute is the part of a TenantRoute the proxy needs: identity, generation, age (hostname
// ownership and precedence use it), the source-kind label (an HTTPRoute's wildcards match several
// labels, routing.Route.DeepWildcards) and spec; never status, annotations or managed fields.
func wireRoute(tr *edgev1alpha1.TenantRoute) *edgev1alpha1.TenantRoute {
	w := &edgev1alpha1.TenantRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "TenantRoute"},
		ObjectMeta: metav1.ObjectMeta{Namespace: tr.Namespace, Name: tr.Name, UID: tr.UID,
			Generation: tr.Generation, CreationTimestamp: tr.CreationTimestamp},
		Spec: tr.Spec,
	}
	// The proxies match Gateway API wildcards (any depth) only for routes lowered from an HTTPRoute.
	// The label alone is tenant-writable, so it travels only when an HTTPRoute really controls the
	// route (the test admission uses for its grants); a hand-written route keeps one-label wildcards.
	if admission.GrantSubjectOf(tr).Kind == "HTTPRoute" {
		w.Labels = map[string]string{edgev1alpha1.LabelSourceKind: "HTTPRoute"}
	}
	return w
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
// Service's trusted EndpointSlices (SliceTrusted), matching ports by name as kube-proxy does.
func backendEndpoints(k routing.BackendKey, services map[types.NamespacedName]*corev1.Service,
	bySvc map[types.NamespacedName][]*discoveryv1.EndpointSlice, allowUnmanaged bool) *snapshotv1.BackendEndpoints {
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
		if !SliceTrusted(sl, svc, allowUnmanaged) {
			continue
		}
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

// ReadyEndpointCount is how many endpoints the proxies are sent for port port of svc, from its
// EndpointSlices: what backendEndpoints resolves (trusted slices, the port matched by name, ready
// and not terminating, the egress guard). ResolvedRefs (NoReadyEndpoints) counts with it, so the
// condition says what the proxies see.
func ReadyEndpointCount(svc *corev1.Service, port int32, slices []*discoveryv1.EndpointSlice, allowUnmanaged bool) int {
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	be := backendEndpoints(routing.BackendKey{Namespace: svc.Namespace, Name: svc.Name, Port: port},
		map[types.NamespacedName]*corev1.Service{nn: svc}, map[types.NamespacedName][]*discoveryv1.EndpointSlice{nn: slices}, allowUnmanaged)
	if be == nil {
		return 0
	}
	return len(be.Endpoints)
}

// sliceEndpoints are the ready endpoints of one trusted slice for the Service port sp.
func sliceEndpoints(s *discoveryv1.EndpointSlice, sp *corev1.ServicePort) []*snapshotv1.Endpoint {
	if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
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

func sortedKeys[V any](m map[types.NamespacedName]V) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(m))
	for nn := range m {
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
