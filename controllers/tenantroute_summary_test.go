package controllers

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Plain Go test (no control plane): every combination of route conditions maps to the summary
// conditions, and kstatus computes the expected status from them.
func TestSetRouteSummaryKstatus(t *testing.T) {
	const gen = 4
	c := func(t edgev1alpha1.ConditionType, s metav1.ConditionStatus, r edgev1alpha1.ConditionReason) metav1.Condition {
		return metav1.Condition{Type: string(t), Status: s, Reason: string(r), Message: "m", ObservedGeneration: gen}
	}
	T, F := metav1.ConditionTrue, metav1.ConditionFalse
	accepted := c(edgev1alpha1.RouteConditionAccepted, T, edgev1alpha1.RouteReasonAccepted)
	resolved := c(edgev1alpha1.RouteConditionResolvedRefs, T, edgev1alpha1.RouteReasonResolvedRefs)
	issued := c(edgev1alpha1.RouteConditionCertificateReady, T, edgev1alpha1.RouteReasonCertificateIssued)
	noTLS := c(edgev1alpha1.RouteConditionCertificateReady, T, edgev1alpha1.RouteReasonNoTLS)
	programmed := c(edgev1alpha1.RouteConditionProgrammed, T, edgev1alpha1.RouteReasonProgrammed)
	pending := c(edgev1alpha1.RouteConditionProgrammed, F, edgev1alpha1.RouteReasonPending)
	stale := func(x metav1.Condition) metav1.Condition { x.ObservedGeneration = gen - 1; return x }
	translatedInvalid := c(edgev1alpha1.RouteConditionTranslated, F, edgev1alpha1.RouteReasonInvalid)

	cases := []struct {
		name   string
		conds  []metav1.Condition
		want   status.Status
		ready  metav1.ConditionStatus
		reason edgev1alpha1.ConditionReason // of Ready
	}{
		{"programmed", []metav1.Condition{accepted, resolved, issued, programmed}, status.CurrentStatus, T, edgev1alpha1.RouteReasonReady},
		{"programmed, no TLS", []metav1.Condition{accepted, resolved, noTLS, programmed}, status.CurrentStatus, T, edgev1alpha1.RouteReasonReady},
		{"programmed, no CertificateReady", []metav1.Condition{accepted, resolved, programmed}, status.CurrentStatus, T, edgev1alpha1.RouteReasonReady},
		{"programmed, external certificate ready", []metav1.Condition{accepted, resolved,
			c(edgev1alpha1.RouteConditionCertificateReady, T, edgev1alpha1.RouteReasonCertificateManagedExternally), programmed}, status.CurrentStatus, T, edgev1alpha1.RouteReasonReady},
		{"programmed, translation of the latest source failed", []metav1.Condition{accepted, resolved, noTLS, programmed, translatedInvalid}, status.CurrentStatus, T, edgev1alpha1.RouteReasonReady},
		{"waiting for the proxies", []metav1.Condition{accepted, resolved, issued, pending}, status.InProgressStatus, F, edgev1alpha1.RouteReasonPending},
		{"no Programmed yet", []metav1.Condition{accepted, resolved, issued}, status.InProgressStatus, F, edgev1alpha1.RouteReasonProgressing},
		{"Programmed of an older generation", []metav1.Condition{accepted, resolved, issued, stale(programmed)}, status.InProgressStatus, F, edgev1alpha1.RouteReasonProgressing},
		{"Accepted of an older generation", []metav1.Condition{stale(accepted), resolved, issued, programmed}, status.InProgressStatus, F, edgev1alpha1.RouteReasonProgressing},
		{"refusal of an older generation", []metav1.Condition{stale(c(edgev1alpha1.RouteConditionAccepted, F, edgev1alpha1.RouteReasonHostnameConflict)), resolved, programmed}, status.InProgressStatus, F, edgev1alpha1.RouteReasonProgressing},
		{"certificate pending", []metav1.Condition{accepted, resolved,
			c(edgev1alpha1.RouteConditionCertificateReady, F, edgev1alpha1.RouteReasonCertificatePending), programmed}, status.InProgressStatus, F, edgev1alpha1.RouteReasonPending},
		{"external certificate not ready", []metav1.Condition{accepted, resolved,
			c(edgev1alpha1.RouteConditionCertificateReady, F, edgev1alpha1.RouteReasonCertificateManagedExternally), programmed}, status.InProgressStatus, F, edgev1alpha1.RouteReasonProgressing},
		{"certificate failed", []metav1.Condition{accepted, resolved,
			c(edgev1alpha1.RouteConditionCertificateReady, F, edgev1alpha1.RouteReasonInvalidCertificate), programmed}, status.FailedStatus, F, edgev1alpha1.RouteReasonInvalidCertificate},
		{"hostname conflict", []metav1.Condition{c(edgev1alpha1.RouteConditionAccepted, F, edgev1alpha1.RouteReasonHostnameConflict),
			resolved, issued, pending}, status.FailedStatus, F, edgev1alpha1.RouteReasonHostnameConflict},
		{"hostname not allowed, backend missing", []metav1.Condition{c(edgev1alpha1.RouteConditionAccepted, F, edgev1alpha1.RouteReasonHostnameNotAllowed),
			c(edgev1alpha1.RouteConditionResolvedRefs, F, edgev1alpha1.RouteReasonBackendNotFound), pending}, status.FailedStatus, F, edgev1alpha1.RouteReasonHostnameNotAllowed},
		{"backend missing", []metav1.Condition{accepted, c(edgev1alpha1.RouteConditionResolvedRefs, F, edgev1alpha1.RouteReasonBackendNotFound),
			noTLS, programmed}, status.FailedStatus, F, edgev1alpha1.RouteReasonBackendNotFound},
		{"no ready endpoints", []metav1.Condition{accepted, c(edgev1alpha1.RouteConditionResolvedRefs, F, edgev1alpha1.RouteReasonNoReadyEndpoints),
			noTLS, programmed}, status.InProgressStatus, F, edgev1alpha1.RouteReasonNoReadyEndpoints},
		{"no ready endpoints and a failed certificate", []metav1.Condition{accepted, c(edgev1alpha1.RouteConditionResolvedRefs, F, edgev1alpha1.RouteReasonNoReadyEndpoints),
			c(edgev1alpha1.RouteConditionCertificateReady, F, edgev1alpha1.RouteReasonInvalidCertificate), programmed}, status.FailedStatus, F, edgev1alpha1.RouteReasonInvalidCertificate},
		{"invalid certificate Secret", []metav1.Condition{accepted, c(edgev1alpha1.RouteConditionResolvedRefs, F, edgev1alpha1.RouteReasonInvalidCertificate),
			pending}, status.FailedStatus, F, edgev1alpha1.RouteReasonInvalidCertificate},
		{"rejected by the proxies", []metav1.Condition{accepted, resolved, issued,
			c(edgev1alpha1.RouteConditionProgrammed, F, edgev1alpha1.RouteReasonRejected)}, status.FailedStatus, F, edgev1alpha1.RouteReasonRejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conds := append([]metav1.Condition(nil), tc.conds...)
			if !setRouteSummary(&conds, gen) {
				t.Fatal("setRouteSummary reported no change on conditions without a summary")
			}
			ready := meta.FindStatusCondition(conds, string(edgev1alpha1.RouteConditionReady))
			if ready == nil || ready.Status != tc.ready || ready.Reason != string(tc.reason) || ready.ObservedGeneration != gen {
				t.Errorf("Ready = %+v, want %s/%s", ready, tc.ready, tc.reason)
			}
			stalled := meta.IsStatusConditionTrue(conds, string(edgev1alpha1.RouteConditionStalled))
			reconciling := meta.IsStatusConditionTrue(conds, string(edgev1alpha1.RouteConditionReconciling))
			if stalled != (tc.want == status.FailedStatus) || reconciling != (tc.want == status.InProgressStatus) {
				t.Errorf("Stalled=%v Reconciling=%v for kstatus %s", stalled, reconciling, tc.want)
			}
			if got := computeRoute(t, conds, gen); got != tc.want {
				t.Errorf("kstatus computes %s, want %s", got, tc.want)
			}
			// Idempotent: a second pass changes nothing, so writers skip the status write.
			if setRouteSummary(&conds, gen) {
				t.Error("second setRouteSummary reported a change")
			}
			// The other conditions are left alone.
			for _, in := range tc.conds {
				if out := meta.FindStatusCondition(conds, in.Type); out == nil || *out != in {
					t.Errorf("condition %s changed: %+v", in.Type, out)
				}
			}
		})
	}
}

