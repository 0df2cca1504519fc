package diagnose

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/translate"
)

// Options of a diagnose run.
type Options struct {
	// Probe sends a real request through the proxy (Probe).
	Probe ProbeOptions
	// Now decides certificate expiry; time.Now when zero.
	Now time.Time
}

func proxyObjectName(ep *edgev1alpha1.EdgeProxy) string { return render.ObjectName(ep) }

func newGatherer(c client.Reader, o Options) *Gatherer {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	return &Gatherer{C: c, S: NewState(now)}
}

// notFound is returned when the object to diagnose does not exist or may not be read.
func notFound(kind string, nn types.NamespacedName, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s not found", kind, nn)
	}
	return fmt.Errorf("read %s %s: %w", kind, nn, err)
}

// TenantRoute diagnoses one TenantRoute.
func TenantRoute(ctx context.Context, c client.Reader, nn types.NamespacedName, o Options) (*Report, error) {
	tr := &edgev1alpha1.TenantRoute{}
	if err := c.Get(ctx, nn, tr); err != nil {
		return nil, notFound("TenantRoute", nn, err)
	}
	g := newGatherer(c, o)
	g.Route(ctx, tr)
	r := &Report{Target: routeName(tr)}
	CheckRoute(r, g.S, tr)
	probeRoutes(ctx, r, g.S, []edgev1alpha1.TenantRoute{*tr}, o.Probe)
	return r, nil
}

// Ingress diagnoses an Ingress: its class, its translation (annotations), then every TenantRoute
// lowered from it.
func Ingress(ctx context.Context, c client.Reader, nn types.NamespacedName, o Options) (*Report, error) {
	ing := &networkingv1.Ingress{}
	if err := c.Get(ctx, nn, ing); err != nil {
		return nil, notFound("Ingress", nn, err)
	}
	g := newGatherer(c, o)
	g.S.Ingress = ing
	g.IngressClasses(ctx)
	r := &Report{Target: "Ingress " + nn.String()}
	class := checkIngressClass(r, g.S, ing)
	var routes edgev1alpha1.TenantRouteList
	if class != nil {
		if err := c.List(ctx, &routes, client.InNamespace(nn.Namespace), client.MatchingLabels(translate.SourceLabels(ing.Name))); err != nil {
			g.S.Errs["TenantRoutes of the Ingress"] = err
		}
		checkIngressTranslation(ctx, r, g, ing, class)
	}
	if class != nil && len(routes.Items) == 0 {
		st := Step{Section: "source", Title: "TenantRoutes lowered from the Ingress", Status: Failed,
			Evidence: []string{fmt.Sprintf("none labelled %s=Ingress, %s=%s", edgev1alpha1.LabelSourceKind, edgev1alpha1.LabelSourceName, ing.Name)},
			Cause:    "404: the operator has not translated the Ingress (not running, or the translation failed: see its Events)",
			Fix:      fmt.Sprintf("kubectl describe ingress %s -n %s", ing.Name, ing.Namespace)}
		if err, ok := g.S.Errs["TenantRoutes of the Ingress"]; ok {
			st.Status, st.Evidence, st.Cause, st.Fix = Unknown, []string{couldNotCheck("TenantRoutes in "+nn.Namespace, err)}, "", ""
		}
		r.add(st)
	}
	for i := range routes.Items {
		g.Route(ctx, &routes.Items[i])
		CheckRoute(r, g.S, &routes.Items[i])
	}
	probeRoutes(ctx, r, g.S, routes.Items, o.Probe)
	return r, nil
}

