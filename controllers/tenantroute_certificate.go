package controllers

import (
	"context"
	"fmt"
	"strings"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/certificates"
)

// certificateReady is the CertificateReady condition of a route, and the Secrets that do not exist
// yet but that a Certificate (Portico's or another writer's) is expected to write: admission does
// not count those as missing (the route serves HTTP meanwhile, HTTPS once the Secret is valid).
type certificateReady struct {
	status  metav1.ConditionStatus
	reason  edgev1alpha1.ConditionReason
	message string
	pending map[types.NamespacedName]string
}

// Per-Secret states, worst first: the route's condition takes the worst.
const (
	certPending  = iota // ours (or to be ours) not Ready
	certExtWait         // another writer's, not Ready (or not created yet)
	certNoIssuer        // no issuer and no Secret: nothing will write it
	certExtReady        // another writer's (or a hand-made Secret), fine
	certIssued          // ours, Ready
)

// certificateStatus computes CertificateReady: for each TLS Secret of the route, the Certificate
// targeting it. Ours: its Ready condition is mirrored (status; reason Issued or Pending; cert-manager's
// reason and message in the message). Another writer's, or cert-manager's ingress-shim in charge of
// the source Ingress: CertificateManagedExternally, its Ready status mirrored. No issuer at all: the
// Secret is the tenant's (CertificateManagedExternally, True when the Secret exists). No TLS: NoTLS.
func (r *TenantRouteReconciler) certificateStatus(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy,
	accepted bool, refs admission.Refs) (certificateReady, error) {
	out := certificateReady{pending: map[types.NamespacedName]string{}}
	secretRefs := admission.SecretRefs(tr)
	if len(secretRefs) == 0 {
		out.status, out.reason, out.message = metav1.ConditionTrue, edgev1alpha1.RouteReasonNoTLS, "the route has no TLS"
		return out, nil
	}
	var ing *networkingv1.Ingress
	if len(secretRefs) > 0 {
		var err error
		if ing, err = sourceIngress(ctx, r.Client, tr); err != nil {
			return out, err
		}
	}
	worst := certIssued
	ours := false
	var msgs []string
	done := map[types.NamespacedName]bool{}
	for _, ref := range secretRefs {
		s := ref.Secret
		if done[s] {
			continue
		}
		done[s] = true
		state, msg, err := r.secretCertificate(ctx, tr, ep, ing, accepted, s, refs)
		if err != nil {
			return out, err
		}
		if _, exists := refs.Secrets[s]; !exists && (state == certPending || state == certExtWait) {
			out.pending[s] = msg
		}
		ours = ours || state == certIssued || state == certPending
		worst = min(worst, state)
		msgs = append(msgs, msg)
	}
	out.message = strings.Join(msgs, "; ")
	switch worst {
	case certPending:
		out.status, out.reason = metav1.ConditionFalse, edgev1alpha1.RouteReasonCertificatePending
	case certExtWait, certNoIssuer:
		out.status, out.reason = metav1.ConditionFalse, edgev1alpha1.RouteReasonCertificateManagedExternally
	case certExtReady:
		out.status, out.reason = metav1.ConditionTrue, edgev1alpha1.RouteReasonCertificateManagedExternally
	default:
		out.status, out.reason = metav1.ConditionTrue, edgev1alpha1.RouteReasonCertificateIssued
	}
	if out.status == metav1.ConditionTrue && ours && worst == certExtReady {
		out.reason = edgev1alpha1.RouteReasonCertificateIssued
	}
	return out, nil
}

