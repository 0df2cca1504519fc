package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// Plain Go tests (no control plane): how observations map to conditions and to kstatus.

func deploymentWith(replicas int32, s appsv1.DeploymentStatus) *appsv1.Deployment {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}, Status: s}
	d.Generation = 3
	return d
}

func TestComputeEdgeProxyStatusKstatus(t *testing.T) {
	done := appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	cases := []struct {
		name   string
		obs    observed
		want   status.Status
		reason edgev1alpha1.ConditionReason
	}{
		{"no deployment yet", observed{}, status.InProgressStatus, edgev1alpha1.EdgeProxyReasonProgressing},
		{"rolled out", observed{deployment: deploymentWith(2, done)}, status.CurrentStatus, edgev1alpha1.EdgeProxyReasonAvailable},
		{"scaled to zero", observed{deployment: deploymentWith(0, appsv1.DeploymentStatus{ObservedGeneration: 3})}, status.CurrentStatus, edgev1alpha1.EdgeProxyReasonAvailable},
		{"old generation", observed{deployment: deploymentWith(2, func() appsv1.DeploymentStatus { s := done; s.ObservedGeneration = 2; return s }())},
			status.InProgressStatus, edgev1alpha1.EdgeProxyReasonProgressing},
		{"old pods left", observed{deployment: deploymentWith(2, func() appsv1.DeploymentStatus { s := done; s.Replicas = 3; return s }())},
			status.InProgressStatus, edgev1alpha1.EdgeProxyReasonProgressing},
		{"not ready", observed{deployment: deploymentWith(2, func() appsv1.DeploymentStatus { s := done; s.ReadyReplicas = 1; return s }())},
			status.InProgressStatus, edgev1alpha1.EdgeProxyReasonProgressing},
		{"stalled", observed{stall: &stall{edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing, "gone"}}, status.FailedStatus, edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing},
		{"transient error", observed{transient: errors.New("etcd is slow")}, status.InProgressStatus, edgev1alpha1.EdgeProxyReasonApplyFailed},
		{"progress deadline", observed{deployment: deploymentWith(2, appsv1.DeploymentStatus{ObservedGeneration: 3, Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		}}})}, status.FailedStatus, edgev1alpha1.EdgeProxyReasonProgressDeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := &edgev1alpha1.EdgeProxy{}
			ep.Generation = 7
			computeEdgeProxyStatus(ep, tc.obs)
			if ep.Status.ObservedGeneration != 7 {
				t.Errorf("observedGeneration = %d", ep.Status.ObservedGeneration)
			}
			trues := 0
			for _, c := range ep.Status.Conditions {
				if c.ObservedGeneration != 7 || c.Reason != string(tc.reason) {
					t.Errorf("condition %s = %s/%s gen %d, want reason %s gen 7", c.Type, c.Status, c.Reason, c.ObservedGeneration, tc.reason)
				}
				if c.Status == metav1.ConditionTrue {
					trues++
				}
			}
			if len(ep.Status.Conditions) != 3 || trues != 1 {
				t.Errorf("want Ready, Reconciling, Stalled with exactly one True: %+v", ep.Status.Conditions)
			}
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ep)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: m}
			u.SetGroupVersionKind(edgev1alpha1.GroupVersion.WithKind("EdgeProxy"))
			res, err := status.Compute(u)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, tc.want)
			}
		})
	}
}

func TestComputeEdgeProxyStatusKeepsTransitionTimes(t *testing.T) {
	ep := &edgev1alpha1.EdgeProxy{}
	computeEdgeProxyStatus(ep, observed{})
	before := meta.FindStatusCondition(ep.Status.Conditions, "Ready").LastTransitionTime
	ep.Status.Conditions[0].LastTransitionTime = metav1.NewTime(before.Add(-3600e9))
	old := ep.Status.DeepCopy()
	computeEdgeProxyStatus(ep, observed{})
	if !equalStatus(old, &ep.Status) {
		t.Errorf("recomputing the same observation changed the status:\n%+v\n%+v", old, ep.Status)
	}
}

func equalStatus(a, b *edgev1alpha1.EdgeProxyStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i] != b.Conditions[i] {
			return false
		}
	}
	return a.ObservedGeneration == b.ObservedGeneration
}

