package diagnose

import (
	"context"
	"fmt"
	"time"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/render"
)

// State is everything the checks look at. Gather fills it from the cluster; tests may fill it by
// hand. A key of Errs set means that read failed (Forbidden, usually): the step that needs it says
// "could not check" instead of guessing.
type State struct {
	Now time.Time

	Ingress        *networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
	HTTPRoute      *gwapiv1.HTTPRoute
	Gateways       map[types.NamespacedName]*gwapiv1.Gateway
	GatewayClasses []gwapiv1.GatewayClass

	EdgeProxies map[string]*edgev1alpha1.EdgeProxy
	Namespaces  map[string]*corev1.Namespace
	Services    map[types.NamespacedName]*corev1.Service
	Slices      map[types.NamespacedName][]discoveryv1.EndpointSlice
	Secrets     map[types.NamespacedName]*corev1.Secret
	// Certificates are cert-manager Certificates by namespace.
	Certificates map[string][]cmv1.Certificate
	// CertificateRequests, Orders and Challenges are cert-manager's issuance objects by namespace,
	// read only in namespaces where a Certificate the checks look at is not Ready.
	CertificateRequests map[string][]cmv1.CertificateRequest
	Orders              map[string][]acmev1.Order
	Challenges          map[string][]acmev1.Challenge
	// Peers are the TenantRoutes naming an EdgeProxy that the caller can list, by EdgeProxy.
	Peers map[string][]edgev1alpha1.TenantRoute
	// ProxyServices and ProxyDeployments are the proxy fleet's, by EdgeProxy.
	ProxyServices    map[string]*corev1.Service
	ProxyDeployments map[string]*appsv1.Deployment

	Errs map[string]error
}

// NewState returns an empty State.
func NewState(now time.Time) *State {
	return &State{
		Now:                 now,
		Gateways:            map[types.NamespacedName]*gwapiv1.Gateway{},
		EdgeProxies:         map[string]*edgev1alpha1.EdgeProxy{},
		Namespaces:          map[string]*corev1.Namespace{},
		Services:            map[types.NamespacedName]*corev1.Service{},
		Slices:              map[types.NamespacedName][]discoveryv1.EndpointSlice{},
		Secrets:             map[types.NamespacedName]*corev1.Secret{},
		Certificates:        map[string][]cmv1.Certificate{},
		CertificateRequests: map[string][]cmv1.CertificateRequest{},
		Orders:              map[string][]acmev1.Order{},
		Challenges:          map[string][]acmev1.Challenge{},
		Peers:               map[string][]edgev1alpha1.TenantRoute{},
		ProxyServices:       map[string]*corev1.Service{},
		ProxyDeployments:    map[string]*appsv1.Deployment{},
		Errs:                map[string]error{},
	}
}

// Keys of State.Errs.
func keyService(nn types.NamespacedName) string { return "Service " + nn.String() }
func keySlices(nn types.NamespacedName) string  { return "EndpointSlices of Service " + nn.String() }
func keySecret(nn types.NamespacedName) string  { return "Secret " + nn.String() }
func keyEdgeProxy(name string) string           { return "EdgeProxy " + name }
func keyNamespace(name string) string           { return "Namespace " + name }
func keyCertificates(ns string) string          { return "cert-manager Certificates in " + ns }
func keyCertificateRequests(ns string) string   { return "cert-manager CertificateRequests in " + ns }
func keyOrders(ns string) string                { return "cert-manager ACME Orders in " + ns }
func keyChallenges(ns string) string            { return "cert-manager ACME Challenges in " + ns }
func keyPeers(ep string) string                 { return "TenantRoutes of EdgeProxy " + ep }
func keyProxyService(ep string) string          { return "proxy Service of EdgeProxy " + ep }
func keyProxyDeployment(ep string) string       { return "proxy Deployment of EdgeProxy " + ep }
func keyGateway(nn types.NamespacedName) string { return "Gateway " + nn.String() }
func keyIngressClasses() string                 { return "IngressClasses" }
func keyGatewayClasses() string                 { return "GatewayClasses" }

// couldNotCheck words a failed read: RBAC denials are the caller's permissions, not a finding.
func couldNotCheck(what string, err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("could not check (RBAC): you may not read %s", what)
	case apimeta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Sprintf("could not check: the API for %s is not installed", what)
	}
	return fmt.Sprintf("could not check %s: %v", what, err)
}

// unknownStep is the step of a read that failed.
func (s *State) unknownStep(section, title, key string) (Step, bool) {
	err, failed := s.Errs[key]
	if !failed {
		return Step{}, false
	}
	return Step{Section: section, Title: title, Status: Unknown, Evidence: []string{couldNotCheck(key, err)}}, true
}

// Gatherer reads the cluster into a State with the caller's credentials.
type Gatherer struct {
	C client.Reader
	S *State
}

// get reads one object: true when found. NotFound is not an error; other failures are recorded.
func (g *Gatherer) get(ctx context.Context, key string, nn types.NamespacedName, obj client.Object) bool {
	err := g.C.Get(ctx, nn, obj)
	if err == nil {
		return true
	}
	if !apierrors.IsNotFound(err) {
		g.S.Errs[key] = err
	}
	return false
}

func (g *Gatherer) list(ctx context.Context, key string, list client.ObjectList, opts ...client.ListOption) bool {
	if err := g.C.List(ctx, list, opts...); err != nil {
		g.S.Errs[key] = err
		return false
	}
	return true
}

