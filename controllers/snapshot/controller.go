package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/translate"
)

// Field indexes of this package (own names: the controllers package indexes the same data under
// names this package cannot import).
const (
	indexEdgeProxy     = "snapshot.spec.edgeProxy"
	indexBackend       = "snapshot.backendService"
	indexSecret        = "snapshot.tlsSecret"
	indexGatewaySecret = "snapshot.gateway.certificateSecret"
	indexRouteParent   = "snapshot.httproute.parentGateway"
)

// Coalesce bounds how long a change waits for others before the snapshot is rebuilt during a
// burst: every event of a burst lands in a build at most this long after it (the delaying queue
// never pushes an item further out), so an EdgeProxy gets at most about 1/Coalesce new versions a
// second however many objects change. A change to an idle EdgeProxy (no new version in the last
// Coalesce) waits only QuickBuild, for the events that come with it: a single change is not
// delayed by the batching window.
const (
	Coalesce   = 50 * time.Millisecond
	QuickBuild = 5 * time.Millisecond
)

// Builder is the reconciler that computes each EdgeProxy's snapshot from the cache and publishes it
// to the Hub. It runs in every replica (no leader election), so a replica that becomes leader has
// its snapshots ready the moment it starts serving streams.
type Builder struct {
	client.Client
	// APIReader reads TLS Secrets (the cache holds their metadata only).
	APIReader client.Reader
	Hub       *Hub
	secrets   secretCache
	// gatewayAPI and referenceGrants say whether the cluster serves them (SetupWithManager).
	gatewayAPI, referenceGrants bool

	// admitted bridges the moment between a route's spec change and its re-admission (admitted.go).
	admitted lastAdmitted

	mu        sync.Mutex
	encoded   map[string]*RouteCache // by EdgeProxy
	lastBuild map[string]time.Time   // by EdgeProxy: when its last build ended
}

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways;gatewayclasses;httproutes;referencegrants,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile builds and publishes one EdgeProxy's snapshot.
func (b *Builder) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	if err := b.Get(ctx, req.NamespacedName, ep); err != nil {
		if apierrors.IsNotFound(err) {
			b.Hub.Remove(req.Name)
			b.admitted.forget(req.Name)
			b.mu.Lock()
			delete(b.encoded, req.Name)
			delete(b.lastBuild, req.Name)
			b.mu.Unlock()
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get edgeproxy %s: %w", req.Name, err)
	}
	var routes edgev1alpha1.TenantRouteList
	// Build only reads the routes (and copies what it keeps): no deep copy of every route per build.
	if err := b.List(ctx, &routes, client.MatchingFields{indexEdgeProxy: ep.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("list tenantroutes of edgeproxy %s: %w", ep.Name, err)
	}
	// A route being re-admitted after a spec change is served as last admitted, never left out.
	routes.Items = b.admitted.resolve(ep.Name, routes.Items)
	in := Input{EdgeProxy: ep, Routes: routes.Items, Now: time.Now(), Encoded: b.routeCache(ep.Name),
		Services: map[types.NamespacedName]*corev1.Service{},
		Slices:   map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		Secrets:  map[types.NamespacedName]*corev1.Secret{}}
	for i := range routes.Items {
		tr := &routes.Items[i]
		if !Admitted(tr) {
			continue
		}
		for _, k := range BackendKeys(tr) {
			if err := b.service(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, &in); err != nil {
				return ctrl.Result{}, err
			}
		}
		for _, ref := range admission.SecretRefs(tr) {
			if _, seen := in.Secrets[ref.Secret]; seen {
				continue
			}
			s, err := b.secrets.get(ctx, b.Client, b.APIReader, ref.Secret)
			if err != nil {
				return ctrl.Result{}, err
			}
			in.Secrets[ref.Secret] = s
		}
	}
	if b.gatewayAPI {
		if err := b.gatewayInput(ctx, ep, &in); err != nil {
			return ctrl.Result{}, err
		}
	}
	snap, err := Build(in)
	if err != nil {
		return ctrl.Result{}, err
	}
	prev, _, _ := b.Hub.Current(ep.Name)
	b.Hub.Publish(snap)
	if prev == nil || prev.Version != snap.Version {
		// A new version opens the batching window; a build that changed nothing (an event
		// that does not touch the snapshot yet, such as a route created before its admission)
		// must not delay the change that follows it.
		b.mu.Lock()
		if b.lastBuild == nil {
			b.lastBuild = map[string]time.Time{}
		}
		b.lastBuild[ep.Name] = time.Now()
		b.mu.Unlock()
	}
	return ctrl.Result{}, nil
}

// delay is how long a change of an EdgeProxy's inputs waits before its build: QuickBuild when it
// is idle (no new version in the last Coalesce), Coalesce during a burst.
func (b *Builder) delay(ep string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.lastBuild[ep]; ok && time.Since(t) < Coalesce {
		return Coalesce
	}
	return QuickBuild
}

func (b *Builder) routeCache(ep string) *RouteCache {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.encoded == nil {
		b.encoded = map[string]*RouteCache{}
	}
	c := b.encoded[ep]
	if c == nil {
		c = &RouteCache{}
		b.encoded[ep] = c
	}
	return c
}

// gatewayInput adds what the listener certificates of the Gateways ep serves are computed from:
// those Gateways, every GatewayClass and EdgeProxy (which EdgeProxy serves a Gateway), the
// Secrets their listeners name (read from the API server: the cache holds metadata only), the
// ReferenceGrants of the other namespaces those Secrets live in, the namespaces (allowedRoutes
// selectors) and the HTTPRoutes naming the Gateways.
func (b *Builder) gatewayInput(ctx context.Context, ep *edgev1alpha1.EdgeProxy, in *Input) error {
	var gws gwapiv1.GatewayList
	if err := b.List(ctx, &gws); err != nil {
		return fmt.Errorf("list gateways: %w", err)
	}
	if len(gws.Items) == 0 {
		return nil
	}
	var classes gwapiv1.GatewayClassList
	if err := b.List(ctx, &classes); err != nil {
		return fmt.Errorf("list gatewayclasses: %w", err)
	}
	var eps edgev1alpha1.EdgeProxyList
	if err := b.List(ctx, &eps); err != nil {
		return fmt.Errorf("list edgeproxies: %w", err)
	}
	grantNS := map[string]bool{}
	for i := range gws.Items {
		gw := &gws.Items[i]
		if p, _ := translate.ResolveGatewayProxy(gw, classes.Items, eps.Items); p == nil || p.Name != ep.Name {
			continue
		}
		keys := listenerSecrets(gw)
		if len(keys) == 0 {
			continue // no HTTPS listener with a certificate: nothing to serve
		}
		in.Gateways = append(in.Gateways, *gw)
		for _, k := range keys {
			if k.Namespace != gw.Namespace {
				grantNS[k.Namespace] = true
			}
			if _, seen := in.Secrets[k]; seen {
				continue
			}
			s, err := b.secrets.get(ctx, b.Client, b.APIReader, k)
			if err != nil {
				return err
			}
			in.Secrets[k] = s
		}
		var routes gwapiv1.HTTPRouteList
		// Read only (translate.ListenerCertificates): no deep copy of every route per build.
		if err := b.List(ctx, &routes, client.MatchingFields{indexRouteParent: client.ObjectKeyFromObject(gw).String()},
			client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("list httproutes of gateway %s/%s: %w", gw.Namespace, gw.Name, err)
		}
		in.HTTPRoutes = append(in.HTTPRoutes, routes.Items...)
	}
	if len(in.Gateways) == 0 {
		return nil
	}
	in.GatewayClasses, in.EdgeProxies = classes.Items, eps.Items
	var namespaces corev1.NamespaceList
	if err := b.List(ctx, &namespaces); err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	in.Namespaces = namespaces.Items
	if b.referenceGrants {
		for _, ns := range sortedSet(grantNS) {
			var grants gwapiv1beta1.ReferenceGrantList
			if err := b.List(ctx, &grants, client.InNamespace(ns)); err != nil {
				return fmt.Errorf("list referencegrants in %s: %w", ns, err)
			}
			in.ReferenceGrants = append(in.ReferenceGrants, grants.Items...)
		}
	}
	return nil
}

// listenerSecrets are the Secrets a Gateway's HTTPS listeners name in certificateRefs.
func listenerSecrets(gw *gwapiv1.Gateway) []types.NamespacedName {
	var out []types.NamespacedName
	for _, l := range gw.Spec.Listeners {
		if l.Protocol != gwapiv1.HTTPSProtocolType || l.TLS == nil {
			continue
		}
		for _, c := range l.TLS.CertificateRefs {
			if c.Group != nil && *c.Group != "" || c.Kind != nil && *c.Kind != "Secret" {
				continue
			}
			k := types.NamespacedName{Namespace: gw.Namespace, Name: string(c.Name)}
			if c.Namespace != nil && *c.Namespace != "" {
				k.Namespace = string(*c.Namespace)
			}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// parentGateways are the Gateways an HTTPRoute's parentRefs name.
func parentGateways(r *gwapiv1.HTTPRoute) []types.NamespacedName {
	var out []types.NamespacedName
	for _, p := range r.Spec.ParentRefs {
		if p.Group != nil && *p.Group != gwapiv1.GroupName || p.Kind != nil && *p.Kind != "Gateway" {
			continue
		}
		k := types.NamespacedName{Namespace: r.Namespace, Name: string(p.Name)}
		if p.Namespace != nil && *p.Namespace != "" {
			k.Namespace = string(*p.Namespace)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (b *Builder) service(ctx context.Context, nn types.NamespacedName, in *Input) error {
	if _, seen := in.Services[nn]; seen {
		return nil
	}
	svc := &corev1.Service{}
	switch err := b.Get(ctx, nn, svc); {
	case apierrors.IsNotFound(err):
		in.Services[nn] = nil
		return nil
	case err != nil:
		return fmt.Errorf("get service %s: %w", nn, err)
	}
	in.Services[nn] = svc
	var slices discoveryv1.EndpointSliceList
	if err := b.List(ctx, &slices, client.InNamespace(nn.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: nn.Name}); err != nil {
		return fmt.Errorf("list endpointslices of %s: %w", nn, err)
	}
	for i := range slices.Items {
		in.Slices[nn] = append(in.Slices[nn], &slices.Items[i])
	}
	return nil
}

// SetupWithManager registers the indexes and the watches: EdgeProxies (spec), TenantRoutes (spec,
// and the status that decides membership: Accepted for the current generation, ResolvedRefs),
// Services and EndpointSlices of backends, Secret metadata (the routes' and the Gateways'
// listeners'), and with the Gateway API, the Gateways an EdgeProxy serves, GatewayClasses,
// HTTPRoutes naming those Gateways and ReferenceGrants from Gateways.
func (b *Builder) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	b.gatewayAPI = served(mgr, schema.GroupKind{Group: gwapiv1.GroupName, Kind: "Gateway"}, gwapiv1.GroupVersion.Version)
	b.referenceGrants = b.gatewayAPI &&
		served(mgr, schema.GroupKind{Group: gwapiv1beta1.GroupName, Kind: "ReferenceGrant"}, gwapiv1beta1.GroupVersion.Version)
	idx := mgr.GetFieldIndexer()
	routeIndex := func(f func(*edgev1alpha1.TenantRoute) []string) client.IndexerFunc {
		return func(o client.Object) []string {
			if tr, ok := o.(*edgev1alpha1.TenantRoute); ok {
				return f(tr)
			}
			return nil
		}
	}
	for name, fn := range map[string]client.IndexerFunc{
		indexEdgeProxy: routeIndex(func(tr *edgev1alpha1.TenantRoute) []string { return []string{tr.Spec.EdgeProxy} }),
		indexBackend: routeIndex(func(tr *edgev1alpha1.TenantRoute) []string {
			var out []string
			for _, k := range BackendKeys(tr) {
				out = append(out, k.Namespace+"/"+k.Name)
			}
			return out
		}),
		indexSecret: routeIndex(func(tr *edgev1alpha1.TenantRoute) []string {
			var out []string
			for _, s := range admission.SecretRefs(tr) {
				out = append(out, s.Secret.String())
			}
			return out
		}),
	} {
		if err := idx.IndexField(ctx, &edgev1alpha1.TenantRoute{}, name, fn); err != nil {
			return fmt.Errorf("index tenantroutes by %s: %w", name, err)
		}
	}
	if b.gatewayAPI {
		if err := idx.IndexField(ctx, &gwapiv1.Gateway{}, indexGatewaySecret, func(o client.Object) []string {
			var out []string
			if gw, ok := o.(*gwapiv1.Gateway); ok {
				for _, k := range listenerSecrets(gw) {
					out = append(out, k.String())
				}
			}
			return out
		}); err != nil {
			return fmt.Errorf("index gateways by certificate: %w", err)
		}
		if err := idx.IndexField(ctx, &gwapiv1.HTTPRoute{}, indexRouteParent, func(o client.Object) []string {
			var out []string
			if r, ok := o.(*gwapiv1.HTTPRoute); ok {
				for _, k := range parentGateways(r) {
					out = append(out, k.String())
				}
			}
			return out
		}); err != nil {
			return fmt.Errorf("index httproutes by parent: %w", err)
		}
	}
	byRoutes := func(ctx context.Context, index, key string) []string {
		var routes edgev1alpha1.TenantRouteList
		if err := b.List(ctx, &routes, client.MatchingFields{index: key}, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list tenantroutes", "index", index)
			return nil
		}
		var out []string
		for _, tr := range routes.Items {
			out = append(out, tr.Spec.EdgeProxy)
		}
		return out
	}
	nsName := func(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }
	secretUsers := func(ctx context.Context, o client.Object) []string {
		out := byRoutes(ctx, indexSecret, nsName(o))
		if b.gatewayAPI {
			out = append(out, b.edgeProxiesOfGateways(ctx, client.MatchingFields{indexGatewaySecret: nsName(o)})...)
		}
		return out
	}
	bld := ctrl.NewControllerManagedBy(mgr).
		Named("snapshot").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		// Only the spec goes into a snapshot: the EdgeProxy's own status writes do not rebuild it.
		Watches(&edgev1alpha1.EdgeProxy{}, b.delayed(func(_ context.Context, o client.Object) []string { return []string{o.GetName()} }),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&edgev1alpha1.TenantRoute{}, b.delayed(func(_ context.Context, o client.Object) []string {
			return []string{o.(*edgev1alpha1.TenantRoute).Spec.EdgeProxy}
		}), builder.WithPredicates(routeInputChanged)).
		Watches(&corev1.Service{}, b.delayed(func(ctx context.Context, o client.Object) []string {
			return byRoutes(ctx, indexBackend, nsName(o))
		})).
		Watches(&discoveryv1.EndpointSlice{}, b.delayed(func(ctx context.Context, o client.Object) []string {
			if svc := o.GetLabels()[discoveryv1.LabelServiceName]; svc != "" {
				return byRoutes(ctx, indexBackend, o.GetNamespace()+"/"+svc)
			}
			return nil
		})).
		Watches(&corev1.Secret{}, b.delayed(secretUsers), builder.OnlyMetadata)
	if b.gatewayAPI {
		bld = bld.
			Watches(&gwapiv1.Gateway{}, b.delayed(func(ctx context.Context, o client.Object) []string {
				gw, ok := o.(*gwapiv1.Gateway)
				if !ok {
					return nil
				}
				return b.edgeProxiesServing(ctx, []gwapiv1.Gateway{*gw})
			}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			Watches(&gwapiv1.GatewayClass{}, b.delayed(b.allEdgeProxies), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			Watches(&gwapiv1.HTTPRoute{}, b.delayed(func(ctx context.Context, o client.Object) []string {
				r, ok := o.(*gwapiv1.HTTPRoute)
				if !ok {
					return nil
				}
				var gws []gwapiv1.Gateway
				for _, k := range parentGateways(r) {
					gw := &gwapiv1.Gateway{}
					if err := b.Get(ctx, k, gw); err == nil {
						gws = append(gws, *gw)
					}
				}
				return b.edgeProxiesServing(ctx, gws)
			}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
		if b.referenceGrants {
			bld = bld.Watches(&gwapiv1beta1.ReferenceGrant{}, b.delayed(func(ctx context.Context, o client.Object) []string {
				g, ok := o.(*gwapiv1beta1.ReferenceGrant)
				if !ok {
					return nil
				}
				var out []string
				for _, f := range g.Spec.From {
					if string(f.Group) == gwapiv1.GroupName && f.Kind == "Gateway" {
						out = append(out, b.edgeProxiesOfGateways(ctx, client.InNamespace(string(f.Namespace)))...)
					}
				}
				return out
			}))
		}
	}
	return bld.Complete(b)
}

// routeInputChanged passes the TenantRoute updates that can change a snapshot: its spec
// (generation), the EdgeProxy it names, its deletion, and its Accepted and ResolvedRefs conditions
// (status, reason and the generation they judge: membership, the last admitted generation,
// cross-namespace backends). The status writes that follow a snapshot (Programmed, and the summary conditions)
// do not rebuild it.
var routeInputChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*edgev1alpha1.TenantRoute)
	cur, okNew := e.ObjectNew.(*edgev1alpha1.TenantRoute)
	if !okOld || !okNew {
		return true
	}
	return old.Generation != cur.Generation || old.Spec.EdgeProxy != cur.Spec.EdgeProxy ||
		old.DeletionTimestamp.IsZero() != cur.DeletionTimestamp.IsZero() ||
		judged(old, edgev1alpha1.RouteConditionAccepted) != judged(cur, edgev1alpha1.RouteConditionAccepted) ||
		judged(old, edgev1alpha1.RouteConditionResolvedRefs) != judged(cur, edgev1alpha1.RouteConditionResolvedRefs)
}}

// conditionVerdict is what a condition says (status and reason) about which generation.
type conditionVerdict struct {
	status     metav1.ConditionStatus
	reason     string
	generation int64
}

func judged(tr *edgev1alpha1.TenantRoute, t edgev1alpha1.ConditionType) conditionVerdict {
	if c := meta.FindStatusCondition(tr.Status.Conditions, string(t)); c != nil {
		return conditionVerdict{c.Status, c.Reason, c.ObservedGeneration}
	}
	return conditionVerdict{}
}

// served reports whether the cluster serves a kind (optional CRDs).
func served(mgr ctrl.Manager, gk schema.GroupKind, version string) bool {
	_, err := mgr.GetRESTMapper().RESTMapping(gk, version)
	if err != nil && !meta.IsNoMatchError(err) {
		mgr.GetLogger().WithName("snapshot").Error(err, "cannot tell whether the cluster serves a kind; ignoring it", "kind", gk.String())
	}
	return err == nil
}

func (b *Builder) allEdgeProxies(ctx context.Context, _ client.Object) []string {
	var eps edgev1alpha1.EdgeProxyList
	if err := b.List(ctx, &eps); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list edgeproxies")
		return nil
	}
	out := make([]string, 0, len(eps.Items))
	for _, ep := range eps.Items {
		out = append(out, ep.Name)
	}
	return out
}

func (b *Builder) edgeProxiesOfGateways(ctx context.Context, opts ...client.ListOption) []string {
	var gws gwapiv1.GatewayList
	if err := b.List(ctx, &gws, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list gateways")
		return nil
	}
	return b.edgeProxiesServing(ctx, gws.Items)
}

// edgeProxiesServing names the EdgeProxies serving some Gateways.
func (b *Builder) edgeProxiesServing(ctx context.Context, gws []gwapiv1.Gateway) []string {
	if len(gws) == 0 {
		return nil
	}
	var classes gwapiv1.GatewayClassList
	if err := b.List(ctx, &classes); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list gatewayclasses")
		return nil
	}
	var out []string
	for i := range gws {
		// Existence of the EdgeProxy does not matter here: its name is what gets rebuilt.
		if p, _ := translate.ResolveGatewayProxy(&gws[i], classes.Items, nil); p != nil && p.Name != "" && !slices.Contains(out, p.Name) {
			out = append(out, p.Name)
		}
	}
	return out
}

// delayed enqueues the EdgeProxies an object maps to after their delay (QuickBuild or Coalesce);
// for updates both the old and the new object are mapped (a route moving to another EdgeProxy
// leaves the old one's snapshot).
func (b *Builder) delayed(m func(context.Context, client.Object) []string) handler.EventHandler {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			if o == nil {
				continue
			}
			for _, name := range m(ctx, o) {
				if name != "" {
					q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}, b.delay(name))
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
	}
}

// secretCache keeps the TLS Secrets read so far by resourceVersion: a Secret is read from the API
// server again only when its metadata (cached) says it changed.
type secretCache struct {
	m map[types.NamespacedName]*corev1.Secret
}

func (c *secretCache) get(ctx context.Context, cached, api client.Reader, nn types.NamespacedName) (*corev1.Secret, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := cached.Get(ctx, nn, meta); err != nil {
		if apierrors.IsNotFound(err) {
			delete(c.m, nn)
			return nil, nil
		}
		return nil, fmt.Errorf("get secret metadata %s: %w", nn, err)
	}
	if s := c.m[nn]; s != nil && s.ResourceVersion == meta.ResourceVersion {
		return s, nil
	}
	s := &corev1.Secret{}
	if err := api.Get(ctx, nn, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get secret %s: %w", nn, err)
	}
	if c.m == nil {
		c.m = map[types.NamespacedName]*corev1.Secret{}
	}
	c.m[nn] = s
	return s, nil
}