// A route going from stalled to waiting to ready drops the abnormal-true conditions it no longer has.
func TestSetRouteSummaryTransitions(t *testing.T) {
	const gen = 2
	mk := func(acceptedStatus metav1.ConditionStatus, reason edgev1alpha1.ConditionReason, programmed metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{
			{Type: string(edgev1alpha1.RouteConditionAccepted), Status: acceptedStatus, Reason: string(reason), ObservedGeneration: gen},
			{Type: string(edgev1alpha1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue, Reason: "ResolvedRefs", ObservedGeneration: gen},
			{Type: string(edgev1alpha1.RouteConditionProgrammed), Status: programmed, Reason: "x", ObservedGeneration: gen},
		}
	}
	conds := mk(metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict, metav1.ConditionFalse)
	setRouteSummary(&conds, gen)
	for _, step := range []struct {
		conds []metav1.Condition
		want  status.Status
	}{
		{mk(metav1.ConditionTrue, edgev1alpha1.RouteReasonAccepted, metav1.ConditionFalse), status.InProgressStatus},
		{mk(metav1.ConditionTrue, edgev1alpha1.RouteReasonAccepted, metav1.ConditionTrue), status.CurrentStatus},
		{mk(metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict, metav1.ConditionFalse), status.FailedStatus},
	} {
		for _, c := range step.conds {
			meta.SetStatusCondition(&conds, c)
		}
		setRouteSummary(&conds, gen)
		if got := computeRoute(t, conds, gen); got != step.want {
			t.Fatalf("kstatus computes %s, want %s (conditions %+v)", got, step.want, conds)
		}
		n := 0
		for _, c := range conds {
			if c.Type == string(edgev1alpha1.RouteConditionStalled) || c.Type == string(edgev1alpha1.RouteConditionReconciling) {
				n++
			}
		}
		if want := map[bool]int{true: 0, false: 1}[step.want == status.CurrentStatus]; n != want {
			t.Errorf("%d abnormal-true conditions for %s, want %d", n, step.want, want)
		}
	}
}

func computeRoute(t *testing.T, conds []metav1.Condition, gen int64) status.Status {
	t.Helper()
	tr := &edgev1alpha1.TenantRoute{}
	tr.APIVersion, tr.Kind = edgev1alpha1.GroupVersion.String(), "TenantRoute"
	tr.Name, tr.Namespace, tr.Generation = "r", "ns", gen
	tr.Status.ObservedGeneration = gen
	tr.Status.Conditions = conds
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// The Argo CD samples of docs/gitops (which test/gitops feeds to kstatus and to the Lua health
// check) carry the summary conditions the operator would write for their other conditions.
func TestRouteSummaryOfGitopsSamples(t *testing.T) {
	files, _ := filepath.Glob("../docs/gitops/argocd/resource_customizations/edge.portico.dev/TenantRoute/testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no TenantRoute samples")
	}
	summary := map[string]bool{string(edgev1alpha1.RouteConditionReady): true,
		string(edgev1alpha1.RouteConditionReconciling): true, string(edgev1alpha1.RouteConditionStalled): true}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := &edgev1alpha1.TenantRoute{}
		if err := yaml.UnmarshalStrict(data, tr); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(tr.Status.Conditions) == 0 {
			continue
		}
		var others []metav1.Condition
		for _, c := range tr.Status.Conditions {
			if !summary[c.Type] {
				others = append(others, c)
			}
		}
		gen := tr.Status.ObservedGeneration
		setRouteSummary(&others, gen)
		for typ := range summary {
			want, got := meta.FindStatusCondition(tr.Status.Conditions, typ), meta.FindStatusCondition(others, typ)
			if (want == nil) != (got == nil) || want != nil && (want.Status != got.Status || want.Reason != got.Reason ||
				want.Message != got.Message || want.ObservedGeneration != got.ObservedGeneration) {
				t.Errorf("%s: %s is %+v, the operator would write %+v", filepath.Base(f), typ, want, got)
			}
		}
	}
}
