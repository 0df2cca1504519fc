// Package filesmode gives `portico proxy --files` the operator's own decisions, as dataplane/files
// Hooks: controllers/translate lowers Ingresses and, through their Gateways, HTTPRoutes;
// controllers/admission applies the EdgeProxy's namespace, hostname and ownership rules. dataplane
// may not import controllers, so the binary wires them together here.
package filesmode

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/translate"
	"github.com/portico-dev/portico/dataplane/files"
)

// Hooks are the translation and admission the operator runs, for files mode.
func Hooks() files.Hooks {
	return files.Hooks{TranslateIngress: TranslateIngress, TranslateGatewayAPI: TranslateGatewayAPI, Admit: Admit}
}

// TranslateIngress runs translate.Ingress on one Ingress of the directory. Notices become warnings on
// the annotation they are about; field errors become errors, and none of the Ingress's routes are
// served, as in a cluster.
func TranslateIngress(in files.IngressInput) files.IngressOutput {
	var canaries []networkingv1.Ingress
	for i := range in.Ingresses {
		if c := &in.Ingresses[i]; c.Name != in.Ingress.Name && translate.IsCanary(c) {
			canaries = append(canaries, *c)
		}
	}
	res := translate.Ingress(translate.Input{
		Ingress:        in.Ingress,
		IngressClasses: in.IngressClasses,
		Services:       in.Services,
		Canaries:       canaries,
		EdgeProxy:      in.EdgeProxy,
	})
	if res.Class == nil {
		return files.IngressOutput{Ignored: fmt.Sprintf(
			"not served: its IngressClass %s is not an IngressClass of the directory with spec.controller %s",
			className(in.Ingress), edgev1alpha1.IngressControllerName)}
	}
	var out files.IngressOutput
	annotations := field.NewPath("metadata", "annotations")
	for _, n := range res.Notices {
		out.Problems = append(out.Problems, files.Finding{Field: annotations.Key(n.Annotation).String(),
			Message: fmt.Sprintf("%s: %s", n.Behaviour, n.Message), Warning: true})
	}
	for _, e := range res.Errors {
		out.Problems = append(out.Problems, files.Finding{Field: e.Field, Message: e.ErrorBody()})
	}
	for _, r := range res.Routes {
		out.Routes = append(out.Routes, *r)
	}
	return out
}

func className(ing *networkingv1.Ingress) string {
	switch {
	case ing.Spec.IngressClassName != nil:
		return fmt.Sprintf("%q", *ing.Spec.IngressClassName)
	case ing.Annotations["kubernetes.io/ingress.class"] != "":
		return fmt.Sprintf("%q (kubernetes.io/ingress.class)", ing.Annotations["kubernetes.io/ingress.class"])
	}
	return "(the default class, none here)"
}

// Admit runs the operator's admission of every route by the directory's EdgeProxy: admission.Check
// (EdgeProxy, served namespace, allowed hostnames), then admission.Resolve (a hostname belongs to
// one namespace). A route that does not compile is left to routing.Build, which reports each field.
func Admit(in files.AdmitInput) files.AdmitOutput {
	out := files.AdmitOutput{Defaults: admission.Defaults(in.EdgeProxy), Refused: map[int]string{}}
	var claims []admission.Claim
	index := map[types.NamespacedName]int{}
	for i, tr := range in.Routes {
		ep := in.EdgeProxy
		if tr.Spec.EdgeProxy != ep.Name {
			ep = nil // not the directory's: EdgeProxyNotFound
		}
		checked := admission.Check(admission.Input{Route: tr, EdgeProxy: ep, NamespaceLabels: in.NamespaceLabels[tr.Namespace]})
		switch {
		case checked.OK:
			claims = append(claims, checked.Claim)
			index[types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}] = i
		case checked.Reason != edgev1alpha1.RouteReasonInvalid:
			out.Refused[i] = fmt.Sprintf("%s: %s", checked.Reason, checked.Message)
		}
	}
	for key, c := range admission.Resolve(claims) {
		v := admission.ConflictVerdict(c)
		out.Refused[index[key]] = fmt.Sprintf("%s: %s", v.Reason, v.Message)
	}
	return out
}
