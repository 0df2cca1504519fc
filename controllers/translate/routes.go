package translate

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// buildRoutes turns the groups into TenantRoutes: the first group is RouteName(ingress), the others
// are named after their first hostname; groups too big for one route are split into "-2", "-3"...
func (t *ingressTranslator) buildRoutes(groups []*hostGroup) []*edgev1alpha1.TenantRoute {
	used := map[string]bool{}
	var routes []*edgev1alpha1.TenantRoute
	for gi, g := range groups {
		base := RouteName(t.ing.Name)
		if gi > 0 {
			first := ""
			if len(g.hostnames) > 0 {
				first = string(g.hostnames[0])
			}
			base = extraRouteName(t.ing.Name, first)
		}
		if used[base] {
			base = shorten(base+"-"+hashOf(g.key), maxObjectName)
		}
		ruleChunks := packRules(g.rules)
		idx := 0
		for _, hosts := range chunk(g.hostnames, maxHostnames) {
			for _, rules := range ruleChunks {
				name := chunkRouteName(base, idx)
				used[name] = true
				r := t.newRoute(name, hosts, rules)
				if idx == 0 {
					r.Spec.TLS = g.tls
				}
				routes = append(routes, r)
				idx++
			}
		}
		used[base] = true
	}
	return routes
}

func (t *ingressTranslator) newRoute(name string, hosts []edgev1alpha1.Hostname, drafts []*draftRule) *edgev1alpha1.TenantRoute {
	namer := ruleNamer{}
	rules := make([]edgev1alpha1.TenantRouteRule, len(drafts))
	for i, d := range drafts {
		rules[i] = *d.rule.DeepCopy()
		rules[i].Name = ptrTo(gwapiv1.SectionName(namer.name(d.baseName)))
	}
	r := &edgev1alpha1.TenantRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: edgev1alpha1.GroupVersion.String(), Kind: "TenantRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: t.ing.Namespace,
			Labels: map[string]string{
				edgev1alpha1.LabelSourceKind: ingressKind,
				edgev1alpha1.LabelSourceName: labelValue(t.ing.Name),
				edgev1alpha1.LabelEdgeProxy:  labelValue(t.class.EdgeProxy),
			},
		},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: t.class.EdgeProxy,
			Hostnames: hosts,
			Rules:     rules,
			Policy:    t.cfg.policy.DeepCopy(),
		},
	}
	// An Ingress read from a file (portico proxy --files) has no UID, and an owner reference
	// without one would be refused by the API server.
	if t.ing.UID != "" {
		r.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         networkingv1.SchemeGroupVersion.String(),
			Kind:               ingressKind,
			Name:               t.ing.Name,
			UID:                t.ing.UID,
			Controller:         ptrTo(true),
			BlockOwnerDeletion: ptrTo(true),
		}}
	}
	return r
}