// checkIngressClass: class → controller → EdgeProxy, the reasons an Ingress looks valid while no
// traffic moves.
func checkIngressClass(r *Report, s *State, ing *networkingv1.Ingress) *translate.Class {
	title := "IngressClass of Ingress " + ing.Namespace + "/" + ing.Name
	if st, ok := s.unknownStep("class", title, keyIngressClasses()); ok {
		r.add(st)
		return nil
	}
	want := "(none: the default class)"
	switch {
	case ing.Spec.IngressClassName != nil:
		want = *ing.Spec.IngressClassName
	case ing.Annotations["kubernetes.io/ingress.class"] != "":
		want = ing.Annotations["kubernetes.io/ingress.class"] + " (legacy annotation kubernetes.io/ingress.class)"
	}
	class, err := translate.SelectClass(ing, s.IngressClasses)
	st := Step{Section: "class", Title: title, Evidence: []string{"class: " + want}}
	var ours []string
	for _, ic := range s.IngressClasses {
		if ic.Spec.Controller == edgev1alpha1.IngressControllerName {
			ours = append(ours, ic.Name)
		}
	}
	switch {
	case class == nil:
		st.Status = Failed
		name, _, _ := strings.Cut(want, " ")
		if ic := findIngressClass(s.IngressClasses, name); ic != nil {
			st.Evidence = append(st.Evidence, fmt.Sprintf("IngressClass %s is served by controller %q, not Portico", ic.Name, ic.Spec.Controller))
			st.Cause = "404 from controller / no address: wrong ingress class: another controller (or none) watches this class"
		} else {
			st.Evidence = append(st.Evidence, "no such IngressClass (and no default class of Portico's)")
			st.Cause = "no address / 404: missing controller: no IngressClass of that name, so no controller reads this Ingress"
		}
		st.Fix = fmt.Sprintf("set spec.ingressClassName to a Portico class (%s); kubectl get ingressclass", strings.Join(ours, ", "))
	case err != nil:
		st.Status = Failed
		st.Evidence = append(st.Evidence, err.Error())
		st.Cause = "the IngressClass is Portico's but its parameters do not name an EdgeProxy"
		st.Fix = "fix the IngressClass's spec.parameters (apiGroup edge.portico.dev, kind EdgeProxy)"
	default:
		st.Status = OK
		st.Evidence = append(st.Evidence, fmt.Sprintf("IngressClass %s → controller %s → EdgeProxy %s", class.Name, edgev1alpha1.IngressControllerName, class.EdgeProxy))
	}
	r.add(st)
	if class == nil || err != nil {
		return nil
	}
	return class
}

func findIngressClass(classes []networkingv1.IngressClass, name string) *networkingv1.IngressClass {
	for i := range classes {
		if classes[i].Name == name {
			return &classes[i]
		}
	}
	return nil
}

// checkIngressTranslation translates the Ingress again (pure) to report its annotations: what was
// ignored or approximated, and the rewrite-target that sends every path to "/".
func checkIngressTranslation(ctx context.Context, r *Report, g *Gatherer, ing *networkingv1.Ingress, class *translate.Class) {
	var svcs corev1.ServiceList
	_ = g.C.List(ctx, &svcs, client.InNamespace(ing.Namespace)) // named ports only; best effort
	res := translate.Ingress(translate.Input{Ingress: ing, IngressClasses: g.S.IngressClasses, Services: svcs.Items,
		EdgeProxy: g.EdgeProxy(ctx, class.EdgeProxy)})
	for _, e := range res.Errors {
		r.add(Step{Section: "source", Title: "translation of Ingress " + ing.Namespace + "/" + ing.Name, Status: Failed,
			Evidence: []string{e.Error()}, Cause: "the Ingress cannot be translated; its routes keep serving the last good translation, or none",
			Fix: "fix the field named"})
	}
	for _, n := range res.Notices {
		st := Step{Section: "source", Title: "annotation " + n.Annotation, Status: Warning, Evidence: []string{string(n.Behaviour) + ": " + n.Message}}
		switch {
		case strings.HasSuffix(n.Annotation, "/rewrite-target"):
			st.Cause = "path rewrite breaks app: a controller-specific rewrite annotation sends every request to the same path; the app sees a different path than expected"
			st.Fix = "capture the rest of the path (path \"/api(/|$)(.*)\", rewrite-target \"/$2\"), or serve the app under its base path and drop the rewrite"
		case n.Behaviour == translate.Exact:
			st.Status = OK
		default:
			st.Cause = "the annotation is ingress-nginx behaviour Portico does not reproduce exactly"
		}
		r.add(st)
	}
}

