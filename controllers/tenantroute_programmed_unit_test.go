package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// programmedAnswer is a ProgrammedSource that answers one state for every route.
type programmedAnswer struct {
	state    snapshot.RouteState
	settling bool
}

func (p programmedAnswer) RouteState(string, types.NamespacedName, snapshot.RouteRevision) snapshot.RouteState {
	return p.state
}
func (p programmedAnswer) Settling() bool                    { return p.settling }
func (p programmedAnswer) Events() <-chan event.GenericEvent { return nil }

// A leader that just took over has no proxy connected yet: a route the previous leader found live
// keeps Programmed (no write) until the proxies redial or the settle window ends; and a later
// tracker's "live" does not move programmedVersion, the version that first made it live.
func TestSetProgrammedAcrossATakeover(t *testing.T) {
	noReplica := snapshot.RouteState{Status: metav1.ConditionFalse, Reason: edgev1alpha1.RouteReasonPending, Message: "none connected", NoReplica: true}
	liveNow := snapshot.RouteState{Status: metav1.ConditionTrue, Reason: edgev1alpha1.RouteReasonProgrammed, Message: "live", Version: "v-new"}
	route := func(live bool) *edgev1alpha1.TenantRoute {
		tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 3}}
		if live {
			tr.Status.ProgrammedVersion = "v-old"
			tr.Status.Conditions = []metav1.Condition{{Type: string(edgev1alpha1.RouteConditionProgrammed), Status: metav1.ConditionTrue,
				Reason: string(edgev1alpha1.RouteReasonProgrammed), Message: "live", ObservedGeneration: 3}}
		}
		return tr
	}
	for _, tc := range []struct {
		name        string
		live        bool
		answer      programmedAnswer
		wantStatus  metav1.ConditionStatus
		wantVersion string
	}{
		{"live route, new leader settling, no proxy yet: kept", true, programmedAnswer{noReplica, true}, metav1.ConditionTrue, "v-old"},
		{"live route, settled, still no proxy: Pending", true, programmedAnswer{noReplica, false}, metav1.ConditionFalse, ""},
		{"live route, live again on the new leader: version kept", true, programmedAnswer{liveNow, false}, metav1.ConditionTrue, "v-old"},
		{"route not live before, settling, no proxy: Pending", false, programmedAnswer{noReplica, true}, metav1.ConditionFalse, ""},
		{"route not live before, now live: its version", false, programmedAnswer{liveNow, true}, metav1.ConditionTrue, "v-new"},
	} {
		tr := route(tc.live)
		(&TenantRouteReconciler{Programmed: tc.answer}).setProgrammed(tr, true)
		c := findCondition(tr.Status.Conditions, edgev1alpha1.RouteConditionProgrammed)
		if c == nil || c.Status != tc.wantStatus || tr.Status.ProgrammedVersion != tc.wantVersion {
			t.Errorf("%s: Programmed %+v, programmedVersion %q; want %s, %q", tc.name, c, tr.Status.ProgrammedVersion, tc.wantStatus, tc.wantVersion)
		}
	}
}
