package translate

import (
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// legacyClassAnnotation is the class annotation of Ingresses written before spec.ingressClassName.
const legacyClassAnnotation = "kubernetes.io/ingress.class"

// SelectClass decides whether an Ingress is Portico's. The class is, in order: spec.ingressClassName;
// the legacy kubernetes.io/ingress.class annotation, which must name an IngressClass object too;
// for an Ingress with neither, the IngressClass marked ingressclass.kubernetes.io/is-default-class
// (the newest one when several are, as the API server's admission picks it). The Ingress is
// Portico's when that class's spec.controller is edge.portico.dev/ingress-controller; the class's
// parameters (edge.portico.dev EdgeProxy) name the EdgeProxy, else the class's name does, which is
// how an IngressClass named "nginx" keeps migrated manifests unchanged.
//
// It returns nil for an Ingress of another controller, or naming a class that does not exist (yet).
// The error is set, with a Class whose EdgeProxy is empty, when the class is Portico's but its
// parameters name something other than an EdgeProxy.
func SelectClass(ing *networkingv1.Ingress, classes []networkingv1.IngressClass) (*Class, *field.Error) {
	var class *networkingv1.IngressClass
	var classPath *field.Path
	switch {
	case ing.Spec.IngressClassName != nil:
		class = findClass(classes, *ing.Spec.IngressClassName)
		classPath = field.NewPath("spec", "ingressClassName")
	case ing.Annotations[legacyClassAnnotation] != "":
		class = findClass(classes, ing.Annotations[legacyClassAnnotation])
		classPath = field.NewPath("metadata", "annotations").Key(legacyClassAnnotation)
	default:
		class = defaultClass(classes)
		classPath = field.NewPath("spec", "ingressClassName")
	}
	if class == nil || class.Spec.Controller != edgev1alpha1.IngressControllerName {
		return nil, nil
	}
	out := &Class{Name: class.Name, EdgeProxy: class.Name}
	params := class.Spec.Parameters
	if params == nil {
		return out, nil
	}
	group := ""
	if params.APIGroup != nil {
		group = *params.APIGroup
	}
	switch {
	case group != edgev1alpha1.GroupVersion.Group || params.Kind != "EdgeProxy":
		out.EdgeProxy = ""
		return out, field.Invalid(classPath, class.Name, fmt.Sprintf(
			"IngressClass %s belongs to Portico but its parameters reference %s %q; they must reference an EdgeProxy (apiGroup %s), or be left out to use the EdgeProxy named like the class",
			class.Name, groupKind(group, params.Kind), params.Name, edgev1alpha1.GroupVersion.Group))
	case params.Scope != nil && *params.Scope != networkingv1.IngressClassParametersReferenceScopeCluster:
		out.EdgeProxy = ""
		return out, field.Invalid(classPath, class.Name, fmt.Sprintf(
			"IngressClass %s: parameters.scope must be Cluster, EdgeProxies are cluster-scoped", class.Name))
	}
	out.EdgeProxy = params.Name
	return out, nil
}

func findClass(classes []networkingv1.IngressClass, name string) *networkingv1.IngressClass {
	for i := range classes {
		if classes[i].Name == name {
			return &classes[i]
		}
	}
	return nil
}

// defaultClass is the newest IngressClass marked as the default, then the first by name, so that
// every controller in the cluster reaches the same answer and at most one serves the Ingress.
func defaultClass(classes []networkingv1.IngressClass) *networkingv1.IngressClass {
	var best *networkingv1.IngressClass
	for i := range classes {
		c := &classes[i]
		if !strings.EqualFold(c.Annotations[networkingv1.AnnotationIsDefaultIngressClass], "true") {
			continue
		}
		if best == nil {
			best = c
			continue
		}
		newer := c.CreationTimestamp.After(best.CreationTimestamp.Time)
		sameAge := c.CreationTimestamp.Equal(&best.CreationTimestamp)
		if newer || (sameAge && c.Name < best.Name) {
			best = c
		}
	}
	return best
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}
