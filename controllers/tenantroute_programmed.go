package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// ProgrammedSource says whether a route generation is live on every connected proxy replica of
// its EdgeProxy (snapshot.Tracker), and names on Events the routes whose answer changed.
type ProgrammedSource interface {
	RouteState(edgeProxy string, route types.NamespacedName, generation int64) snapshot.RouteState
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
	s := r.Programmed.RouteState(tr.Spec.EdgeProxy, types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}, gen)
	setCondition(&st.Conditions, edgev1alpha1.RouteConditionProgrammed, s.Status, s.Reason, s.Message, gen)
	st.ProgrammedVersion = s.Version
}

// watchProgrammed re-reconciles a route when the tracker says its Programmed state changed.
func (r *TenantRouteReconciler) watchProgrammed(b *builder.Builder) {
	if r.Programmed != nil {
		b.WatchesRawSource(source.Channel(r.Programmed.Events(), &handler.EnqueueRequestForObject{}))
	}
}
