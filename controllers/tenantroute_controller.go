package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// RBAC of this reconciler; `make manifests` turns these markers into config/rbac/role.yaml.
// +kubebuilder:rbac:groups="",resources=services;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch

// TenantRouteReconciler admits TenantRoutes: it writes Accepted, ResolvedRefs and (until config
// delivery exists) Programmed=False/Pending, then the kstatus summary (Ready, Stalled, Reconciling:
// tenantroute_summary.go), and records a Warning Event when a route is refused.
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

	// adm caches admission work across reconciles (tenantroute_admission.go).
	adm       *admissionState
	stateOnce sync.Once
	// requeue re-admits routes whose ownership verdict a new result changed.
	requeue chan event.GenericEvent
}

// Reconcile admits one route. Hostname ownership depends on the other routes of its EdgeProxy;
// tenantroute_admission.go keeps that affordable (cached checks, one ownership result per
// EdgeProxy, re-queueing only the routes whose verdict can change). A reconcile poked only by the
// ACK tracker updates Programmed alone (tenantroute_programmed.go).
func (r *TenantRouteReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	full := r.state().takeDirty(req.NamespacedName)
	tr := &edgev1alpha1.TenantRoute{}
	if err := r.Get(ctx, req.NamespacedName, tr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if !full && r.Programmed != nil {
		if done, res, err := r.reconcileProgrammed(ctx, tr); done {
			return res, err
		}
	}
	res, err := r.admit(ctx, req, tr)
	if err != nil || res.RequeueAfter > 0 {
		// The retry must admit again, not take the ACK-only path.
		r.state().markDirty(req.NamespacedName)
	}
	return res, err
}

// admit runs full admission of one route and writes its status.
func (r *TenantRouteReconciler) admit(ctx context.Context, req ctrl.Request, tr *edgev1alpha1.TenantRoute) (ctrl.Result, error) {
	ep, err := r.edgeProxy(ctx, tr.Spec.EdgeProxy)
	if err != nil {
		return ctrl.Result{}, err
	}
	accepted, err := r.check(ctx, tr, ep, r.namespaceLabels)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get namespace %s: %w", tr.Namespace, err)
	}
	if accepted.OK {
		own, err := r.ownership(ctx, ep, tr)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("hostname ownership of edgeproxy %s: %w", ep.Name, err)
		}
		if c, lost := own.refused[req.NamespacedName]; lost {
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

// tenantRouteWorkers is how many routes are reconciled at once.
const tenantRouteWorkers = 8

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

// gatherRefs fetches what the route refers to: Services from the cache, ReferenceGrants of the
// namespaces its cross-namespace backends live in, and TLS Secrets straight from the API server.
func (r *TenantRouteReconciler) gatherRefs(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy) (admission.Refs, error) {
	refs := admission.Refs{
		Services:          map[types.NamespacedName]*corev1.Service{},
		Secrets:           map[types.NamespacedName]*corev1.Secret{},
		AllowExternalName: ep != nil && ep.Spec.AllowExternalNameServices,
	}
	grantsListed := map[string]bool{}
	looked := map[types.NamespacedName]bool{}
	slicesOf := map[types.NamespacedName][]*discoveryv1.EndpointSlice{}
	for _, b := range admission.BackendRefs(tr) {
		if b.Service.Namespace != tr.Namespace && r.ReferenceGrants && !grantsListed[b.Service.Namespace] {
			grantsListed[b.Service.Namespace] = true
			var grants gwapiv1beta1.ReferenceGrantList
			if err := r.List(ctx, &grants, client.InNamespace(b.Service.Namespace)); err != nil {
				return refs, fmt.Errorf("list referencegrants in %s: %w", b.Service.Namespace, err)
			}
			refs.Grants = append(refs.Grants, grants.Items...)
		}
		if !looked[b.Service] {
			looked[b.Service] = true
			svc := &corev1.Service{}
			switch err := r.Get(ctx, b.Service, svc); {
			case apierrors.IsNotFound(err):
			case err != nil:
				return refs, fmt.Errorf("get service %s: %w", b.Service, err)
			default:
				refs.Services[b.Service] = svc
				if svc.Spec.Type != corev1.ServiceTypeExternalName {
					sl, err := r.endpointSlices(ctx, b.Service)
					if err != nil {
						return refs, err
					}
					slicesOf[b.Service] = sl
				}
			}
		}
		// A Service with no EndpointSlice at all is not counted: nothing publishes endpoints for it
		// (no endpointslice controller, as in a bare API server), so there is nothing to report yet.
		svc, sl := refs.Services[b.Service], slicesOf[b.Service]
		if svc == nil || len(sl) == 0 || b.Port == 0 {
			continue
		}
		if refs.ReadyEndpoints == nil {
			refs.ReadyEndpoints = map[admission.BackendPort]int{}
		}
		refs.ReadyEndpoints[admission.BackendPort{Service: b.Service, Port: b.Port}] =
			snapshot.ReadyEndpointCount(svc, b.Port, sl, ep != nil && ep.Spec.AllowUnmanagedEndpointSlices)
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

// endpointSlices are the EndpointSlices of a Service (from the cache), whoever wrote them: which
// ones count is snapshot.ReadyEndpointCount's call, the same as the snapshot's.
func (r *TenantRouteReconciler) endpointSlices(ctx context.Context, svc types.NamespacedName) ([]*discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.List(ctx, &list, client.InNamespace(svc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, fmt.Errorf("list endpointslices of service %s: %w", svc, err)
	}
	out := make([]*discoveryv1.EndpointSlice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// readyEndpointCount counts the ready endpoints of a slice (a missing ready condition means ready,
// as the EndpointSlice API says), whoever wrote it: the EndpointSlice watch's predicate uses it to
// let through only changes that can move ResolvedRefs.
func readyEndpointCount(s *discoveryv1.EndpointSlice) int {
	n := 0
	for _, e := range s.Endpoints {
		if e.Conditions.Ready == nil || *e.Conditions.Ready {
			n++
		}
	}
	return n
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
	setRouteSummary(&st.Conditions, gen) // Ready, Stalled, Reconciling: last, from the conditions above
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
	// The route itself is watched like For(...) would, through admitting() so that its own
	// changes mark it for full admission.
	b := ctrl.NewControllerManagedBy(mgr).
		Named(tenantRouteControllerName).
		// Reconciles mostly wait on their status write; the workqueue never runs one route twice at
		// once, and the admission state (tenantroute_admission.go) is safe for concurrent use.
		WithOptions(controller.Options{MaxConcurrentReconciles: tenantRouteWorkers}).
		Watches(&edgev1alpha1.TenantRoute{}, r.admitting(&handler.EnqueueRequestForObject{}), builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, translationRecordChanged)))
	r.requeue = make(chan event.GenericEvent, 1024)
	b.WatchesRawSource(source.Channel(r.requeue, r.admitting(&handler.EnqueueRequestForObject{})))
	r.watches(b)
	r.watchProgrammed(b)
	r.watchCertificates(b)
	return b.Complete(r)
}
