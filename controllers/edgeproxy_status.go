package controllers

import (
	"fmt"
	"net"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// ProxyReplicas is config delivery's view of the proxy replicas connected for each EdgeProxy
// (snapshot.Tracker), the source of status.connectedProxies and status.proxies.
type ProxyReplicas interface {
	Replicas(edgeProxy string) []snapshot.ReplicaStatus
	// EdgeProxyEvents names the EdgeProxies whose connected replicas or their versions changed.
	EdgeProxyEvents() <-chan event.GenericEvent
}

var _ ProxyReplicas = (*snapshot.Tracker)(nil)

// maxListedProxies caps status.proxies (the CRD's MaxItems).
const maxListedProxies = 100

// EdgeProxyConditionSnapshotRejected is True while a connected proxy replica has refused (NACKed)
// the latest snapshot version it was sent and keeps serving the version it acknowledged before:
// its message names every such replica, the version it refused, the one it serves, and why. It
// is set with config delivery only, beside kstatus's Ready, Reconciling and Stalled (the fleet
// itself is fine; its configuration is not what the operator computed).
const (
	EdgeProxyConditionSnapshotRejected edgev1alpha1.ConditionType   = "SnapshotRejected"
	EdgeProxyReasonRejectedByProxy     edgev1alpha1.ConditionReason = "RejectedByProxy"
	EdgeProxyReasonNoneRejected        edgev1alpha1.ConditionReason = "NoneRejected"
)

// maxNackReason caps each replica's refusal reason in the condition message.
const maxNackReason = 512

// snapshotRejected returns the SnapshotRejected condition's status, reason and message.
func snapshotRejected(rs []snapshot.ReplicaStatus) (bool, edgev1alpha1.ConditionReason, string) {
	var lines []string
	for _, r := range rs {
		if r.NackedVersion == "" || r.NackedVersion == r.AckedVersion {
			continue
		}
		serving := "nothing yet"
		if r.AckedVersion != "" {
			serving = r.AckedVersion
		}
		lines = append(lines, fmt.Sprintf("proxy %s refused snapshot %s and serves %s: %s",
			r.Pod, r.NackedVersion, serving, truncate(r.NackError, maxNackReason, "...")))
	}
	if len(lines) == 0 {
		return false, EdgeProxyReasonNoneRejected, "no connected proxy replica refuses the snapshots it was sent"
	}
	return true, EdgeProxyReasonRejectedByProxy, fmt.Sprintf("%d of %d connected proxy replicas refused a snapshot; %s",
		len(lines), len(rs), strings.Join(lines, "; "))
}

// connectedProxies turns the tracker's replicas into status entries (first maxListedProxies by
// pod name). Times are cut to seconds, what the API stores, so an unchanged set compares equal.
func connectedProxies(rs []snapshot.ReplicaStatus) []edgev1alpha1.ConnectedProxy {
	if len(rs) == 0 {
		return nil
	}
	out := make([]edgev1alpha1.ConnectedProxy, 0, min(len(rs), maxListedProxies))
	for _, r := range rs[:min(len(rs), maxListedProxies)] {
		p := edgev1alpha1.ConnectedProxy{Pod: r.Pod, Version: r.AckedVersion,
			ConnectedSince: metav1.NewTime(r.ConnectedSince.Truncate(time.Second))}
		if r.NackedVersion != r.AckedVersion {
			p.RejectedVersion = r.NackedVersion
		}
		out = append(out, p)
	}
	return out
}

// computeEdgeProxyStatus fills ep.Status from one reconcile's observations, following kstatus:
// exactly one of Ready=True, Reconciling=True or Stalled=True holds, and observedGeneration says
// which spec the conditions describe.
func computeEdgeProxyStatus(ep *edgev1alpha1.EdgeProxy, obs observed) {
	st := &ep.Status
	gen := ep.Generation
	st.ObservedGeneration = gen
	st.AcceptedRoutes, st.RejectedRoutes = obs.accepted, obs.rejected
	if d := obs.deployment; d != nil {
		st.Replicas, st.ReadyReplicas = d.Status.Replicas, d.Status.ReadyReplicas
	}
	if obs.service != nil {
		st.Addresses = serviceAddresses(obs.service)
	}
	if obs.proxies != nil {
		rs := *obs.proxies
		st.ConnectedProxies = int32(len(rs)) //nolint:gosec // bounded by open streams
		st.Proxies = connectedProxies(rs)
		rejected, reason, msg := snapshotRejected(rs)
		setCondition(&st.Conditions, EdgeProxyConditionSnapshotRejected, boolStatus(rejected), reason, msg, gen)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, string(EdgeProxyConditionSnapshotRejected))
	}

	var (
		ready   bool
		reason  edgev1alpha1.ConditionReason
		message string
	)
	stalled := obs.stall
	switch {
	case stalled != nil:
		reason, message = stalled.reason, stalled.message
	case obs.transient != nil:
		reason, message = edgev1alpha1.EdgeProxyReasonApplyFailed, obs.transient.Error()
	default:
		var s *stall
		ready, s, message = deploymentProgress(obs.deployment)
		reason = edgev1alpha1.EdgeProxyReasonProgressing
		if s != nil {
			stalled, reason, message = s, s.reason, s.message
		}
		if ready {
			reason = edgev1alpha1.EdgeProxyReasonAvailable
			if obs.service != nil && obs.service.Spec.Type == corev1.ServiceTypeLoadBalancer && len(obs.service.Status.LoadBalancer.Ingress) == 0 {
				message += "; the load balancer has no address yet"
			}
		}
	}
	// Reasons of the false conditions repeat the true one's, so every condition reads sensibly alone.
	setCondition(&st.Conditions, edgev1alpha1.EdgeProxyConditionReady, boolStatus(ready), reason, message, gen)
	setCondition(&st.Conditions, edgev1alpha1.EdgeProxyConditionStalled, boolStatus(stalled != nil), reason, stallMessage(stalled), gen)
	reconciling := !ready && stalled == nil
	recMsg := ""
	if reconciling {
		recMsg = message
	}
	setCondition(&st.Conditions, edgev1alpha1.EdgeProxyConditionReconciling, boolStatus(reconciling), reason, recMsg, gen)
}

