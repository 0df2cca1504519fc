package snapshot

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// Field indexes of this package (own names: the controllers package indexes the same data under
// names this package cannot import).
const (
	indexEdgeProxy = "snapshot.spec.edgeProxy"
	indexBackend   = "snapshot.backendService"
	indexSecret    = "snapshot.tlsSecret"
)

// Coalesce is how long a change waits for others before the snapshot is rebuilt: every event of a
// burst lands in one build, and no change waits longer than this (the delaying queue never pushes
// an item further out).
const Coalesce = 50 * time.Millisecond

// Builder is the reconciler that computes each EdgeProxy's snapshot from the cache and publishes it
// to the Hub. It runs in every replica (no leader election): every replica serves snapshots.
type Builder struct {
	client.Client
	// APIReader reads TLS Secrets (the cache holds their metadata only).
	APIReader client.Reader
	Hub       *Hub
	secrets   secretCache
	// admitted bridges the moment between a route's spec change and its re-admission (admitted.go).
	admitted lastAdmitted
}

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// Reconcile builds and publishes one EdgeProxy's snapshot.
func (b *Builder) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	if err := b.Get(ctx, req.NamespacedName, ep); err != nil {
		if apierrors.IsNotFound(err) {
			b.Hub.Remove(req.Name)
			b.admitted.forget(req.Name)
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
	in := Input{EdgeProxy: ep, Routes: routes.Items, Now: time.Now(),
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
	snap, err := Build(in)
	if err != nil {
		return ctrl.Result{}, err
	}
	b.Hub.Publish(snap)
	return ctrl.Result{}, nil
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

// SetupWithManager registers the indexes and the watches: EdgeProxies, TenantRoutes (status too:
// Accepted decides membership), Services and EndpointSlices of backends, Secret metadata.
func (b *Builder) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
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
	byRoutes := func(index string, key func(client.Object) string) func(context.Context, client.Object) []string {
		return func(ctx context.Context, o client.Object) []string {
			k := key(o)
			if k == "" {
				return nil
			}
			var routes edgev1alpha1.TenantRouteList
			if err := b.List(ctx, &routes, client.MatchingFields{index: k}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "list tenantroutes", "index", index)
				return nil
			}
			var out []string
			for _, tr := range routes.Items {
				out = append(out, tr.Spec.EdgeProxy)
			}
			return out
		}
	}
	nsName := func(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }
	return ctrl.NewControllerManagedBy(mgr).
		Named("snapshot").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Watches(&edgev1alpha1.EdgeProxy{}, delayed(func(_ context.Context, o client.Object) []string { return []string{o.GetName()} })).
		Watches(&edgev1alpha1.TenantRoute{}, delayed(func(_ context.Context, o client.Object) []string {
			return []string{o.(*edgev1alpha1.TenantRoute).Spec.EdgeProxy}
		})).
		Watches(&corev1.Service{}, delayed(byRoutes(indexBackend, nsName))).
		Watches(&discoveryv1.EndpointSlice{}, delayed(byRoutes(indexBackend, func(o client.Object) string {
			if svc := o.GetLabels()[discoveryv1.LabelServiceName]; svc != "" {
				return o.GetNamespace() + "/" + svc
			}
			return ""
		}))).
		Watches(&corev1.Secret{}, delayed(byRoutes(indexSecret, nsName)), builder.OnlyMetadata).
		Complete(b)
}

// delayed enqueues the EdgeProxies an object maps to after Coalesce; for updates both the old and
// the new object are mapped (a route moving to another EdgeProxy leaves the old one's snapshot).
func delayed(m func(context.Context, client.Object) []string) handler.EventHandler {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			if o == nil {
				continue
			}
			for _, name := range m(ctx, o) {
				if name != "" {
					q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}, Coalesce)
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
