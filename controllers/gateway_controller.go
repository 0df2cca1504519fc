package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways/finalizers,verbs=update
// +kubebuilder:rbac:groups=edge.portico.dev,resources=edgeproxies,verbs=get;list;watch;create;update;patch;delete

// GatewayReconciler serves the Gateways of Portico's GatewayClasses: it creates the EdgeProxy of a
// Gateway that names none (and deletes it with the Gateway, through a finalizer), and writes the
// Gateway's status from controllers/translate's GatewayStatus and what it observes of the EdgeProxy.
type GatewayReconciler struct {
	client.Client
	// APIReader reads the listeners' TLS Secrets: the operator caches Secrets' metadata only.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ReferenceGrants is false when the cluster does not serve them.
	ReferenceGrants bool
}

// Reconcile provisions the Gateway's generated EdgeProxy when it needs one, then writes status.
func (r *GatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gw := &gwapiv1.Gateway{}
	if err := r.Get(ctx, req.NamespacedName, gw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	classes, eps, err := listClassesAndProxies(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	proxy, _ := translate.ResolveGatewayProxy(gw, classes, eps)
	if !gw.DeletionTimestamp.IsZero() || proxy == nil || !proxy.Generated {
		// Gone, no longer Portico's, or served by a named EdgeProxy: no generated EdgeProxy.
		if err := r.releaseGenerated(ctx, gw); err != nil || !gw.DeletionTimestamp.IsZero() || proxy == nil {
			return ctrl.Result{}, err
		}
	}
	var provisionErr string
	if proxy.Generated {
		if controllerutil.AddFinalizer(gw, gatewayFinalizer) {
			if err := r.Update(ctx, gw); err != nil {
				if apierrors.IsConflict(err) {
					return ctrl.Result{RequeueAfter: conflictRetry}, nil
				}
				return ctrl.Result{}, client.IgnoreNotFound(err)
			}
		}
		if provisionErr, err = r.provision(ctx, gw, classes, eps); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.writeStatus(ctx, gw, classes, eps, proxy.Name, provisionErr); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// isGeneratedFor reports whether an EdgeProxy is the one Portico generated for this Gateway.
func isGeneratedFor(ep *edgev1alpha1.EdgeProxy, gw *gwapiv1.Gateway) bool {
	return ep.Name == translate.GatewayEdgeProxyName(gw) && ep.Labels[translate.LabelGatewayNamespace] == gw.Namespace &&
		ep.Labels[translate.LabelGatewayName] != ""
}

// provision applies the generated EdgeProxy. It returns why it cannot (yet) be applied, for the
// Gateway's Programmed condition: the Gateway lacks what an EdgeProxy needs, or an EdgeProxy of
// that name exists that Portico did not generate for this Gateway.
func (r *GatewayReconciler) provision(ctx context.Context, gw *gwapiv1.Gateway, classes []gwapiv1.GatewayClass, eps []edgev1alpha1.EdgeProxy) (string, error) {
	name := translate.GatewayEdgeProxyName(gw)
	for i := range eps {
		if eps[i].Name == name && !isGeneratedFor(&eps[i], gw) {
			return fmt.Sprintf("EdgeProxy %s exists and was not generated for this Gateway; Portico does not take it over", name), nil
		}
	}
	var namespaces corev1.NamespaceList
	if err := r.List(ctx, &namespaces); err != nil {
		return "", fmt.Errorf("list namespaces: %w", err)
	}
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, client.MatchingFields{indexRouteEdgeProxy: name}); err != nil {
		return "", fmt.Errorf("list tenantroutes of edgeproxy %s: %w", name, err)
	}
	var hosts []edgev1alpha1.Hostname
	for _, tr := range routes.Items {
		if tr.Labels[translate.LabelGatewayNamespace] == gw.Namespace {
			hosts = append(hosts, tr.Spec.Hostnames...)
		}
	}
	ep, errs := translate.GatewayEdgeProxy(translate.GatewayEdgeProxyInput{
		Gateway: gw, GatewayClasses: classes, Namespaces: namespaces.Items, RouteHostnames: hosts,
	})
	if ep == nil {
		return "", nil
	}
	if len(errs) > 0 {
		return fmt.Sprintf("cannot create EdgeProxy %s: %s", name, errs.ToAggregate().Error()), nil
	}
	infrastructurePodMetadata(ep, gw)
	if err := applyObject(ctx, r.Client, ep); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return fmt.Sprintf("cannot create EdgeProxy %s: %v", name, err), nil
		}
		return "", fmt.Errorf("apply edgeproxy %s: %w", name, err)
	}
	return "", nil
}

// infrastructurePodMetadata gives the proxy pods the Gateway's spec.infrastructure labels and
// annotations, as the Gateway API asks for the resources created for a Gateway. GatewayEdgeProxy
// puts them on the EdgeProxy itself; the pods are the other place an EdgeProxy has for them (its
// Service, ServiceAccount and other fleet objects carry Portico's labels only). Portico's selector
// labels always win over them (render).
func infrastructurePodMetadata(ep *edgev1alpha1.EdgeProxy, gw *gwapiv1.Gateway) {
	inf := gw.Spec.Infrastructure
	if inf == nil || len(inf.Labels) == 0 && len(inf.Annotations) == 0 {
		return
	}
	if ep.Spec.Deployment == nil {
		ep.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{}
	}
	d := ep.Spec.Deployment
	for k, v := range inf.Labels {
		if d.PodLabels == nil {
			d.PodLabels = map[string]string{}
		}
		d.PodLabels[string(k)] = string(v)
	}
	for k, v := range inf.Annotations {
		if d.PodAnnotations == nil {
			d.PodAnnotations = map[string]string{}
		}
		d.PodAnnotations[string(k)] = string(v)
	}
}

// releaseGenerated deletes the EdgeProxy generated for the Gateway, if any, and then drops the
// finalizer.
func (r *GatewayReconciler) releaseGenerated(ctx context.Context, gw *gwapiv1.Gateway) error {
	if !controllerutil.ContainsFinalizer(gw, gatewayFinalizer) {
		return nil
	}
	ep := &edgev1alpha1.EdgeProxy{}
	err := r.Get(ctx, types.NamespacedName{Name: translate.GatewayEdgeProxyName(gw)}, ep)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get edgeproxy %s: %w", translate.GatewayEdgeProxyName(gw), err)
	case isGeneratedFor(ep, gw):
		if err := r.Delete(ctx, ep, client.Preconditions{UID: ptrUID(ep.UID)}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete edgeproxy %s: %w", ep.Name, err)
		}
		log.FromContext(ctx).Info("deleted the EdgeProxy generated for the Gateway", "edgeProxy", ep.Name)
	}
	controllerutil.RemoveFinalizer(gw, gatewayFinalizer)
	if err := r.Update(ctx, gw); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of gateway %s/%s: %w", gw.Namespace, gw.Name, err)
	}
	return nil
}

