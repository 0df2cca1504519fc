// Package certificates decides, without touching the API server, which cert-manager Certificates
// Portico wants for the TLS Secrets of admitted TenantRoutes, and when it must stay out of the way
// because another writer (a Certificate it does not own, or cert-manager's ingress-shim) is in
// charge of a Secret. The reconciler in controllers/certificate_controller.go gathers the objects
// and applies the answer.
package certificates

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
)

const (
	// LabelSecret marks a Certificate as Portico's. Ours means: this label, and a controller
	// ownerReference to a TenantRoute. Its value is a hash of the Secret name (names may be longer
	// than a label value).
	LabelSecret = "edge.portico.dev/certificate-secret"
	// NamePrefix starts the name of every Certificate Portico creates.
	NamePrefix = "portico-"

	ingressKind    = "Ingress"
	tlsACME        = "kubernetes.io/tls-acme"
	secretTemplate = "cert-manager.io/secret-template"
	issuerGroup    = "cert-manager.io"
)

// Route is one TenantRoute referring to the Secret, with what issuer resolution reads.
type Route struct {
	Route *edgev1alpha1.TenantRoute
	// EdgeProxy of the route; nil when it does not exist.
	EdgeProxy *edgev1alpha1.EdgeProxy
	// Ingress the route was translated from; nil for other routes or when it is gone.
	Ingress *networkingv1.Ingress
}

// Input is everything known about one (namespace, Secret).
type Input struct {
	Secret types.NamespacedName
	// Routes referring to the Secret in spec.tls (admitted or not).
	Routes []Route
	// Certificates of the namespace whose spec.secretName is the Secret.
	Certificates []cmv1.Certificate
	// ShimInCharge says cert-manager's ingress-shim runs in the cluster (cert-manager's default):
	// it then creates the Certificate of every Ingress carrying cert-manager.io/issuer,
	// cert-manager.io/cluster-issuer or kubernetes.io/tls-acme, whatever its class, so Portico must
	// not. When false (the platform runs cert-manager with --controllers=*,-ingress-shim) Portico
	// reads those annotations itself.
	ShimInCharge bool
}

// Decision is what Portico does about one Secret.
type Decision struct {
	// Desired is the Certificate Portico applies; nil when it wants none.
	Desired *cmv1.Certificate
	// External, when set, says who else is in charge of the Secret; Desired is nil then.
	External string
	// Delete names Portico's Certificates for this Secret that must go.
	Delete []string
	// Notices name Ingress annotations that could not be honoured.
	Notices []string
}

// Owned reports whether a Certificate is Portico's: labelled and controlled by a TenantRoute.
func Owned(c *cmv1.Certificate) bool {
	if _, ok := c.Labels[LabelSecret]; !ok {
		return false
	}
	o := metav1.GetControllerOf(c)
	return o != nil && o.Kind == "TenantRoute" && strings.HasPrefix(o.APIVersion, edgev1alpha1.GroupVersion.Group+"/")
}

// Name is the deterministic name of Portico's Certificate for a Secret.
func Name(secret string) string {
	n := NamePrefix + secret
	if len(n) <= 253 {
		return n
	}
	return n[:253-9] + "-" + SecretHash(secret)
}

// SecretHash is the value of LabelSecret: 8 hex digits of the Secret name's SHA-256.
func SecretHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:4])
}

// Admitted reports whether a route's current generation is Accepted.
func Admitted(tr *edgev1alpha1.TenantRoute) bool {
	c := meta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted))
	return tr.DeletionTimestamp.IsZero() && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == tr.Generation
}

// ShimAnnotated reports whether cert-manager's ingress-shim acts on this Ingress for the Secret:
// the Ingress carries one of its annotations and lists the Secret in spec.tls.
func ShimAnnotated(ing *networkingv1.Ingress, secret string) bool {
	if ing == nil {
		return false
	}
	a := ing.Annotations
	if a[cmv1.IngressIssuerNameAnnotationKey] == "" && a[cmv1.IngressClusterIssuerNameAnnotationKey] == "" && a[tlsACME] != "true" {
		return false
	}
	for _, t := range ing.Spec.TLS {
		if t.SecretName == secret {
			return true
		}
	}
	return false
}

// Issuer levels, most specific first.
const (
	levelNone = iota
	levelEdgeProxy
	levelIngress
	levelRoute
)

