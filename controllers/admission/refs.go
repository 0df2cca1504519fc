package admission

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// BackendRef is one Service a route sends traffic to.
type BackendRef struct {
	Path    *field.Path // spec.rules[i].backendRefs[j]
	Service types.NamespacedName
	Port    int32 // 0 when the reference names none (Compile refuses that for Services)
}

// BackendPort is one port of a Service backend: what ready endpoints are counted for.
type BackendPort struct {
	Service types.NamespacedName
	Port    int32
}

// SecretRef is one TLS Secret of a route and the hosts it must cover.
type SecretRef struct {
	Path   *field.Path // spec.tls[i]
	Secret types.NamespacedName
	Hosts  []string
}

// BackendRefs lists the Service backends of a route, in spec order. References to other kinds are
// Compile's business (Invalid) and left out here.
func BackendRefs(tr *edgev1alpha1.TenantRoute) []BackendRef {
	var out []BackendRef
	rp := field.NewPath("spec", "rules")
	for i, rule := range tr.Spec.Rules {
		for j, b := range rule.BackendRefs {
			if b.Group != nil && *b.Group != "" || b.Kind != nil && *b.Kind != "Service" {
				continue
			}
			key := types.NamespacedName{Namespace: tr.Namespace, Name: string(b.Name)}
			if b.Namespace != nil && *b.Namespace != "" {
				key.Namespace = string(*b.Namespace)
			}
			ref := BackendRef{Path: rp.Index(i).Child("backendRefs").Index(j), Service: key}
			if b.Port != nil {
				ref.Port = int32(*b.Port)
			}
			out = append(out, ref)
		}
	}
	return out
}

// SecretRefs lists the TLS Secrets of a route (always in the route's namespace) with the hosts each
// must cover: its hosts, else the route's hostnames.
func SecretRefs(tr *edgev1alpha1.TenantRoute) []SecretRef {
	var out []SecretRef
	tp := field.NewPath("spec", "tls")
	for i, t := range tr.Spec.TLS {
		hosts := t.Hosts
		if len(hosts) == 0 {
			hosts = tr.Spec.Hostnames
		}
		ref := SecretRef{Path: tp.Index(i), Secret: types.NamespacedName{Namespace: tr.Namespace, Name: t.SecretName}}
		for _, h := range hosts {
			ref.Hosts = append(ref.Hosts, normalize(string(h)))
		}
		out = append(out, ref)
	}
	return out
}

// Refs are the objects a route refers to, as found by the reconciler. A key missing from Services or
// Secrets means the object does not exist.
type Refs struct {
	Services map[types.NamespacedName]*corev1.Service
	Secrets  map[types.NamespacedName]*corev1.Secret
	// Grants are the ReferenceGrants of the namespaces the route's cross-namespace backends live in.
	Grants []gwapiv1beta1.ReferenceGrant
	// AllowExternalName is the EdgeProxy's spec.allowExternalNameServices.
	AllowExternalName bool
	// ReadyEndpoints counts the ready endpoints the proxies would be sent for each Service port
	// (snapshot.ReadyEndpointCount: trusted slices, the port matched by name, the egress guard); a
	// port missing from it is not checked (ExternalName, or nothing publishes slices for it).
	ReadyEndpoints map[BackendPort]int
	// PendingSecrets are missing Secrets a cert-manager Certificate is expected to write, each
	// with a note saying which: not a problem (the route serves HTTP until the Secret exists).
	PendingSecrets map[types.NamespacedName]string
}

// ResolveRefs decides the ResolvedRefs condition. Its reason is the first problem found (backends in
// spec order, then TLS Secrets: RefNotPermitted, BackendNotFound, SecretNotFound,
// InvalidCertificate); its message lists every problem, each naming its field. Permission is checked
// before existence, so a route cannot probe other namespaces for Services.
func ResolveRefs(tr *edgev1alpha1.TenantRoute, refs Refs) Verdict {
	var problems []Verdict
	for _, b := range BackendRefs(tr) {
		if b.Service.Namespace != tr.Namespace && !ReferenceGranted(refs.Grants, GrantSubjectOf(tr), tr.Namespace, b.Service) {
			problems = append(problems, refuse(edgev1alpha1.RouteReasonRefNotPermitted,
				"%s: no ReferenceGrant in namespace %q allows %ss of namespace %q to use Service %q",
				b.Path, b.Service.Namespace, GrantSubjectOf(tr).Kind, tr.Namespace, b.Service.Name))
			continue
		}
		svc, found := refs.Services[b.Service]
		if !found {
			problems = append(problems, refuse(edgev1alpha1.RouteReasonBackendNotFound,
				"%s: Service %q not found in namespace %q", b.Path, b.Service.Name, b.Service.Namespace))
			continue
		}
		if svc.Spec.Type == corev1.ServiceTypeExternalName && !refs.AllowExternalName {
			problems = append(problems, refuse(edgev1alpha1.RouteReasonRefNotPermitted,
				"%s: Service %q is of type ExternalName, which the EdgeProxy does not allow (spec.allowExternalNameServices)",
				b.Path, b.Service.Name))
		}
	}
	var notes []string
	for _, s := range SecretRefs(tr) {
		path := s.Path.Child("secretName")
		secret, found := refs.Secrets[s.Secret]
		if note, pending := refs.PendingSecrets[s.Secret]; !found && pending {
			notes = append(notes, fmt.Sprintf("%s: Secret %q not issued yet, HTTPS starts once it is (%s)", path, s.Secret.Name, note))
			continue
		}
		if !found {
			problems = append(problems, refuse(edgev1alpha1.RouteReasonSecretNotFound,
				"%s: Secret %q not found in namespace %q", path, s.Secret.Name, s.Secret.Namespace))
			continue
		}
		if err := ValidateKeyPair(secret, s.Hosts); err != nil {
			problems = append(problems, refuse(edgev1alpha1.RouteReasonInvalidCertificate,
				"%s: Secret %q: %v", path, s.Secret.Name, err))
		}
	}
	if len(problems) == 0 {
		problems = noReadyEndpoints(tr, refs)
	}
	if len(problems) == 0 {
		return ok(edgev1alpha1.RouteReasonResolvedRefs, strings.Join(append([]string{"all references resolved"}, notes...), "; "))
	}
	msgs := make([]string, 0, len(problems))
	for i, p := range problems {
		if i == maxReportedErrors {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(problems)-i))
			break
		}
		msgs = append(msgs, p.Message)
	}
	return Verdict{Reason: problems[0].Reason, Message: strings.Join(msgs, "; ")}
}

