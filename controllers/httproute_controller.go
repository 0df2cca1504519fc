package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=edge.portico.dev,resources=tenantroutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=edge.portico.dev,resources=tenantroutes/status,verbs=get;update;patch

// HTTPRouteReconciler lowers each HTTPRoute into TenantRoutes (controllers/translate decides,
// this file gathers objects, applies and writes status). It writes only the entries of
// status.parents carrying Portico's controllerName; other controllers' entries are kept as they are.
type HTTPRouteReconciler struct {
	client.Client
	// APIReader reads the Gateways' TLS Secrets: the operator caches Secrets' metadata only.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ReferenceGrants is false when the cluster does not serve them: nothing cross-namespace is granted.
	ReferenceGrants bool
}

// Reconcile translates one route, applies its TenantRoutes, deletes those it no longer produces
// and merges its parent statuses.
func (r *HTTPRouteReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	route := &gwapiv1.HTTPRoute{}
	if err := r.Get(ctx, req.NamespacedName, route); err != nil {
		// A deleted route's TenantRoutes go with it: they carry its ownerReference.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !route.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	in, err := r.gather(ctx, route)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := translate.HTTPRoute(in)
	// res.Certificates (listener certificates in another namespace than the route's) are not
	// written anywhere: a TenantRoute names Secrets of its own namespace only, and the snapshot
	// builder takes those certificates from the Gateways its EdgeProxy serves (controllers/snapshot,
	// listenerTLS), never from anything a tenant can write.
	if err := r.applyRoutes(ctx, route, res.Routes); err != nil {
		return ctrl.Result{}, err
	}
	changed, err := r.writeStatus(ctx, route, res.Parents)
	if err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	if changed {
		for _, w := range res.Warnings {
			r.Recorder.Eventf(route, nil, corev1.EventTypeWarning, "Translation", eventActionAdmit, "%s", eventNote(w))
		}
	}
	return ctrl.Result{}, nil
}

// gather lists what the translation of route reads: its Gateways, every GatewayClass and EdgeProxy,
// its namespace, the ReferenceGrants of the namespaces its backends and the Gateways' certificates
// live in, those Services, and those Secrets (read from the API server, not the cache).
func (r *HTTPRouteReconciler) gather(ctx context.Context, route *gwapiv1.HTTPRoute) (translate.GatewayInput, error) {
	in := translate.GatewayInput{Route: route}
	for _, k := range routeGateways(route) {
		gw := &gwapiv1.Gateway{}
		switch err := r.Get(ctx, k, gw); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return in, fmt.Errorf("get gateway %s: %w", k, err)
		default:
			in.Gateways = append(in.Gateways, *gw)
		}
	}
	var err error
	if in.GatewayClasses, in.EdgeProxies, err = listClassesAndProxies(ctx, r.Client); err != nil {
		return in, err
	}
	ns := &corev1.Namespace{}
	switch err := r.Get(ctx, types.NamespacedName{Name: route.Namespace}, ns); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return in, fmt.Errorf("get namespace %s: %w", route.Namespace, err)
	default:
		in.Namespaces = []corev1.Namespace{*ns}
	}
	grantNamespaces := map[string]bool{}
	for _, k := range routeServices(route) {
		if k.Namespace != route.Namespace {
			grantNamespaces[k.Namespace] = true
		}
		svc := &corev1.Service{}
		switch err := r.Get(ctx, k, svc); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return in, fmt.Errorf("get service %s: %w", k, err)
		default:
			in.Services = append(in.Services, *svc)
		}
	}
	for i := range in.Gateways {
		gw := &in.Gateways[i]
		if translate.PorticoGatewayClass(in.GatewayClasses, string(gw.Spec.GatewayClassName)) == nil {
			continue
		}
		secrets, grantNS, err := gatewayCertificates(ctx, r.APIReader, gw)
		if err != nil {
			return in, err
		}
		in.Secrets = append(in.Secrets, secrets...)
		for _, n := range grantNS {
			grantNamespaces[n] = true
		}
	}
	if in.ReferenceGrants, err = listGrants(ctx, r.Client, r.ReferenceGrants, grantNamespaces); err != nil {
		return in, err
	}
	return in, nil
}

// listClassesAndProxies lists every GatewayClass and EdgeProxy (both cluster-scoped and few).
func listClassesAndProxies(ctx context.Context, c client.Client) ([]gwapiv1.GatewayClass, []edgev1alpha1.EdgeProxy, error) {
	var classes gwapiv1.GatewayClassList
	if err := c.List(ctx, &classes); err != nil {
		return nil, nil, fmt.Errorf("list gatewayclasses: %w", err)
	}
	var eps edgev1alpha1.EdgeProxyList
	if err := c.List(ctx, &eps); err != nil {
		return nil, nil, fmt.Errorf("list edgeproxies: %w", err)
	}
	return classes.Items, eps.Items, nil
}

// gatewayCertificates reads the Secrets a Gateway's listeners name (from the API server: the cache
// holds Secrets' metadata only) and returns them with the other namespaces they live in.
func gatewayCertificates(ctx context.Context, reader client.Reader, gw *gwapiv1.Gateway) ([]corev1.Secret, []string, error) {
	var secrets []corev1.Secret
	var namespaces []string
	for _, k := range gatewaySecrets(gw) {
		if k.Namespace != gw.Namespace {
			namespaces = append(namespaces, k.Namespace)
		}
		s := &corev1.Secret{}
		switch err := reader.Get(ctx, k, s); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, nil, fmt.Errorf("get secret %s: %w", k, err)
		default:
			secrets = append(secrets, *s)
		}
	}
	return secrets, namespaces, nil
}