func TestServiceAddresses(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7", ClusterIPs: []string{"10.0.0.7", "fd00::7"}}}
	got := serviceAddresses(svc)
	if len(got) != 2 || got[0].Value != "10.0.0.7" || got[1].Value != "fd00::7" {
		t.Errorf("cluster IPs: %+v", got)
	}
	svc.Spec.ClusterIPs, svc.Spec.ClusterIP = nil, "None"
	if got := serviceAddresses(svc); len(got) != 0 {
		t.Errorf("headless: %+v", got)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.1", Hostname: "lb.example.net"}}
	got = serviceAddresses(svc)
	if len(got) != 2 || got[0] != (edgev1alpha1.EdgeProxyAddress{Type: "IPAddress", Value: "203.0.113.1"}) ||
		got[1] != (edgev1alpha1.EdgeProxyAddress{Type: "Hostname", Value: "lb.example.net"}) {
		t.Errorf("load balancer: %+v", got)
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	got := eventNote(long)
	if len(got) > maxEventNote || !utf8.ValidString(got) || !strings.HasSuffix(got, "... (see status)") {
		t.Errorf("eventNote: %d bytes, valid %v, %q", len(got), utf8.ValidString(got), got[len(got)-20:])
	}
	if eventNote("short") != "short" {
		t.Error("short notes are kept")
	}
}

func TestComputeEdgeProxyStatusConnectedProxies(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	var rs []snapshot.ReplicaStatus
	for i := range maxListedProxies + 5 {
		rs = append(rs, snapshot.ReplicaStatus{Pod: fmt.Sprintf("p%03d", i), AckedVersion: "v2", ConnectedSince: since})
	}
	rs[1].NackedVersion, rs[1].NackError = "v3", "bad"
	rs[2].NackedVersion = "v2" // refused, then acknowledged: no longer rejected
	ep := &edgev1alpha1.EdgeProxy{}
	computeEdgeProxyStatus(ep, observed{proxies: &rs})
	st := ep.Status
	if st.ConnectedProxies != int32(len(rs)) || len(st.Proxies) != maxListedProxies {
		t.Fatalf("connectedProxies=%d, %d listed", st.ConnectedProxies, len(st.Proxies))
	}
	p := st.Proxies[1]
	if p.Pod != "p001" || p.Version != "v2" || p.RejectedVersion != "v3" || st.Proxies[2].RejectedVersion != "" {
		t.Fatalf("proxies = %+v", st.Proxies[:3])
	}
	if !p.ConnectedSince.Time.Equal(since.Truncate(time.Second)) {
		t.Fatalf("connectedSince = %v, want whole seconds", p.ConnectedSince)
	}
	c := meta.FindStatusCondition(st.Conditions, string(EdgeProxyConditionSnapshotRejected))
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(EdgeProxyReasonRejectedByProxy) ||
		!strings.Contains(c.Message, "proxy p001 refused snapshot v3 and serves v2: bad") || strings.Contains(c.Message, "p002") ||
		!strings.HasPrefix(c.Message, "1 of 105 connected proxy replicas") {
		t.Fatalf("SnapshotRejected = %+v", c)
	}
	rs[1].NackedVersion, rs[1].NackError = "", ""
	computeEdgeProxyStatus(ep, observed{proxies: &rs})
	if c := meta.FindStatusCondition(ep.Status.Conditions, string(EdgeProxyConditionSnapshotRejected)); c == nil ||
		c.Status != metav1.ConditionFalse || c.Reason != string(EdgeProxyReasonNoneRejected) {
		t.Fatalf("SnapshotRejected after the replica accepted: %+v", c)
	}
	computeEdgeProxyStatus(ep, observed{})
	if meta.FindStatusCondition(ep.Status.Conditions, string(EdgeProxyConditionSnapshotRejected)) != nil {
		t.Fatal("SnapshotRejected without config delivery")
	}
	ep = &edgev1alpha1.EdgeProxy{}
	computeEdgeProxyStatus(ep, observed{})
	if ep.Status.ConnectedProxies != 0 || ep.Status.Proxies != nil {
		t.Fatalf("without config delivery: %+v", ep.Status)
	}
}