// HTTPRoute diagnoses an HTTPRoute: its parent Gateways and their classes, then its TenantRoutes.
func HTTPRoute(ctx context.Context, c client.Reader, nn types.NamespacedName, o Options) (*Report, error) {
	hr := &gwapiv1.HTTPRoute{}
	if err := c.Get(ctx, nn, hr); err != nil {
		return nil, notFound("HTTPRoute", nn, err)
	}
	g := newGatherer(c, o)
	r := &Report{Target: "HTTPRoute " + nn.String()}
	var classes gwapiv1.GatewayClassList
	if !g.list(ctx, keyGatewayClasses(), &classes) {
		classes.Items = nil
	}
	for _, p := range hr.Spec.ParentRefs {
		if p.Kind != nil && *p.Kind != "Gateway" {
			continue
		}
		gnn := types.NamespacedName{Namespace: hr.Namespace, Name: string(p.Name)}
		if p.Namespace != nil {
			gnn.Namespace = string(*p.Namespace)
		}
		title := "parent Gateway " + gnn.String()
		gw := &gwapiv1.Gateway{}
		if !g.get(ctx, keyGateway(gnn), gnn, gw) {
			if st, ok := g.S.unknownStep("class", title, keyGateway(gnn)); ok {
				r.add(st)
				continue
			}
			r.add(Step{Section: "class", Title: title, Status: Failed, Evidence: []string{"Gateway not found"},
				Cause: "404: the route's parent does not exist", Fix: "fix spec.parentRefs"})
			continue
		}
		st := Step{Section: "class", Title: title, Evidence: []string{"gatewayClassName " + string(gw.Spec.GatewayClassName)}}
		if pc := translate.PorticoGatewayClass(classes.Items, string(gw.Spec.GatewayClassName)); pc != nil {
			st.Status = OK
			st.Evidence = append(st.Evidence, "GatewayClass controller "+string(pc.Spec.ControllerName))
		} else if _, failed := g.S.Errs[keyGatewayClasses()]; failed {
			st.Status = Unknown
			st.Evidence = append(st.Evidence, couldNotCheck(keyGatewayClasses(), g.S.Errs[keyGatewayClasses()]))
		} else {
			st.Status = Failed
			st.Cause = "404 / no address: wrong class: the Gateway's GatewayClass is not Portico's (" + edgev1alpha1.GatewayControllerName + ")"
			st.Fix = "kubectl get gatewayclass; use a Gateway of a Portico GatewayClass"
		}
		for _, ps := range hr.Status.Parents {
			if string(ps.ParentRef.Name) == gw.Name && ps.ControllerName == edgev1alpha1.GatewayControllerName {
				for _, cond := range ps.Conditions {
					st.Evidence = append(st.Evidence, fmt.Sprintf("route status %s=%s (%s): %s", cond.Type, cond.Status, cond.Reason, cond.Message))
					if cond.Status != "True" && st.Status == OK {
						st.Status, st.Cause = Failed, "the Gateway does not accept the route (see the condition)"
					}
				}
			}
		}
		r.add(st)
	}
	var routes edgev1alpha1.TenantRouteList
	if err := c.List(ctx, &routes, client.InNamespace(nn.Namespace), client.MatchingLabels(translate.HTTPRouteSourceLabels(hr.Name))); err != nil {
		r.add(Step{Section: "source", Title: "TenantRoutes lowered from the HTTPRoute", Status: Unknown,
			Evidence: []string{couldNotCheck("TenantRoutes in "+nn.Namespace, err)}})
	} else if len(routes.Items) == 0 {
		r.add(Step{Section: "source", Title: "TenantRoutes lowered from the HTTPRoute", Status: Failed,
			Evidence: []string{"none"}, Cause: "404: no parent accepted the route, or the operator is not running",
			Fix: fmt.Sprintf("kubectl describe httproute %s -n %s (status.parents)", hr.Name, hr.Namespace)})
	}
	for i := range routes.Items {
		g.Route(ctx, &routes.Items[i])
		CheckRoute(r, g.S, &routes.Items[i])
	}
	probeRoutes(ctx, r, g.S, routes.Items, o.Probe)
	return r, nil
}

