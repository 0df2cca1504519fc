package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// Reasons of the Warning Events recorded on Ingresses.
const (
	// eventReasonUnsupportedAnnotation: an annotation was ignored or only approximated.
	eventReasonUnsupportedAnnotation = edgev1alpha1.RouteReasonUnsupportedAnnotation
	// eventReasonAnnotationNotice: an annotation is reproduced exactly, with a caveat worth knowing
	// (rewrite-target "/" drops the rest of the path, say).
	eventReasonAnnotationNotice edgev1alpha1.ConditionReason = "AnnotationNotice"
	// eventReasonTranslationFailed: a field error; nothing new is served.
	eventReasonTranslationFailed edgev1alpha1.ConditionReason = "TranslationFailed"
	// eventReasonRouteConflict: a TenantRoute of the generated name exists and is someone else's.
	eventReasonRouteConflict edgev1alpha1.ConditionReason = "RouteConflict"
)

// report records a Warning Event on the Ingress for each notice and each problem, once per distinct
// set: a reconcile caused by an unrelated change (a Service, the EdgeProxy) does not repeat them.
func (r *IngressReconciler) report(ing *networkingv1.Ingress, notices []translate.Notice, problems []problem) {
	all := make([]problem, 0, len(notices)+len(problems))
	all = append(all, problems...)
	for _, n := range notices {
		reason := eventReasonUnsupportedAnnotation
		if n.Behaviour == translate.Exact {
			reason = eventReasonAnnotationNotice
		}
		all = append(all, problem{reason: reason, subject: n.Annotation, msg: n.String()})
	}
	if !r.reported.changed(ing, all) {
		return
	}
	for _, p := range all {
		r.Recorder.Eventf(ing, nil, corev1.EventTypeWarning, string(p.reason), eventAction(p.subject), "%s", eventNote(p.msg))
	}
}

// maxEventAction is the longest action an events.k8s.io Event may carry.
const maxEventAction = 128

// eventAction names what was translated: "Translate <annotation or field>". The event recorder
// merges Events of the same type, reason and action about one object into a series that keeps the
// first note, so each annotation and each field needs an action of its own to be seen.
func eventAction(subject string) string {
	if subject == "" {
		return eventActionTranslate
	}
	return truncate(eventActionTranslate+" "+subject, maxEventAction, "")
}

// reportedEvents remembers, per Ingress, a digest of the Events last recorded about it. A new leader
// starts empty and reports once more.
type reportedEvents struct {
	mu sync.Mutex
	m  map[types.NamespacedName]reportedSet
}

type reportedSet struct {
	uid    types.UID
	digest [sha256.Size]byte
}

func (r *reportedEvents) changed(ing *networkingv1.Ingress, all []problem) bool {
	h := sha256.New()
	for _, p := range all {
		h.Write([]byte(p.reason))
		h.Write([]byte{0})
		h.Write([]byte(p.subject))
		h.Write([]byte{0})
		h.Write([]byte(p.msg))
		h.Write([]byte{0})
	}
	set := reportedSet{uid: ing.UID}
	copy(set.digest[:], h.Sum(nil))
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.NamespacedName]reportedSet{}
	}
	if prev, ok := r.m[key]; ok && prev == set {
		return false
	}
	r.m[key] = set
	return len(all) > 0
}

func (r *reportedEvents) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
}

// writeAddresses makes the Ingress's status.loadBalancer.ingress list addrs, with server-side apply
// on the status subresource and the operator's field owner, so that Argo CD and `kubectl wait` see
// the Ingress as served. With no addresses it gives back the field it owns, if any: an Ingress that
// was never Portico's is never written to, whatever its status says.
func (r *IngressReconciler) writeAddresses(ctx context.Context, ing *networkingv1.Ingress, addrs []networkingv1.IngressLoadBalancerIngress) error {
	owned := ownsLoadBalancerStatus(ing)
	switch {
	case len(addrs) == 0 && !owned:
		return nil
	case len(addrs) > 0 && owned && apiequality.Semantic.DeepEqual(ing.Status.LoadBalancer.Ingress, addrs):
		return nil
	}
	lb := networkingv1ac.IngressLoadBalancerStatus()
	for _, a := range addrs {
		e := networkingv1ac.IngressLoadBalancerIngress()
		if a.IP != "" {
			e.WithIP(a.IP)
		}
		if a.Hostname != "" {
			e.WithHostname(a.Hostname)
		}
		lb.WithIngress(e)
	}
	status := networkingv1ac.IngressStatus()
	if len(addrs) > 0 {
		status.WithLoadBalancer(lb)
	}
	ac := networkingv1ac.Ingress(ing.Name, ing.Namespace).WithStatus(status)
	err := r.Status().Apply(ctx, ac, client.FieldOwner(edgev1alpha1.FieldOwner), client.ForceOwnership)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("write status of ingress %s/%s: %w", ing.Namespace, ing.Name, err)
	}
	return nil
}

// ownsLoadBalancerStatus reports whether the operator's field manager owns the Ingress's
// status.loadBalancer, that is, wrote it and nobody has rewritten it since.
func ownsLoadBalancerStatus(ing *networkingv1.Ingress) bool {
	for _, mf := range ing.ManagedFields {
		if mf.Manager == edgev1alpha1.FieldOwner && mf.Subresource == "status" &&
			mf.Operation == metav1.ManagedFieldsOperationApply && mf.FieldsV1 != nil &&
			bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:loadBalancer"`)) {
			return true
		}
	}
	return false
}
