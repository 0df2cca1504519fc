package controllers

import (
	"context"
	"fmt"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/certificates"
	"github.com/portico-dev/portico/controllers/render"
)

// RBAC of this reconciler; `make manifests` turns these markers into config/rbac/role.yaml.
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch

const (
	certificateControllerName = "certificate"
	// indexCertificateSecret indexes cert-manager Certificates by spec.secretName.
	indexCertificateSecret = "spec.secretName"
)

// CertificateReconciler creates the cert-manager Certificates the TLS Secrets of admitted
// TenantRoutes need, one per (namespace, Secret); controllers/certificates decides, this file
// gathers and applies. A request names a Secret (namespace/secretName), not a Certificate.
//
// Never a second writer: where a Certificate Portico does not own targets the Secret, or cert-manager's
// ingress-shim is in charge of the source Ingress, it creates nothing and deletes its own; it never
// edits or adopts a Certificate it does not own. Route status (CertificateReady) is written by the
// TenantRoute reconciler, the one writer of TenantRoute status (tenantroute_certificate.go).
type CertificateReconciler struct {
	client.Client
	// ShimInCharge: cert-manager's ingress-shim runs in the cluster (certificates.Input).
	ShimInCharge bool
}

// Reconcile brings the Certificates of one Secret in line with the routes using it.
func (r *CertificateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	in, err := r.gather(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := certificates.Decide(in)
	logger := log.FromContext(ctx)
	for _, name := range d.Delete {
		c := &cmv1.Certificate{}
		c.Namespace, c.Name = req.Namespace, name
		if err := r.Delete(ctx, c); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete certificate %s/%s: %w", req.Namespace, name, err)
		}
		logger.Info("deleted certificate", "certificate", name, "external", d.External)
	}
	for _, n := range d.Notices {
		logger.Info("ingress annotation not honoured", "secret", req.Name, "notice", n)
	}
	if d.Desired == nil {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.apply(ctx, d.Desired)
}

// gather reads, from the cache, the routes using the Secret, their EdgeProxies and source
// Ingresses, and the Certificates targeting it.
func (r *CertificateReconciler) gather(ctx context.Context, secret types.NamespacedName) (certificates.Input, error) {
	in := certificates.Input{Secret: secret, ShimInCharge: r.ShimInCharge}
	var routes edgev1alpha1.TenantRouteList
	if err := r.List(ctx, &routes, client.MatchingFields{indexRouteSecret: secret.String()}); err != nil {
		return in, fmt.Errorf("list tenantroutes using secret %s: %w", secret, err)
	}
	eps := map[string]*edgev1alpha1.EdgeProxy{}
	for i := range routes.Items {
		tr := &routes.Items[i]
		ep, seen := eps[tr.Spec.EdgeProxy]
		if !seen {
			var err error
			if ep, err = lookupEdgeProxy(ctx, r.Client, tr.Spec.EdgeProxy); err != nil {
				return in, err
			}
			eps[tr.Spec.EdgeProxy] = ep
		}
		ing, err := sourceIngress(ctx, r.Client, tr)
		if err != nil {
			return in, err
		}
		in.Routes = append(in.Routes, certificates.Route{Route: tr, EdgeProxy: ep, Ingress: ing})
	}
	certs, err := certificatesOf(ctx, r.Client, secret)
	in.Certificates = certs
	return in, err
}

// apply server-side applies our Certificate, unless its name is taken by a Certificate that is not
// ours (which then targets another Secret; we never take it over).
func (r *CertificateReconciler) apply(ctx context.Context, c *cmv1.Certificate) error {
	live := &cmv1.Certificate{}
	switch err := r.Get(ctx, client.ObjectKeyFromObject(c), live); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get certificate %s/%s: %w", c.Namespace, c.Name, err)
	case !certificates.Owned(live):
		log.FromContext(ctx).Info("certificate name taken by a Certificate Portico does not own; not creating", "certificate", c.Name)
		return nil
	}
	u, err := render.ToUnstructured(c)
	if err != nil {
		return err
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(edgev1alpha1.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply certificate %s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// lookupEdgeProxy returns the EdgeProxy, or nil when it is missing or being deleted.
func lookupEdgeProxy(ctx context.Context, c client.Client, name string) (*edgev1alpha1.EdgeProxy, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	switch err := c.Get(ctx, types.NamespacedName{Name: name}, ep); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get edgeproxy %s: %w", name, err)
	case !ep.DeletionTimestamp.IsZero():
		return nil, nil
	}
	return ep, nil
}

// sourceIngress returns the Ingress a route was translated from (its controller, named by the
// source labels), or nil.
func sourceIngress(ctx context.Context, c client.Client, tr *edgev1alpha1.TenantRoute) (*networkingv1.Ingress, error) {
	src := generatedSource(tr)
	if src == nil || src.Kind != "Ingress" || src.Group != networkingv1.GroupName {
		return nil, nil
	}
	ing := &networkingv1.Ingress{}
	switch err := c.Get(ctx, types.NamespacedName{Namespace: tr.Namespace, Name: src.Name}, ing); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get ingress %s/%s: %w", tr.Namespace, src.Name, err)
	}
	return ing, nil
}

// certificatesOf lists the Certificates whose spec.secretName is the Secret.
func certificatesOf(ctx context.Context, c client.Client, secret types.NamespacedName) ([]cmv1.Certificate, error) {
	var list cmv1.CertificateList
	if err := c.List(ctx, &list, client.InNamespace(secret.Namespace), client.MatchingFields{indexCertificateSecret: secret.Name}); err != nil {
		return nil, fmt.Errorf("list certificates of secret %s: %w", secret, err)
	}
	return list.Items, nil
}

// certificatesServed reports whether the cluster serves cert-manager's Certificates. Without them
// Portico creates none and routes with an issuer stay CertificateReady=False.
func certificatesServed(mgr ctrl.Manager) bool {
	gk := schema.GroupKind{Group: cmv1.SchemeGroupVersion.Group, Kind: cmv1.CertificateKind}
	if !mgr.GetScheme().Recognizes(cmv1.SchemeGroupVersion.WithKind(gk.Kind)) {
		return false
	}
	_, err := mgr.GetRESTMapper().RESTMapping(gk, cmv1.SchemeGroupVersion.Version)
	if err != nil && !meta.IsNoMatchError(err) {
		ctrl.Log.WithName(certificateControllerName).Error(err, "cannot tell whether cert-manager Certificates are served; not managing any")
	}
	return err == nil
}
