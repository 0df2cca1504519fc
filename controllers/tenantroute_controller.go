package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

// RBAC of this reconciler; `make manifests` turns these markers into config/rbac/role.yaml.
// +kubebuilder:rbac:groups="",resources=services;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch

// TenantRouteReconciler admits TenantRoutes: it writes Accepted, ResolvedRefs and (until config
// delivery exists) Programmed=False/Pending, and records a Warning Event when a route is refused.
// The decisions are controllers/admission's; this file only gathers objects and writes status.
type TenantRouteReconciler struct {
	client.Client
	// APIReader reads TLS Secrets directly: the operator watches Secrets' metadata only and never
	// caches every Secret of the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ReferenceGrants is false when the cluster does not serve Gateway API ReferenceGrants; no
	// cross-namespace reference is permitted then.
	ReferenceGrants bool
	// Programmed, when set, is config delivery's ACK tracker: the source of the Programmed
	// condition (tenantroute_programmed.go). Without it Programmed stays False/Pending.
	Programmed ProgrammedSource
	// Certificates is true when the cluster serves cert-manager's Certificates, and ShimInCharge
	// when cert-manager's ingress-shim runs: both feed CertificateReady (tenantroute_certificate.go).
	Certificates, ShimInCharge bool
}

// Reconcile admits one route. Hostname ownership depends on the other routes of its EdgeProxy, so
// every change to one of them re-admits them all (see tenantroute_watches.go).
func (r *TenantRouteReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tr := &edgev1alpha1.TenantRoute{}
	if err := r.Get(ctx, req.NamespacedName, tr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	ep, err := r.edgeProxy(ctx, tr.Spec.EdgeProxy)
	if err != nil {
		return ctrl.Result{}, err
	}
	checked, err := r.check(ctx, tr, ep)
	if err != nil {
		return ctrl.Result{}, err
	}
	accepted := checked.Verdict
	if accepted.OK {
		refused, err := r.resolveHostnames(ctx, ep)
		if err != nil {
			return ctrl.Result{}, err
		}
		if c, lost := refused[req.NamespacedName]; lost {
			accepted = admission.ConflictVerdict(c)
			log.FromContext(ctx).Info("hostname conflict", "hostname", c.Hostname, "owner", c.Owner.String())
		} else {
			accepted.Message = fmt.Sprintf("accepted by EdgeProxy %q", ep.Name)
		}
	}
	refs, err := r.gatherRefs(ctx, tr, ep)
	if err != nil {
		return ctrl.Result{}, err
	}
	cert, err := r.certificateStatus(ctx, tr, ep, accepted.OK, refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	refs.PendingSecrets = cert.pending
	resolved := admission.ResolveRefs(tr, refs)
	if err := r.writeStatus(ctx, tr, accepted, resolved, cert); err != nil {
		if apierrors.IsConflict(err) {
			// Our cache has not caught up with the route (or our own last write) yet: look again
			// shortly rather than log an error.
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// conflictRetry is how soon a reconcile whose status write lost an optimistic-concurrency race runs again.
const conflictRetry = 200 * time.Millisecond

func (r *TenantRouteReconciler) edgeProxy(ctx context.Context, name string) (*edgev1alpha1.EdgeProxy, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	err := r.Get(ctx, types.NamespacedName{Name: name}, ep)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get edgeproxy %s: %w", name, err)
	case !ep.DeletionTimestamp.IsZero():
		return nil, nil
	}
	return ep, nil
}

// check runs the per-route checks with the labels of the route's namespace.
func (r *TenantRouteReconciler) check(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy) (admission.Checked, error) {
	in := admission.Input{Route: tr, EdgeProxy: ep}
	if ep != nil && ep.Spec.TenantNamespaces.Selector != nil {
		ns := &corev1.Namespace{}
		if err := r.Get(ctx, types.NamespacedName{Name: tr.Namespace}, ns); client.IgnoreNotFound(err) != nil {
			return admission.Checked{}, fmt.Errorf("get namespace %s: %w", tr.Namespace, err)
		}
		in.NamespaceLabels = ns.Labels
	}
	return admission.Check(in), nil
}

// resolveHostnames decides hostname ownership among every route of the EdgeProxy that passes its
// own checks, and returns the refused ones.
func (r *TenantRouteReconciler) resolveHostnames(ctx context.Context, ep *edgev1alpha1.EdgeProxy) (map[types.NamespacedName]admission.Conflict, error) {
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, client.MatchingFields{indexRouteEdgeProxy: ep.Name}); err != nil {
		return nil, fmt.Errorf("list tenantroutes of edgeproxy %s: %w", ep.Name, err)
	}
	claims := make([]admission.Claim, 0, len(routes.Items))
	for i := range routes.Items {
		tr := &routes.Items[i]
		if !tr.DeletionTimestamp.IsZero() {
			continue
		}
		checked, err := r.check(ctx, tr, ep)
		if err != nil {
			return nil, err
		}
		if checked.OK {
			claims = append(claims, checked.Claim)
		}
	}
	return admission.Resolve(claims), nil
}

// gatherRefs fetches what the route refers to: Services from the cache, ReferenceGrants of the
// namespaces its cross-namespace backends live in, and TLS Secrets straight from the API server.
func (r *TenantRouteReconciler) gatherRefs(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy) (admission.Refs, error) {
	refs := admission.Refs{
		Services:          map[types.NamespacedName]*corev1.Service{},
		Secrets:           map[types.NamespacedName]*corev1.Secret{},
		AllowExternalName: ep != nil && ep.Spec.AllowExternalNameServices,
	}
	grantsListed := map[string]bool{}
	for _, b := range admission.BackendRefs(tr) {
		if b.Service.Namespace != tr.Namespace && r.ReferenceGrants && !grantsListed[b.Service.Namespace] {
			grantsListed[b.Service.Namespace] = true
			var grants gwapiv1beta1.ReferenceGrantList
			if err := r.List(ctx, &grants, client.InNamespace(b.Service.Namespace)); err != nil {
				return refs, fmt.Errorf("list referencegrants in %s: %w", b.Service.Namespace, err)
			}
			refs.Grants = append(refs.Grants, grants.Items...)
		}
		if _, seen := refs.Services[b.Service]; seen {
			continue
		}
		svc := &corev1.Service{}
		switch err := r.Get(ctx, b.Service, svc); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return refs, fmt.Errorf("get service %s: %w", b.Service, err)
		default:
			refs.Services[b.Service] = svc
		}
	}
	for _, s := range admission.SecretRefs(tr) {
		if _, seen := refs.Secrets[s.Secret]; seen {
			continue
		}
		secret := &corev1.Secret{}
		switch err := r.APIReader.Get(ctx, s.Secret, secret); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return refs, fmt.Errorf("get secret %s: %w", s.Secret, err)
		default:
			refs.Secrets[s.Secret] = secret
		}
	}
	return refs, nil
}

// writeStatus sets the route's conditions, writes them once and only when they changed, and
// records an Event when a condition turns False (or back to Accepted).
func (r *TenantRouteReconciler) writeStatus(ctx context.Context, tr *edgev1alpha1.TenantRoute, accepted, resolved admission.Verdict, cert certificateReady) error {
	orig := tr.DeepCopy()
	gen := tr.Generation
	st := &tr.Status
	st.ObservedGeneration = gen
	setCondition(&st.Conditions, edgev1alpha1.RouteConditionAccepted, boolStatus(accepted.OK), accepted.Reason, accepted.Message, gen)
	setCondition(&st.Conditions, edgev1alpha1.RouteConditionResolvedRefs, boolStatus(resolved.OK), resolved.Reason, resolved.Message, gen)
	setTranslationStatus(tr) // status.source and Translated of routes generated from an Ingress
	setCertificateReady(tr, cert)
	// Programmed comes from config delivery's ACK tracker when it runs (tenantroute_programmed.go);
	// without it, and for as long as this reconciler is its only writer (reason Pending), say
	// plainly that nothing is programmed yet.
	if r.Programmed != nil {
		r.setProgrammed(tr, accepted.OK)
	} else if p := findCondition(st.Conditions, edgev1alpha1.RouteConditionProgrammed); p == nil || p.Reason == string(edgev1alpha1.RouteReasonPending) {
		msg := "not accepted, so not sent to any proxy"
		if accepted.OK {
			msg = "accepted; waiting for configuration delivery to the EdgeProxy's proxies (not available in this build)"
		}
		setCondition(&st.Conditions, edgev1alpha1.RouteConditionProgrammed, metav1.ConditionFalse, edgev1alpha1.RouteReasonPending, msg, gen)
	}
	if equality.Semantic.DeepEqual(orig.Status, tr.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, tr, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status of tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
	}
	r.recordTransitions(orig, tr)
	return nil
}

func (r *TenantRouteReconciler) recordTransitions(before, after *edgev1alpha1.TenantRoute) {
	for _, t := range []edgev1alpha1.ConditionType{edgev1alpha1.RouteConditionAccepted, edgev1alpha1.RouteConditionResolvedRefs} {
		was, now := findCondition(before.Status.Conditions, t), findCondition(after.Status.Conditions, t)
		if sameCondition(was, now) || now == nil {
			continue
		}
		switch {
		case now.Status == metav1.ConditionFalse:
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, now.Reason, eventActionAdmit, "%s", eventNote(now.Message))
		case was != nil && was.Status == metav1.ConditionFalse:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, now.Reason, eventActionAdmit, "%s", eventNote(now.Message))
		}
	}
}

// SetupWithManager: see tenantroute_watches.go for what re-admits a route. A route is also
// reconciled when its translation record (edge.portico.dev/translation) changes.
func (r *TenantRouteReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named(tenantRouteControllerName).
		For(&edgev1alpha1.TenantRoute{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, translationRecordChanged)))
	r.watches(b)
	r.watchProgrammed(b)
	r.watchCertificates(b)
	return b.Complete(r)
}