// writeStatus computes the Gateway's status and writes it when it changed.
func (r *GatewayReconciler) writeStatus(ctx context.Context, gw *gwapiv1.Gateway, classes []gwapiv1.GatewayClass,
	eps []edgev1alpha1.EdgeProxy, proxyName, provisionErr string,
) error {
	in := translate.GatewayStatusInput{Gateway: gw, GatewayClasses: classes, EdgeProxies: eps}
	for i := range eps {
		if ep := &eps[i]; ep.Name == proxyName {
			in.EdgeProxyReady = edgeProxyReady(ep)
			in.Addresses = gatewayAddresses(ep)
		}
	}
	var routes gwapiv1.HTTPRouteList
	if err := r.List(ctx, &routes, client.MatchingFields{indexHTTPRouteParent: client.ObjectKeyFromObject(gw).String()}); err != nil {
		return fmt.Errorf("list httproutes of gateway: %w", err)
	}
	in.Routes = routes.Items
	var namespaces corev1.NamespaceList
	if err := r.List(ctx, &namespaces); err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	in.Namespaces = namespaces.Items
	secrets, grantNS, err := gatewayCertificates(ctx, r.APIReader, gw)
	if err != nil {
		return err
	}
	in.Secrets = secrets
	nsSet := map[string]bool{}
	for _, n := range grantNS {
		nsSet[n] = true
	}
	if in.ReferenceGrants, err = listGrants(ctx, r.Client, r.ReferenceGrants, nsSet); err != nil {
		return err
	}
	res := translate.GatewayStatus(in)
	if res == nil {
		return nil
	}
	want := res.Status
	if provisionErr != "" {
		// GatewayStatus waits for an EdgeProxy it cannot know will never come: say why.
		if c := meta.FindStatusCondition(want.Conditions, string(gwapiv1.GatewayConditionProgrammed)); c != nil && c.Status == metav1.ConditionFalse {
			c.Reason, c.Message = string(gwapiv1.GatewayReasonInvalid), truncate(provisionErr, maxConditionMessage, "...")
		}
	}
	orig := gw.DeepCopy()
	mergeGatewayStatus(&gw.Status, want)
	if equality.Semantic.DeepEqual(orig.Status, gw.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, gw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status of gateway %s/%s: %w", gw.Namespace, gw.Name, err)
	}
	r.recordTransitions(orig, gw)
	return nil
}

