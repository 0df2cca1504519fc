package controllers

import (
	"context"
	"fmt"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// Options configure the operator's reconcilers.
type Options struct {
	// ProxyImage runs the proxy fleets unless an EdgeProxy overrides it: the operator's own image.
	ProxyImage string
	// OperatorNamespace is where the operator runs; the proxies' NetworkPolicy lets them reach it.
	OperatorNamespace string
	// OperatorPodLabels select the operator's pods in OperatorNamespace.
	OperatorPodLabels map[string]string
	// OperatorAddress is host:port of the operator's snapshot service, passed to the proxies as
	// --operator-address. Empty until config delivery exists.
	OperatorAddress string
	// MonitoringNamespace may scrape the proxies' admin port.
	MonitoringNamespace string
	// Snapshot, when set, runs config delivery (controllers/snapshot): the snapshot builder and
	// gRPC server in every replica, and Programmed from the proxies' ACKs.
	Snapshot *snapshot.Options
	// CertManagerIngressShimDisabled tells Portico that cert-manager runs without its ingress-shim
	// (--controllers=*,-ingress-shim). Portico then honours Ingresses' cert-manager.io/issuer and
	// cluster-issuer annotations itself; by default the shim, which acts on every annotated Ingress
	// whatever its class, is in charge of those and Portico creates no Certificate for them.
	CertManagerIngressShimDisabled bool
}

// DefaultOperatorPodLabels are the labels of the operator's pods in config/manager.
func DefaultOperatorPodLabels() map[string]string {
	return map[string]string{render.LabelName: render.AppName, render.LabelComponent: "operator"}
}

func (o Options) renderParams() render.Params {
	return render.Params{
		Image:               o.ProxyImage,
		OperatorAddress:     o.OperatorAddress,
		OperatorNamespace:   o.OperatorNamespace,
		OperatorPodLabels:   o.OperatorPodLabels,
		MonitoringNamespace: o.MonitoringNamespace,
	}
}

// NewScheme knows every kind the operator reads or writes.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, edgev1alpha1.AddToScheme, gwapiv1.Install, gwapiv1beta1.Install, cmv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CacheOptions limit what the operator caches: the proxy fleets' Deployments, ServiceAccounts,
// PodDisruptionBudgets, HorizontalPodAutoscalers and NetworkPolicies are watched only when they carry
// the edge.portico.dev/edgeproxy label, instead of every such object in the cluster. Services,
// IngressClasses and Namespaces stay unfiltered: routes use any Service as a backend.
func CacheOptions() cache.Options {
	req, err := labels.NewRequirement(edgev1alpha1.LabelEdgeProxy, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key
	}
	owned := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:                     owned,
		&corev1.ServiceAccount{}:                 owned,
		&policyv1.PodDisruptionBudget{}:          owned,
		&autoscalingv2.HorizontalPodAutoscaler{}: owned,
		&networkingv1.NetworkPolicy{}:            owned,
	}}
}

// SetupWithManager registers the field indexes and the EdgeProxy, TenantRoute, Ingress and Gateway
// API (GatewayClass, Gateway, HTTPRoute) reconcilers. Reconcilers added later (certificates, config
// delivery) register here too.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := registerIndexes(ctx, mgr); err != nil {
		return err
	}
	// Interfaces: a nil *snapshot.Tracker in them would not be nil.
	var programmed ProgrammedSource
	var proxies ProxyReplicas
	if opts.Snapshot != nil {
		so := *opts.Snapshot
		so.Recorder = mgr.GetEventRecorder(ReporterName)
		d, err := snapshot.Setup(ctx, mgr, so)
		if err != nil {
			return err
		}
		programmed, proxies = d.Tracker, d.Tracker
	}
	if err := (&EdgeProxyReconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder(ReporterName),
		Params:   opts.renderParams(),
		Proxies:  proxies,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the EdgeProxy reconciler: %w", err)
	}
	certs := certificatesServed(mgr)
	if certs {
		if err := registerCertificateIndex(ctx, mgr); err != nil {
			return fmt.Errorf("index certificates: %w", err)
		}
		if err := (&CertificateReconciler{
			Client:       mgr.GetClient(),
			ShimInCharge: !opts.CertManagerIngressShimDisabled,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up the Certificate reconciler: %w", err)
		}
	}
	if err := (&TenantRouteReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder(ReporterName),
		ReferenceGrants: referenceGrantsServed(mgr),
		Programmed:      programmed,
		Certificates:    certs,
		ShimInCharge:    !opts.CertManagerIngressShimDisabled,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the TenantRoute reconciler: %w", err)
	}
	if err := registerIngressIndexes(ctx, mgr); err != nil {
		return err
	}
	if err := (&IngressReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder(ReporterName),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Ingress reconciler: %w", err)
	}
	if err := setupGatewayAPI(ctx, mgr); err != nil {
		return err
	}
	return nil
}

// referenceGrantsServed reports whether the cluster serves Gateway API ReferenceGrants. Without
// them no cross-namespace reference is permitted and nothing watches them.
func referenceGrantsServed(mgr ctrl.Manager) bool {
	gk := schema.GroupKind{Group: gwapiv1beta1.GroupName, Kind: "ReferenceGrant"}
	if !mgr.GetScheme().Recognizes(gwapiv1beta1.SchemeGroupVersion.WithKind(gk.Kind)) {
		return false
	}
	_, err := mgr.GetRESTMapper().RESTMapping(gk, gwapiv1beta1.SchemeGroupVersion.Version)
	if err != nil && !meta.IsNoMatchError(err) {
		ctrl.Log.WithName(tenantRouteControllerName).Error(err, "cannot tell whether ReferenceGrants are served; cross-namespace backends are refused")
	}
	return err == nil
}

func registerIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	route := func(f func(*edgev1alpha1.TenantRoute) []string) client.IndexerFunc {
		return func(o client.Object) []string {
			tr, ok := o.(*edgev1alpha1.TenantRoute)
			if !ok {
				return nil
			}
			return f(tr)
		}
	}
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&edgev1alpha1.TenantRoute{}, indexRouteEdgeProxy, route(func(tr *edgev1alpha1.TenantRoute) []string {
			return []string{tr.Spec.EdgeProxy}
		})},
		{&edgev1alpha1.TenantRoute{}, indexRouteBackend, route(func(tr *edgev1alpha1.TenantRoute) []string {
			var keys []string
			for _, b := range admission.BackendRefs(tr) {
				keys = append(keys, b.Service.String())
			}
			return keys
		})},
		{&edgev1alpha1.TenantRoute{}, indexRouteSecret, route(func(tr *edgev1alpha1.TenantRoute) []string {
			var keys []string
			for _, s := range admission.SecretRefs(tr) {
				keys = append(keys, s.Secret.String())
			}
			return keys
		})},
		{&edgev1alpha1.TenantRoute{}, indexRouteHostname, route(hostnameKeys)},
		{&edgev1alpha1.EdgeProxy{}, indexIngressClassName, func(o client.Object) []string {
			if ep, ok := o.(*edgev1alpha1.EdgeProxy); ok {
				return []string{render.IngressClassName(ep)}
			}
			return nil
		}},
		{&edgev1alpha1.EdgeProxy{}, indexProxyNamespace, func(o client.Object) []string {
			if ep, ok := o.(*edgev1alpha1.EdgeProxy); ok {
				return []string{ep.Spec.ProxyNamespace}
			}
			return nil
		}},
	}
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			return fmt.Errorf("index %T by %s: %w", i.obj, i.field, err)
		}
	}
	return nil
}