// secretCertificate is the state of one Secret of the route and a message saying why.
func (r *TenantRouteReconciler) secretCertificate(ctx context.Context, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy,
	ing *networkingv1.Ingress, accepted bool, s types.NamespacedName, refs admission.Refs) (int, string, error) {
	if r.Certificates {
		certs, err := certificatesOf(ctx, r.Client, s)
		if err != nil {
			return 0, "", err
		}
		for i := range certs {
			c := &certs[i]
			owned := certificates.Owned(c)
			if owned && len(certs) > 1 {
				continue // being deleted in favour of the other writer
			}
			ready, why := certificateReadyOf(c)
			switch {
			case owned && ready:
				return certIssued, fmt.Sprintf("Certificate %s for Secret %q is Ready: %s", c.Name, s.Name, why), nil
			case owned:
				return certPending, fmt.Sprintf("Certificate %s for Secret %q is not Ready: %s", c.Name, s.Name, why), nil
			case ready:
				return certExtReady, fmt.Sprintf("Secret %q is written by Certificate %s, not Portico's; it is Ready: %s", s.Name, c.Name, why), nil
			default:
				return certExtWait, fmt.Sprintf("Secret %q is written by Certificate %s, not Portico's; it is not Ready: %s", s.Name, c.Name, why), nil
			}
		}
	}
	if r.ShimInCharge && certificates.ShimAnnotated(ing, s.Name) {
		return certExtWait, fmt.Sprintf("Secret %q: waiting for cert-manager's ingress-shim to create its Certificate (Ingress %s carries cert-manager.io annotations)", s.Name, ing.Name), nil
	}
	issuer, _ := certificates.ResolveIssuer(certificates.Route{Route: tr, EdgeProxy: ep, Ingress: ing}, s.Name, r.ShimInCharge)
	if issuer == nil {
		if _, exists := refs.Secrets[s]; exists {
			return certExtReady, fmt.Sprintf("Secret %q is provided without cert-manager (no issuer in spec.tls, the Ingress or the EdgeProxy)", s.Name), nil
		}
		return certNoIssuer, fmt.Sprintf("Secret %q does not exist and no issuer is configured (spec.tls[].issuer, the Ingress's cert-manager.io annotations or the EdgeProxy's spec.tls.issuer)", s.Name), nil
	}
	switch {
	case !r.Certificates:
		return certPending, fmt.Sprintf("Secret %q names issuer %s %q but cert-manager's Certificate API is not served", s.Name, issuer.Kind, issuer.Name), nil
	case !accepted:
		return certPending, fmt.Sprintf("no Certificate is requested for Secret %q until the route is accepted", s.Name), nil
	}
	return certPending, fmt.Sprintf("Certificate %s for Secret %q (issuer %s %q) is being created", certificates.Name(s.Name), s.Name, issuer.Kind, issuer.Name), nil
}

// certificateReadyOf reads a Certificate's Ready condition: whether it is True (for the current
// generation) and cert-manager's reason and message.
func certificateReadyOf(c *cmv1.Certificate) (bool, string) {
	for _, cond := range c.Status.Conditions {
		if cond.Type != cmv1.CertificateConditionReady {
			continue
		}
		why := fmt.Sprintf("%s: %s", cond.Reason, cond.Message)
		if cond.ObservedGeneration != 0 && cond.ObservedGeneration != c.Generation {
			return false, "cert-manager has not yet observed the latest spec (" + why + ")"
		}
		return cond.Status == cmmeta.ConditionTrue, why
	}
	return false, "cert-manager has not reported on it yet"
}

// setCertificateReady writes the CertificateReady condition.
func setCertificateReady(tr *edgev1alpha1.TenantRoute, c certificateReady) {
	if c.reason == "" {
		return
	}
	setCondition(&tr.Status.Conditions, edgev1alpha1.RouteConditionCertificateReady, c.status, c.reason, c.message, tr.Generation)
}

// watchCertificates re-admits the routes using a Secret when a Certificate targeting it changes
// (its Ready condition is mirrored), and the routes of an Ingress when the Ingress changes (its
// cert-manager annotations decide who is in charge).
func (r *TenantRouteReconciler) watchCertificates(b *builder.Builder) {
	b.Watches(&networkingv1.Ingress{}, r.admitting(handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return routeRequests(routesOfSource(ctx, r.Client, o))
	})))
	if !r.Certificates {
		return
	}
	b.Watches(&cmv1.Certificate{}, r.admitting(oldAndNew(func(ctx context.Context, o client.Object) []reconcile.Request {
		c, ok := o.(*cmv1.Certificate)
		if !ok || c.Spec.SecretName == "" {
			return nil
		}
		var routes edgev1alpha1.TenantRouteList
		key := types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.SecretName}
		if err := r.List(ctx, &routes, client.MatchingFields{indexRouteSecret: key.String()}); err != nil {
			return nil
		}
		return routeRequests(routes.Items)
	})))
}

func routeRequests(routes []edgev1alpha1.TenantRoute) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(routes))
	for _, tr := range routes {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}})
	}
	return out
}