func stallMessage(s *stall) string {
	if s == nil {
		return ""
	}
	return s.message
}

// deploymentProgress says whether the proxy Deployment has rolled out completely: the Deployment
// controller saw the latest template, every desired replica runs it and is ready, and no old
// replica is left. A Deployment past its progress deadline is stalled.
func deploymentProgress(d *appsv1.Deployment) (ready bool, stalled *stall, message string) {
	if d == nil {
		return false, nil, "waiting for the proxy Deployment"
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return false, &stall{edgev1alpha1.EdgeProxyReasonProgressDeadlineExceeded,
				fmt.Sprintf("Deployment %s/%s: %s", d.Namespace, d.Name, c.Message)}, ""
		}
	}
	desired := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return false, nil, fmt.Sprintf("waiting for the Deployment controller to observe generation %d of Deployment %s/%s", d.Generation, d.Namespace, d.Name)
	case s.UpdatedReplicas < desired:
		return false, nil, fmt.Sprintf("rolling out: %d of %d proxy replicas updated", s.UpdatedReplicas, desired)
	case s.Replicas > s.UpdatedReplicas:
		return false, nil, fmt.Sprintf("rolling out: %d old proxy replicas pending termination", s.Replicas-s.UpdatedReplicas)
	case s.ReadyReplicas < desired:
		return false, nil, fmt.Sprintf("%d of %d proxy replicas ready", s.ReadyReplicas, desired)
	}
	return true, nil, fmt.Sprintf("%d of %d proxy replicas ready", s.ReadyReplicas, desired)
}

// serviceAddresses are where the fleet is reachable: the load balancer's addresses, else the
// Service's cluster IPs.
func serviceAddresses(svc *corev1.Service) []edgev1alpha1.EdgeProxyAddress {
	var out []edgev1alpha1.EdgeProxyAddress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, edgev1alpha1.EdgeProxyAddress{Type: "IPAddress", Value: in.IP})
		}
		if in.Hostname != "" {
			out = append(out, edgev1alpha1.EdgeProxyAddress{Type: "Hostname", Value: in.Hostname})
		}
	}
	if len(out) > 0 {
		return out
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if net.ParseIP(ip) != nil {
			out = append(out, edgev1alpha1.EdgeProxyAddress{Type: "IPAddress", Value: ip})
		}
	}
	return out
}

func metav1ControllerOf(o metav1.Object) *metav1.OwnerReference { return metav1.GetControllerOf(o) }

func ptrUID(u types.UID) *types.UID { return &u }