// ResolveIssuer returns the issuer of a route's Secret, most specific first: the route's
// spec.tls[].issuer; the source Ingress's cert-manager.io/cluster-issuer or cert-manager.io/issuer
// (with cert-manager.io/issuer-kind and issuer-group) unless the shim is in charge; the EdgeProxy's
// spec.tls.issuer. Kind and group are always filled in. Nil: no issuer.
func ResolveIssuer(r Route, secret string, shimInCharge bool) (*cmmeta.IssuerReference, int) {
	for _, t := range r.Route.Spec.TLS {
		if t.SecretName == secret && t.Issuer != nil {
			return issuerRef(t.Issuer.Name, t.Issuer.Kind, t.Issuer.Group), levelRoute
		}
	}
	if r.Ingress != nil && !shimInCharge {
		a := r.Ingress.Annotations
		var ref *cmmeta.IssuerReference
		switch {
		case a[cmv1.IngressClusterIssuerNameAnnotationKey] != "":
			ref = issuerRef(a[cmv1.IngressClusterIssuerNameAnnotationKey], cmv1.ClusterIssuerKind, "")
		case a[cmv1.IngressIssuerNameAnnotationKey] != "":
			ref = issuerRef(a[cmv1.IngressIssuerNameAnnotationKey], a[cmv1.IssuerKindAnnotationKey], a[cmv1.IssuerGroupAnnotationKey])
		}
		if ref != nil {
			return ref, levelIngress
		}
	}
	if ep := r.EdgeProxy; ep != nil && ep.Spec.TLS != nil && ep.Spec.TLS.Issuer != nil {
		i := ep.Spec.TLS.Issuer
		return issuerRef(i.Name, i.Kind, i.Group), levelEdgeProxy
	}
	return nil, levelNone
}

func issuerRef(name, kind, group string) *cmmeta.IssuerReference {
	if kind == "" {
		kind = cmv1.IssuerKind
	}
	if group == "" {
		group = issuerGroup
	}
	return &cmmeta.IssuerReference{Name: name, Kind: kind, Group: group}
}

// Decide computes Portico's Certificate for one Secret.
//
// Rules: a Certificate Portico does not own targeting the Secret, or an Ingress the shim acts on,
// puts someone else in charge: Portico wants nothing and deletes its own (never a second writer).
// Otherwise the dnsNames are the hosts of every admitted route using the Secret that its EdgeProxy
// allows; no names or no issuer, no Certificate. The issuer is the most specific one found (ties:
// the oldest route). The controller owner is the oldest admitted route (creation time, then
// name), the others are non-controller owners, so the Certificate outlives any one route but not all.
func Decide(in Input) (d Decision) {
	wanted := ""
	defer func() {
		for _, c := range in.Certificates {
			if Owned(&c) && c.Name != wanted {
				d.Delete = append(d.Delete, c.Name)
			}
		}
		slices.Sort(d.Delete)
	}()

	for _, c := range in.Certificates {
		if !Owned(&c) {
			d.External = fmt.Sprintf("Certificate %s/%s, not Portico's, writes Secret %q", c.Namespace, c.Name, in.Secret.Name)
			return d
		}
	}
	routes := make([]Route, 0, len(in.Routes))
	for _, r := range in.Routes {
		if in.ShimInCharge && ShimAnnotated(r.Ingress, in.Secret.Name) {
			d.External = fmt.Sprintf("cert-manager's ingress-shim creates the Certificate of Secret %q: Ingress %s/%s carries its annotations",
				in.Secret.Name, r.Ingress.Namespace, r.Ingress.Name)
			return d
		}
		if Admitted(r.Route) && r.EdgeProxy != nil {
			routes = append(routes, r)
		}
	}
	slices.SortFunc(routes, func(a, b Route) int {
		if c := a.Route.CreationTimestamp.Compare(b.Route.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Route.Name, b.Route.Name)
	})

	var names []string
	var issuer *cmmeta.IssuerReference
	var primary *Route
	best := levelNone
	for i, r := range routes {
		for _, ref := range admission.SecretRefs(r.Route) {
			if ref.Secret != in.Secret {
				continue
			}
			for _, h := range ref.Hosts {
				if admission.HostnameAllowed(r.EdgeProxy.Spec.Hostnames, h) && !slices.Contains(names, h) {
					names = append(names, h)
				}
			}
		}
		if ref, level := ResolveIssuer(r, in.Secret.Name, in.ShimInCharge); level > best {
			issuer, best, primary = ref, level, &routes[i]
		}
	}
	if issuer == nil || len(names) == 0 {
		return d
	}
	slices.Sort(names)

	owner := routes[0].Route
	c := &cmv1.Certificate{
		TypeMeta: metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.CertificateKind},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: in.Secret.Namespace,
			Name:      Name(in.Secret.Name),
			Labels: map[string]string{
				LabelSecret:                 SecretHash(in.Secret.Name),
				edgev1alpha1.LabelEdgeProxy: owner.Spec.EdgeProxy,
			},
		},
		Spec: cmv1.CertificateSpec{SecretName: in.Secret.Name, DNSNames: names, IssuerRef: *issuer},
	}
	for i, r := range routes {
		c.OwnerReferences = append(c.OwnerReferences, metav1.OwnerReference{
			APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "TenantRoute",
			Name: r.Route.Name, UID: r.Route.UID, Controller: ptr(i == 0),
		})
	}
	if primary.Ingress != nil {
		d.Notices = applyOverrides(&c.Spec, primary.Ingress.Annotations)
	}
	d.Desired = c
	wanted = c.Name
	return d
}

func ptr[T any](v T) *T { return &v }