// EdgeProxy diagnoses an EdgeProxy's fleet and summarizes its routes.
func EdgeProxy(ctx context.Context, c client.Reader, name string, o Options) (*Report, error) {
	g := newGatherer(c, o)
	ep := g.EdgeProxy(ctx, name)
	if ep == nil {
		if err, ok := g.S.Errs[keyEdgeProxy(name)]; ok {
			return nil, fmt.Errorf("read EdgeProxy %s: %w", name, err)
		}
		return nil, fmt.Errorf("EdgeProxy %s not found", name)
	}
	r := &Report{Target: "EdgeProxy " + name}
	CheckEdgeProxy(r, g.S, ep)
	if st, ok := g.S.unknownStep("routes", "routes of EdgeProxy "+name, keyPeers(name)); ok {
		r.add(st)
		return r, nil
	}
	for _, tr := range g.S.Peers[name] {
		st := Step{Section: "routes", Title: routeName(&tr) + " " + hostList(tr.Spec.Hostnames), Status: OK}
		if c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted)); c == nil || c.Status != "True" {
			st.Status = Warning
			if c != nil {
				st.Evidence = append(st.Evidence, fmt.Sprintf("Accepted=%s (%s): %s", c.Status, c.Reason, c.Message))
				st.Cause = advice[edgev1alpha1.ConditionReason(c.Reason)][0]
			} else {
				st.Evidence = append(st.Evidence, "not reconciled yet")
			}
		}
		r.add(st)
	}
	return r, nil
}

func hostList(hs []edgev1alpha1.Hostname) string {
	if len(hs) == 0 {
		return "(catch-all)"
	}
	var out []string
	for _, h := range hs {
		out = append(out, string(h))
	}
	return strings.Join(out, ",")
}

// Host diagnoses a hostname: which EdgeProxies allow it, which routes claim it (and which one is
// admitted), then the checklist of the admitted ones.
func Host(ctx context.Context, c client.Reader, host string, o Options) (*Report, error) {
	host = strings.ToLower(host)
	g := newGatherer(c, o)
	r := &Report{Target: "host " + host}
	var eps edgev1alpha1.EdgeProxyList
	if err := c.List(ctx, &eps); err != nil {
		r.add(Step{Section: "class", Title: "EdgeProxies allowing " + host, Status: Unknown, Evidence: []string{couldNotCheck("EdgeProxies", err)}})
	} else {
		st := Step{Section: "class", Title: "EdgeProxies allowing " + host, Status: OK}
		for i := range eps.Items {
			if admission.HostnameAllowed(eps.Items[i].Spec.Hostnames, host) {
				st.Evidence = append(st.Evidence, "EdgeProxy "+eps.Items[i].Name)
				g.S.EdgeProxies[eps.Items[i].Name] = &eps.Items[i]
			}
		}
		if len(st.Evidence) == 0 {
			st.Status = Failed
			st.Cause = "404 / no address: no tenant may serve this host (no EdgeProxy's spec.hostnames allows it)"
			st.Fix = "ask the platform team to add it to an EdgeProxy's spec.hostnames; check DNS points at the right tenant"
		}
		r.add(st)
	}
	var all edgev1alpha1.TenantRouteList
	if err := c.List(ctx, &all); err != nil {
		r.add(Step{Section: "routes", Title: "routes claiming " + host, Status: Unknown, Evidence: []string{couldNotCheck("TenantRoutes in all namespaces", err)},
			Fix: "diagnose your own route instead: portico diagnose ingress|tenantroute NAME -n NS"})
		return r, nil
	}
	var claim, served []edgev1alpha1.TenantRoute
	for _, tr := range all.Items {
		if claimsOverlap(tr.Spec.Hostnames, host) {
			claim = append(claim, tr)
		}
	}
	slices.SortFunc(claim, func(a, b edgev1alpha1.TenantRoute) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	st := Step{Section: "routes", Title: "routes claiming " + host, Status: OK}
	for _, tr := range claim {
		state := "not reconciled"
		if c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted)); c != nil {
			state = fmt.Sprintf("Accepted=%s (%s)", c.Status, c.Reason)
		}
		st.Evidence = append(st.Evidence, fmt.Sprintf("%s/%s → EdgeProxy %s, hosts %s: %s", tr.Namespace, tr.Name, tr.Spec.EdgeProxy, hostList(tr.Spec.Hostnames), state))
		if admitted(&tr) {
			served = append(served, tr)
		}
	}
	if len(served) == 0 {
		st.Status = Failed
		st.Cause = "404 from controller: host does not match any rule: no admitted route serves this host"
		st.Fix = "create a route for it, or see why the routes above are not accepted"
	}
	r.add(st)
	for i := range served {
		g.Route(ctx, &served[i])
		CheckRoute(r, g.S, &served[i])
	}
	if len(served) == 0 {
		for i := range claim {
			g.Route(ctx, &claim[i])
			CheckRoute(r, g.S, &claim[i])
		}
	}
	probeRoutes(ctx, r, g.S, served, o.Probe)
	return r, nil
}