// EdgeProxy reads an EdgeProxy, its namespace-independent fleet objects and the routes naming it.
func (g *Gatherer) EdgeProxy(ctx context.Context, name string) *edgev1alpha1.EdgeProxy {
	if ep, done := g.S.EdgeProxies[name]; done {
		return ep
	}
	if _, failed := g.S.Errs[keyEdgeProxy(name)]; failed {
		return nil
	}
	var routes edgev1alpha1.TenantRouteList
	if g.list(ctx, keyPeers(name), &routes) {
		for _, r := range routes.Items {
			if r.Spec.EdgeProxy == name {
				g.S.Peers[name] = append(g.S.Peers[name], r)
			}
		}
	}
	ep := &edgev1alpha1.EdgeProxy{}
	if !g.get(ctx, keyEdgeProxy(name), types.NamespacedName{Name: name}, ep) {
		g.S.EdgeProxies[name] = nil
		return nil
	}
	g.S.EdgeProxies[name] = ep
	fleet := types.NamespacedName{Namespace: ep.Spec.ProxyNamespace, Name: render.ObjectName(ep)}
	svc := &corev1.Service{}
	if g.get(ctx, keyProxyService(name), fleet, svc) {
		g.S.ProxyServices[name] = svc
	}
	dep := &appsv1.Deployment{}
	if g.get(ctx, keyProxyDeployment(name), fleet, dep) {
		g.S.ProxyDeployments[name] = dep
	}
	return ep
}

// Route reads everything one TenantRoute's checks need.
func (g *Gatherer) Route(ctx context.Context, tr *edgev1alpha1.TenantRoute) {
	g.EdgeProxy(ctx, tr.Spec.EdgeProxy)
	g.Namespace(ctx, tr.Namespace)
	for _, b := range admission.BackendRefs(tr) {
		g.Service(ctx, b.Service)
	}
	for _, ref := range admission.SecretRefs(tr) {
		if _, done := g.S.Secrets[ref.Secret]; !done {
			sec := &corev1.Secret{}
			if g.get(ctx, keySecret(ref.Secret), ref.Secret, sec) {
				g.S.Secrets[ref.Secret] = sec
			} else {
				g.S.Secrets[ref.Secret] = nil
			}
		}
		if _, done := g.S.Certificates[tr.Namespace]; !done {
			var certs cmv1.CertificateList
			if g.list(ctx, keyCertificates(tr.Namespace), &certs, client.InNamespace(tr.Namespace)) {
				g.S.Certificates[tr.Namespace] = certs.Items
			} else {
				g.S.Certificates[tr.Namespace] = nil
			}
		}
		for _, c := range g.S.Certificates[tr.Namespace] {
			if c.Spec.SecretName == ref.Secret.Name && !certificateReady(&c) {
				g.Issuance(ctx, tr.Namespace)
			}
		}
	}
}

// certificateReady is a cert-manager Certificate's Ready condition.
func certificateReady(c *cmv1.Certificate) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmv1.CertificateConditionReady {
			return cond.Status == cmmeta.ConditionTrue
		}
	}
	return false
}

// Issuance reads a namespace's CertificateRequests, ACME Orders and Challenges: why a Certificate
// is not Ready. A namespace without the ACME API (or without the right to read it) records the error.
func (g *Gatherer) Issuance(ctx context.Context, ns string) {
	if _, done := g.S.CertificateRequests[ns]; done {
		return
	}
	var crs cmv1.CertificateRequestList
	if g.list(ctx, keyCertificateRequests(ns), &crs, client.InNamespace(ns)) {
		g.S.CertificateRequests[ns] = crs.Items
	} else {
		g.S.CertificateRequests[ns] = nil
	}
	var orders acmev1.OrderList
	if g.list(ctx, keyOrders(ns), &orders, client.InNamespace(ns)) {
		g.S.Orders[ns] = orders.Items
	}
	var chs acmev1.ChallengeList
	if g.list(ctx, keyChallenges(ns), &chs, client.InNamespace(ns)) {
		g.S.Challenges[ns] = chs.Items
	}
}

// Namespace reads a namespace (for its labels: EdgeProxies may select tenant namespaces by label).
func (g *Gatherer) Namespace(ctx context.Context, name string) {
	if _, done := g.S.Namespaces[name]; done {
		return
	}
	ns := &corev1.Namespace{}
	if g.get(ctx, keyNamespace(name), types.NamespacedName{Name: name}, ns) {
		g.S.Namespaces[name] = ns
	} else {
		g.S.Namespaces[name] = nil
	}
}

// Service reads a Service and its EndpointSlices.
func (g *Gatherer) Service(ctx context.Context, nn types.NamespacedName) {
	if _, done := g.S.Services[nn]; done {
		return
	}
	svc := &corev1.Service{}
	if g.get(ctx, keyService(nn), nn, svc) {
		g.S.Services[nn] = svc
	} else {
		g.S.Services[nn] = nil
	}
	var sl discoveryv1.EndpointSliceList
	if g.list(ctx, keySlices(nn), &sl, client.InNamespace(nn.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: nn.Name}) {
		g.S.Slices[nn] = sl.Items
	}
}

// IngressClasses reads every IngressClass.
func (g *Gatherer) IngressClasses(ctx context.Context) {
	var l networkingv1.IngressClassList
	if g.list(ctx, keyIngressClasses(), &l) {
		g.S.IngressClasses = l.Items
	}
}

// Scheme knows every kind diagnose and explain read.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, edgev1alpha1.AddToScheme, gwapiv1.Install, cmv1.AddToScheme, acmev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}
