package main

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/test/e2e/harness"
)

// ensureGatewayClass creates Portico's GatewayClass, waits until the operator accepts it, and
// returns the features its status lists: the one source of truth for what the suite tests.
func ensureGatewayClass(ctx context.Context, c *harness.Cluster, name string) ([]string, error) {
	gc := &gwapiv1.GatewayClass{
		// HTTPRouteServiceTypes (core) wants hand-written EndpointSlices of selectorless Services
		// served, which Portico does only where the platform team opts in: this class does, as a
		// platform whose tenants may aim the proxies at their own endpoints would
		// (docs/gateway-api.md, "Backends: EndpointSlices").
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			edgev1alpha1.AnnotationAllowUnmanagedEndpointSlices: "true"}},
		Spec: gwapiv1.GatewayClassSpec{
			ControllerName: gwapiv1.GatewayController(edgev1alpha1.GatewayControllerName),
			Description:    ptr("Portico (conformance run)"),
		},
	}
	if err := c.Client.Create(ctx, gc); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create GatewayClass %s: %w", name, err)
	}
	var features []string
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		cur := &gwapiv1.GatewayClass{}
		if err := c.Client.Get(ctx, types.NamespacedName{Name: name}, cur); err != nil {
			return false, nil
		}
		cond := meta.FindStatusCondition(cur.Status.Conditions, string(gwapiv1.GatewayClassConditionStatusAccepted))
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != cur.Generation {
			last = fmt.Sprintf("Accepted condition: %+v", cond)
			return false, nil
		}
		features = features[:0]
		for _, f := range cur.Status.SupportedFeatures {
			features = append(features, string(f.Name))
		}
		last = "status.supportedFeatures is empty"
		return len(features) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("GatewayClass %s not accepted with supported features: %s: %w", name, last, err)
	}
	return features, nil
}

func ptr[T any](v T) *T { return &v }