// noReadyEndpoints reports the backends that resolve but have no ready endpoint. It is checked only
// when every reference resolves: a missing or forbidden reference is the more useful thing to say.
func noReadyEndpoints(tr *edgev1alpha1.TenantRoute, refs Refs) []Verdict {
	var out []Verdict
	seen := map[BackendPort]bool{}
	for _, b := range BackendRefs(tr) {
		key := BackendPort{Service: b.Service, Port: b.Port}
		n, counted := refs.ReadyEndpoints[key]
		if !counted || n > 0 || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, refuse(edgev1alpha1.RouteReasonNoReadyEndpoints,
			"%s: Service %q port %d in namespace %q has no ready endpoints; its requests answer 503 until a Pod behind it is Ready",
			b.Path, b.Service.Name, b.Port, b.Service.Namespace))
	}
	return out
}

// ReferenceGrantKind and ReferenceGrantGroup are how a ReferenceGrant's spec.from names TenantRoutes.
const (
	ReferenceGrantKind  = "TenantRoute"
	ReferenceGrantGroup = "edge.portico.dev"
)

// Grants from HTTPRoutes: a TenantRoute lowered from an HTTPRoute is granted what its HTTPRoute is.
const (
	httpRouteKind   = "HTTPRoute"
	gatewayAPIGroup = "gateway.networking.k8s.io"
)

// GrantSubject is the group and kind a ReferenceGrant's spec.from must name for a route.
type GrantSubject struct{ Group, Kind string }

// GrantSubjectOf says whose grants a route uses: a TenantRoute generated from an HTTPRoute (label
// edge.portico.dev/source-kind: HTTPRoute, and controlled by that HTTPRoute) uses grants from
// HTTPRoutes of its namespace, the ones its HTTPRoute's backendRefs were translated under; any
// other TenantRoute uses grants from TenantRoutes.
func GrantSubjectOf(tr *edgev1alpha1.TenantRoute) GrantSubject {
	if tr.Labels[edgev1alpha1.LabelSourceKind] == httpRouteKind {
		if o := metav1.GetControllerOf(tr); o != nil && o.Kind == httpRouteKind && strings.HasPrefix(o.APIVersion, gatewayAPIGroup+"/") {
			return GrantSubject{Group: gatewayAPIGroup, Kind: httpRouteKind}
		}
	}
	return GrantSubject{Group: ReferenceGrantGroup, Kind: ReferenceGrantKind}
}

// IsGrantSubject reports whether grants from this group and kind can admit some TenantRoute.
func IsGrantSubject(group, kind string) bool {
	return group == ReferenceGrantGroup && kind == ReferenceGrantKind || group == gatewayAPIGroup && kind == httpRouteKind
}

// ReferenceGranted reports whether a ReferenceGrant in the Service's namespace lets routes of
// fromNamespace, named in spec.from as subject, refer to it.
func ReferenceGranted(grants []gwapiv1beta1.ReferenceGrant, subject GrantSubject, fromNamespace string, svc types.NamespacedName) bool {
	for _, g := range grants {
		if g.Namespace != svc.Namespace {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == subject.Group && string(f.Kind) == subject.Kind && string(f.Namespace) == fromNamespace {
				from = true
				break
			}
		}
		if !from {
			continue
		}
		for _, t := range g.Spec.To {
			if string(t.Group) == "" && string(t.Kind) == "Service" && (t.Name == nil || string(*t.Name) == svc.Name) {
				return true
			}
		}
	}
	return false
}

// ValidateKeyPair checks that a Secret is a kubernetes.io/tls Secret whose certificate and key
// parse and match, and whose certificate covers every host (a wildcard host needs the same wildcard
// in the certificate).
func ValidateKeyPair(secret *corev1.Secret, hosts []string) error {
	if secret.Type != corev1.SecretTypeTLS {
		return fmt.Errorf("type is %q, want %q", secret.Type, corev1.SecretTypeTLS)
	}
	pair, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("tls.crt and tls.key are not a valid key pair: %w", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("tls.crt: %w", err)
		}
	}
	for _, h := range hosts {
		if !certificateCovers(leaf, h) {
			return fmt.Errorf("the certificate does not cover host %q", h)
		}
	}
	return nil
}

func certificateCovers(cert *x509.Certificate, host string) bool {
	if strings.HasPrefix(host, "*.") {
		for _, n := range cert.DNSNames {
			if strings.EqualFold(n, host) {
				return true
			}
		}
		return false
	}
	return cert.VerifyHostname(host) == nil
}