// recordTransitions records an Event when Accepted or Programmed turns False, or back to True.
func (r *GatewayReconciler) recordTransitions(before, after *gwapiv1.Gateway) {
	for _, t := range []gwapiv1.GatewayConditionType{gwapiv1.GatewayConditionAccepted, gwapiv1.GatewayConditionProgrammed} {
		was := meta.FindStatusCondition(before.Status.Conditions, string(t))
		now := meta.FindStatusCondition(after.Status.Conditions, string(t))
		if now == nil || was != nil && was.Status == now.Status && was.Reason == now.Reason {
			continue
		}
		switch {
		case now.Status == metav1.ConditionFalse && now.Reason != string(gwapiv1.GatewayReasonPending):
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, now.Reason, eventActionProvision, "%s", eventNote(now.Message))
		case now.Status == metav1.ConditionTrue && was != nil && was.Status == metav1.ConditionFalse:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, now.Reason, eventActionProvision, "%s", eventNote(now.Message))
		}
	}
}

// mergeGatewayStatus sets the computed status, keeping the transition times of conditions whose
// status did not change (meta.SetStatusCondition), listener by listener.
func mergeGatewayStatus(st *gwapiv1.GatewayStatus, want gwapiv1.GatewayStatus) {
	st.Conditions = mergeConditions(st.Conditions, want.Conditions)
	st.Addresses = want.Addresses
	listeners := make([]gwapiv1.ListenerStatus, 0, len(want.Listeners))
	for _, l := range want.Listeners {
		var prev []metav1.Condition
		for _, old := range st.Listeners {
			if old.Name == l.Name {
				prev = old.Conditions
				break
			}
		}
		l.Conditions = mergeConditions(prev, l.Conditions)
		if l.SupportedKinds == nil {
			l.SupportedKinds = []gwapiv1.RouteGroupKind{}
		}
		listeners = append(listeners, l)
	}
	st.Listeners = listeners
}

// mergeConditions returns want's conditions in want's order, with the transition times of prev's
// conditions of the same type and status. Conditions of other types in prev are dropped: the
// computed status is complete.
func mergeConditions(prev, want []metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(want))
	for _, c := range want {
		if p := meta.FindStatusCondition(prev, c.Type); p != nil && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
		}
		meta.SetStatusCondition(&out, c)
	}
	return out
}

// edgeProxyReady: the EdgeProxy is Ready for its current generation.
func edgeProxyReady(ep *edgev1alpha1.EdgeProxy) bool {
	c := meta.FindStatusCondition(ep.Status.Conditions, string(edgev1alpha1.EdgeProxyConditionReady))
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == ep.Generation
}

// gatewayAddresses are the EdgeProxy's Service addresses, for the Gateway's status.addresses.
func gatewayAddresses(ep *edgev1alpha1.EdgeProxy) []gwapiv1.GatewayStatusAddress {
	var out []gwapiv1.GatewayStatusAddress
	for _, a := range ep.Status.Addresses {
		t := gwapiv1.IPAddressType
		if a.Type == "Hostname" {
			t = gwapiv1.HostnameAddressType
		}
		out = append(out, gwapiv1.GatewayStatusAddress{Type: &t, Value: a.Value})
	}
	return out
}