// listGrants lists the ReferenceGrants of some namespaces.
func listGrants(ctx context.Context, c client.Client, served bool, namespaces map[string]bool) ([]gwapiv1beta1.ReferenceGrant, error) {
	if !served {
		return nil, nil
	}
	var out []gwapiv1beta1.ReferenceGrant
	for ns := range namespaces {
		var list gwapiv1beta1.ReferenceGrantList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("list referencegrants in %s: %w", ns, err)
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

// applyRoutes server-side applies the translated TenantRoutes, records their source, and deletes
// the route's TenantRoutes the translation no longer produces.
func (r *HTTPRouteReconciler) applyRoutes(ctx context.Context, route *gwapiv1.HTTPRoute, routes []*edgev1alpha1.TenantRoute) error {
	want := map[string]bool{}
	for _, tr := range routes {
		want[tr.Name] = true
		if err := applyObject(ctx, r.Client, tr); err != nil {
			return fmt.Errorf("apply tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		}
		if err := r.recordSource(ctx, route, types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}); err != nil {
			return err
		}
	}
	var existing edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &existing, client.InNamespace(route.Namespace), client.MatchingLabels(translate.HTTPRouteSourceLabels(route.Name))); err != nil {
		return fmt.Errorf("list tenantroutes of httproute %s/%s: %w", route.Namespace, route.Name, err)
	}
	for i := range existing.Items {
		tr := &existing.Items[i]
		if want[tr.Name] {
			continue
		}
		if owner := metav1.GetControllerOf(tr); owner == nil || owner.UID != route.UID {
			continue
		}
		if err := r.Delete(ctx, tr, client.Preconditions{UID: ptrUID(tr.UID)}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
		}
		log.FromContext(ctx).Info("deleted tenantroute no longer produced", "tenantRoute", tr.Name)
	}
	return nil
}

// recordSource sets status.source of a generated TenantRoute when it is missing or stale. The
// TenantRoute reconciler owns the rest of the status; a merge patch of this one field leaves it alone.
func (r *HTTPRouteReconciler) recordSource(ctx context.Context, route *gwapiv1.HTTPRoute, key types.NamespacedName) error {
	tr := &edgev1alpha1.TenantRoute{}
	if err := r.Get(ctx, key, tr); err != nil {
		// The cache may not have seen our apply yet; the TenantRoute's creation requeues the route.
		return client.IgnoreNotFound(err)
	}
	src := translate.HTTPRouteSource(route)
	if equality.Semantic.DeepEqual(tr.Status.Source, src) {
		return nil
	}
	orig := tr.DeepCopy()
	tr.Status.Source = src
	if err := r.Status().Patch(ctx, tr, client.MergeFrom(orig)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("record source of tenantroute %s: %w", key, err)
	}
	return nil
}

// writeStatus replaces Portico's entries of status.parents with the translation's (keeping the
// transition times of unchanged conditions) and leaves every other controller's entry alone. The
// patch is guarded by the resourceVersion, so a concurrent write by another controller is never lost.
func (r *HTTPRouteReconciler) writeStatus(ctx context.Context, route *gwapiv1.HTTPRoute, parents []gwapiv1.RouteParentStatus) (bool, error) {
	orig := route.DeepCopy()
	route.Status.Parents = mergeParentStatuses(route.Status.Parents, parents)
	if equality.Semantic.DeepEqual(orig.Status, route.Status) {
		return false, nil
	}
	if err := r.Status().Patch(ctx, route, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("write status of httproute %s/%s: %w", route.Namespace, route.Name, err)
	}
	return true, nil
}

// mergeParentStatuses keeps other controllers' entries in place, replaces Portico's with ours
// (dropping those for parents no longer ours), and carries condition transition times over from
// the entry for the same parentRef.
func mergeParentStatuses(current, ours []gwapiv1.RouteParentStatus) []gwapiv1.RouteParentStatus {
	out := make([]gwapiv1.RouteParentStatus, 0, len(current)+len(ours))
	var previous []gwapiv1.RouteParentStatus
	for _, p := range current {
		if p.ControllerName == edgev1alpha1.GatewayControllerName {
			previous = append(previous, p)
			continue
		}
		out = append(out, p)
	}
	for _, p := range ours {
		merged := gwapiv1.RouteParentStatus{ParentRef: p.ParentRef, ControllerName: p.ControllerName}
		for _, old := range previous {
			if sameParentRef(old.ParentRef, p.ParentRef) {
				merged.Conditions = old.Conditions
				break
			}
		}
		conds := merged.Conditions
		merged.Conditions = nil
		for _, c := range p.Conditions {
			if prev := meta.FindStatusCondition(conds, c.Type); prev != nil && prev.Status == c.Status {
				c.LastTransitionTime = prev.LastTransitionTime
			}
			meta.SetStatusCondition(&merged.Conditions, c)
		}
		out = append(out, merged)
	}
	return out
}

// sameParentRef compares two parentRefs field by field, an unset group, kind or namespace being
// the same as its default only when both are written alike (the API server defaults group and kind).
func sameParentRef(a, b gwapiv1.ParentReference) bool {
	return equality.Semantic.DeepEqual(a, b)
}
