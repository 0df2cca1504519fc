package translate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Input is everything the translation of one Ingress needs. The caller lists it from its cache;
// translation itself reads nothing.
type Input struct {
	// Ingress to translate.
	Ingress *networkingv1.Ingress
	// IngressClasses of the cluster, to decide whether the Ingress is Portico's and for which EdgeProxy.
	IngressClasses []networkingv1.IngressClass
	// Services of the Ingress's namespace; backends naming a port by name are resolved with them.
	// Services of other namespaces are ignored.
	Services []corev1.Service
	// Canaries are the Ingresses of the namespace marked nginx.ingress.kubernetes.io/canary: "true"
	// (see IsCanary). A canary whose host and path equal one of the Ingress's paths is merged into
	// that path's rule, as ingress-nginx does. Others are ignored.
	Canaries []networkingv1.Ingress
	// EdgeProxy the Ingress's class leads to, when the caller has it: its body size limit and its
	// HTTP-to-HTTPS redirect decide how proxy-body-size and ssl-redirect translate. Portico's
	// defaults apply when nil or when it is not the class's EdgeProxy.
	EdgeProxy *edgev1alpha1.EdgeProxy
}

// Result of translating one Ingress.
type Result struct {
	// Class is the IngressClass that makes the Ingress Portico's; nil when the Ingress belongs to
	// another controller, and then everything else is empty and Portico must leave it alone.
	Class *Class `json:"class,omitempty"`
	// Canary is true when the Ingress is an ingress-nginx canary: it has no routes of its own, its
	// backends are served through the routes of the Ingresses with the same host and path.
	Canary bool `json:"canary,omitempty"`
	// Routes are the TenantRoutes to apply, in a stable order; the first is named RouteName(ingress).
	// Nil whenever Errors is not empty: an Ingress is translated whole or not at all, so that a
	// refused annotation (an authentication the proxy cannot do, a snippet) never leaves the rest
	// of the Ingress served without it.
	Routes []*edgev1alpha1.TenantRoute `json:"routes,omitempty"`
	// Notices name the ingress-nginx annotations Portico ignored or only approximated, and the
	// faithful ones worth a warning. They become the UnsupportedAnnotation condition and Warning Events.
	Notices []Notice `json:"notices,omitempty"`
	// Errors point into the Ingress (spec.rules[0].http.paths[1].backend.service.port.name,
	// metadata.annotations[nginx.ingress.kubernetes.io/auth-url]).
	Errors field.ErrorList `json:"-"`
}

// Class is the IngressClass an Ingress selected and the EdgeProxy it leads to.
type Class struct {
	// Name of the IngressClass.
	Name string `json:"name"`
	// EdgeProxy named by the class's parameters, else the class's name. Empty when the class's
	// parameters are invalid (Result.Errors then says why).
	EdgeProxy string `json:"edgeProxy"`
}

// Behaviour says how faithfully Portico reproduces an ingress-nginx annotation.
type Behaviour string

const (
	// Exact: Portico does what ingress-nginx does.
	Exact Behaviour = "exact"
	// Approximated: Portico does something close, and says how it differs.
	Approximated Behaviour = "approximated"
	// Ignored: Portico has no equivalent and serves the Ingress without it.
	Ignored Behaviour = "ignored"
	// Refused: serving the Ingress without the annotation could expose or break it, so Portico does
	// not serve the Ingress; a field error names the annotation.
	Refused Behaviour = "refused"
)

// Notice reports one annotation that Portico did not reproduce exactly, or reproduced with a warning.
type Notice struct {
	// Annotation is the full annotation key.
	Annotation string `json:"annotation"`
	// Behaviour of Portico for this value of the annotation.
	Behaviour Behaviour `json:"behaviour"`
	// Message says what Portico does instead, for the Ingress's author.
	Message string `json:"message"`
}

func (n Notice) String() string {
	return fmt.Sprintf("%s (%s): %s", n.Annotation, n.Behaviour, n.Message)
}

// Ingress translates one Ingress into TenantRoutes. It is pure: the same Input gives the same Result.
func Ingress(in Input) Result {
	ing := in.Ingress
	if ing == nil {
		return Result{}
	}
	class, classErr := SelectClass(ing, in.IngressClasses)
	if class == nil {
		return Result{}
	}
	res := Result{Class: class}
	if classErr != nil {
		res.Errors = field.ErrorList{classErr}
		return res
	}
	if IsCanary(ing) {
		res.Canary = true
		res.Notices = []Notice{{
			Annotation: annotationPrefix + "canary",
			Behaviour:  Exact,
			Message: "this Ingress is a canary: it has no routes of its own; its backends join the rules of " +
				"the Ingresses with the same host and path, as in ingress-nginx, and it is ignored where there is none",
		}}
		return res
	}
	t := newIngressTranslator(in, class)
	t.translate()
	res.Notices = t.notices.sorted()
	if len(t.errs) > 0 {
		res.Errors = t.errs
		return res
	}
	res.Routes = t.routes
	return res
}

// Source is the status.source the reconciler records on every TenantRoute of the Ingress.
func Source(ing *networkingv1.Ingress) *edgev1alpha1.RouteSource {
	return &edgev1alpha1.RouteSource{
		Group:              networkingv1.GroupName,
		Kind:               ingressKind,
		Name:               ing.Name,
		ObservedGeneration: ing.Generation,
	}
}

// SourceLabels select the TenantRoutes generated from the named Ingress (in its namespace), for
// finding the ones a new translation no longer produces.
func SourceLabels(ingressName string) map[string]string {
	return sourceLabels(ingressKind, ingressName)
}

func sourceLabels(kind, name string) map[string]string {
	return map[string]string{
		edgev1alpha1.LabelSourceKind: kind,
		edgev1alpha1.LabelSourceName: labelValue(name),
	}
}

// IsCanary reports whether the Ingress is an ingress-nginx canary (nginx.ingress.kubernetes.io/canary: "true").
func IsCanary(ing *networkingv1.Ingress) bool {
	v, ok := ing.Annotations[annotationPrefix+"canary"]
	if !ok {
		return false
	}
	b, err := parseBool(v)
	return err == nil && b
}
