package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// ProgrammedSource says whether a route generation is live on every connected proxy replica of
// its EdgeProxy (snapshot.Tracker), and names on Events the routes whose answer changed.
type ProgrammedSource interface {
	RouteState(edgeProxy string, route types.NamespacedName, rev snapshot.RouteRevision) snapshot.RouteState
	// Settling: this replica took over as leader moments ago; proxies may not be connected yet.
	Settling() bool
	Events() <-chan event.GenericEvent
}

var _ ProgrammedSource = (*snapshot.Tracker)(nil)

// setProgrammed sets Programmed and status.programmedVersion from the ACK tracker. The TenantRoute
// reconciler stays the one writer of route status; the tracker only triggers it.
func (r *TenantRouteReconciler) setProgrammed(tr *edgev1alpha1.TenantRoute, accepted bool) {
	st := &tr.Status
	gen := tr.Generation
	if !accepted {
		setCondition(&st.Conditions, edgev1alpha1.RouteConditionProgrammed, metav1.ConditionFalse,
			edgev1alpha1.RouteReasonPending, "not accepted, so not sent to any proxy", gen)
		st.ProgrammedVersion = ""
		return
	}
	s := r.Programmed.RouteState(tr.Spec.EdgeProxy, types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name},
		snapshot.RouteRevision{UID: tr.UID, Generation: gen})
	prev := findCondition(st.Conditions, edgev1alpha1.RouteConditionProgrammed)
	wasLive := prev != nil && prev.Status == metav1.ConditionTrue && prev.ObservedGeneration == gen && st.ProgrammedVersion != ""
	// A new leader knows no proxy until they redial it: what the previous leader wrote stays
	// until they do (or the tracker's settle window, 30 s, passes), instead of every route flipping to Pending and
	// back, two status writes per route that queue a new route's admission behind them.
	if wasLive && s.NoReplica && r.Programmed.Settling() {
		return
	}
	setCondition(&st.Conditions, edgev1alpha1.RouteConditionProgrammed, s.Status, s.Reason, s.Message, gen)
	// programmedVersion is the version that first made this generation live: a later leader's
	// tracker, which first saw it live in a newer version, does not move it.
	if !(wasLive && s.Status == metav1.ConditionTrue) {
		st.ProgrammedVersion = s.Version
	}
}

// reconcileProgrammed is the reconcile of a route poked only by the ACK tracker: when its status
// holds the admission of its current generation, only Programmed (and status.programmedVersion) is
// recomputed and written (with the summary conditions that follow from it), when it changed. done is false when full admission is needed instead.
func (r *TenantRouteReconciler) reconcileProgrammed(ctx context.Context, tr *edgev1alpha1.TenantRoute) (done bool, res ctrl.Result, err error) {
	a := findCondition(tr.Status.Conditions, edgev1alpha1.RouteConditionAccepted)
	if tr.Status.ObservedGeneration != tr.Generation || a == nil || a.ObservedGeneration != tr.Generation {
		return false, ctrl.Result{}, nil
	}
	orig := tr.DeepCopy()
	r.setProgrammed(tr, a.Status == metav1.ConditionTrue)
	setRouteSummary(&tr.Status.Conditions, tr.Generation)
	if equality.Semantic.DeepEqual(orig.Status, tr.Status) {
		return true, ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, tr, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return true, ctrl.Result{}, nil
		case apierrors.IsConflict(err):
			return true, ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return true, ctrl.Result{}, fmt.Errorf("write programmed status of tenantroute %s/%s: %w", tr.Namespace, tr.Name, err)
	}
	return true, ctrl.Result{}, nil
}

// watchProgrammed re-reconciles a route when the tracker says its Programmed state changed.
func (r *TenantRouteReconciler) watchProgrammed(b *builder.Builder) {
	if r.Programmed != nil {
		b.WatchesRawSource(source.Channel(r.Programmed.Events(), &handler.EnqueueRequestForObject{}))
	}
}
