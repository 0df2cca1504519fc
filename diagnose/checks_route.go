package diagnose

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/admission"
	"github.com/portico-dev/portico/controllers/snapshot"
)

// CheckRoute appends the checklist of one TenantRoute to the report, in the checklist's order:
// backends, EdgeProxy, admission, hostname ownership, conditions, certificates, EdgeProxy fleet.
// The class step of an Ingress or HTTPRoute comes from the caller, before this.
func CheckRoute(r *Report, s *State, tr *edgev1alpha1.TenantRoute) {
	checkBackends(r, s, tr)
	ep := checkEdgeProxyRef(r, s, tr)
	if ep != nil {
		checkAdmission(r, s, tr, ep)
	} else if _, hidden := s.Errs[keyEdgeProxy(tr.Spec.EdgeProxy)]; hidden {
		r.add(Step{Section: "admission", Title: "namespace and hostnames admitted by EdgeProxy " + tr.Spec.EdgeProxy, Status: Unknown,
			Evidence: []string{couldNotCheck(keyEdgeProxy(tr.Spec.EdgeProxy), s.Errs[keyEdgeProxy(tr.Spec.EdgeProxy)]),
				"the Accepted condition below is the operator's verdict (NamespaceNotServed, HostnameNotAllowed)"}})
	}
	checkConflicts(r, s, tr)
	checkConditions(r, tr)
	checkTLS(r, s, tr)
	if ep != nil {
		CheckEdgeProxy(r, s, ep)
	}
}

func routeName(tr *edgev1alpha1.TenantRoute) string {
	return "TenantRoute " + tr.Namespace + "/" + tr.Name
}

// checkBackends: Service exists, the port resolves, EndpointSlices have ready endpoints.
func checkBackends(r *Report, s *State, tr *edgev1alpha1.TenantRoute) {
	refs := admission.BackendRefs(tr)
	if len(refs) == 0 {
		r.add(Step{Section: "backend", Title: "backends of " + routeName(tr), Status: OK,
			Evidence: []string{"the route names no Service backend (redirects only)"}})
		return
	}
	seen := map[string]bool{}
	for _, b := range refs {
		port := backendPort(tr, b.Path.String())
		id := fmt.Sprintf("%s:%d", b.Service, port)
		if seen[id] {
			continue
		}
		seen[id] = true
		title := fmt.Sprintf("Service %s port %d (%s)", b.Service, port, b.Path)
		if st, ok := s.unknownStep("backend", title, keyService(b.Service)); ok {
			r.add(st)
			continue
		}
		svc := s.Services[b.Service]
		if svc == nil {
			r.add(Step{Section: "backend", Title: title, Status: Failed,
				Evidence: []string{fmt.Sprintf("Service %q not found in namespace %q", b.Service.Name, b.Service.Namespace)},
				Cause:    "502/503: the backend Service does not exist (wrong name or namespace); the proxy answers 503 no_endpoints",
				Fix:      fmt.Sprintf("create the Service or fix the backend name; check: kubectl get svc %s -n %s -o wide", b.Service.Name, b.Service.Namespace)})
			continue
		}
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			r.add(Step{Section: "backend", Title: title, Status: Warning,
				Evidence: []string{"type ExternalName → " + svc.Spec.ExternalName},
				Cause:    "ExternalName Services are refused unless the EdgeProxy sets spec.allowExternalNameServices",
				Fix:      "use a Service with a selector (or EndpointSlices), or ask the platform team to allow ExternalName"})
			continue
		}
		sp := servicePort(svc, port)
		if sp == nil {
			r.add(Step{Section: "backend", Title: title, Status: Failed,
				Evidence: []string{"the Service's ports: " + describePorts(svc)},
				Cause:    fmt.Sprintf("502/503: wrong Service port: the route sends to port %d, which the Service does not expose; the proxy answers 503 no_endpoints", port),
				Fix:      fmt.Sprintf("point the backend at one of the Service's ports (%s), not the container port", describePorts(svc))})
			continue
		}
		allowUnmanaged := false
		if ep := s.EdgeProxies[tr.Spec.EdgeProxy]; ep != nil {
			allowUnmanaged = ep.Spec.AllowUnmanagedEndpointSlices
		}
		r.add(checkEndpoints(s, svc, sp, allowUnmanaged, title))
	}
}

// backendPort finds the port of the backendRef at path "spec.rules[i].backendRefs[j]".
func backendPort(tr *edgev1alpha1.TenantRoute, path string) int32 {
	var i, j int
	if _, err := fmt.Sscanf(path, "spec.rules[%d].backendRefs[%d]", &i, &j); err != nil {
		return 0
	}
	if b := tr.Spec.Rules[i].BackendRefs[j]; b.Port != nil {
		return int32(*b.Port)
	}
	return 0
}

func servicePort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

func describePorts(svc *corev1.Service) string {
	var out []string
	for _, p := range svc.Spec.Ports {
		s := fmt.Sprintf("%d→%s", p.Port, p.TargetPort.String())
		if p.Name != "" {
			s += " (" + p.Name + ")"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// checkEndpoints counts ready endpoints the way the operator's snapshot does: trusted slices
// (snapshot.SliceTrusted), the port matched by name, ready and not terminating.
func checkEndpoints(s *State, svc *corev1.Service, sp *corev1.ServicePort, allowUnmanaged bool, title string) Step {
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	st := Step{Section: "backend", Title: title}
	if u, ok := s.unknownStep("backend", title, keySlices(nn)); ok {
		u.Evidence = append([]string{"Service port " + describePorts(&corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{*sp}}})}, u.Evidence...)
		return u
	}
	ready, notReady, untrusted, noPort := 0, 0, 0, 0
	var addrs []string
	for _, sl := range s.Slices[nn] {
		if !snapshot.SliceTrusted(&sl, svc, allowUnmanaged) {
			untrusted++
			continue
		}
		var port *discoveryv1.EndpointPort
		for i := range sl.Ports {
			if n := sl.Ports[i].Name; (n == nil && sp.Name == "") || (n != nil && *n == sp.Name) {
				port = &sl.Ports[i]
			}
		}
		if port == nil || port.Port == nil {
			noPort++
			continue
		}
		for _, e := range sl.Endpoints {
			if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || (e.Conditions.Terminating != nil && *e.Conditions.Terminating) {
				notReady += len(e.Addresses)
				continue
			}
			for _, a := range e.Addresses {
				ready++
				if len(addrs) < 5 {
					addrs = append(addrs, fmt.Sprintf("%s:%d", a, *port.Port))
				}
			}
		}
	}
	st.Evidence = append(st.Evidence, fmt.Sprintf("Service port %d → targetPort %s; %d EndpointSlice(s): %d ready, %d not ready",
		sp.Port, sp.TargetPort.String(), len(s.Slices[nn]), ready, notReady))
	if len(addrs) > 0 {
		st.Evidence = append(st.Evidence, "ready endpoints: "+strings.Join(addrs, ", "))
	}
	check := fmt.Sprintf("kubectl get endpointslice -n %s -l kubernetes.io/service-name=%s -o wide", nn.Namespace, nn.Name)
	switch {
	case ready > 0:
		st.Status = OK
		return st
	case notReady > 0:
		st.Cause = "502/503: Pod not ready: the Service has endpoints but none is ready; the proxy answers 503 no_endpoints"
		st.Fix = "look at the Pods' readiness probes and logs (kubectl describe pod); " + check
	case noPort > 0:
		st.Cause = fmt.Sprintf("502/503: the EndpointSlices carry no port named %q: the Service port's name or targetPort does not match the Pods", sp.Name)
		st.Fix = "make the Service's targetPort name a containerPort of the Pods; " + check
	case untrusted > 0:
		st.Cause = "502/503: only hand-made EndpointSlices (not managed by endpointslice-controller.k8s.io); Portico does not trust them, the proxy answers 503 no_endpoints"
		if len(svc.Spec.Selector) > 0 {
			st.Fix = "the Service has a selector, so only the EndpointSlice controller's slices count: make the selector match the Pods"
		} else {
			st.Fix = "give the Service a selector so the EndpointSlice controller manages its endpoints, or ask the platform team to set the EdgeProxy's spec.allowUnmanagedEndpointSlices (unsafe where tenants are not trusted)"
		}
	default:
		st.Cause = "502/503: Service has no endpoints: its selector matches no Pods (or it has no selector); the proxy answers 503 no_endpoints"
		st.Fix = "compare the Service's selector with the Pods' labels (kubectl get pods -l ...); " + check
	}
	st.Status = Failed
	return st
}

// checkEdgeProxyRef: spec.edgeProxy exists.
func checkEdgeProxyRef(r *Report, s *State, tr *edgev1alpha1.TenantRoute) *edgev1alpha1.EdgeProxy {
	title := fmt.Sprintf("%s → EdgeProxy %s", routeName(tr), tr.Spec.EdgeProxy)
	if st, ok := s.unknownStep("class", title, keyEdgeProxy(tr.Spec.EdgeProxy)); ok {
		st.Evidence = append(st.Evidence, "the route's Accepted condition below says whether the operator found it")
		r.add(st)
		return nil
	}
	ep := s.EdgeProxies[tr.Spec.EdgeProxy]
	if ep == nil {
		r.add(Step{Section: "class", Title: title, Status: Failed,
			Evidence: []string{fmt.Sprintf("EdgeProxy %q not found", tr.Spec.EdgeProxy)},
			Cause:    "no address / 404: no proxy fleet serves this route (EdgeProxyNotFound)",
			Fix:      "fix spec.edgeProxy (Ingress: the IngressClass's parameters or name), or ask the platform team for an EdgeProxy"})
		return nil
	}
	r.add(Step{Section: "class", Title: title, Status: OK,
		Evidence: []string{fmt.Sprintf("proxy fleet in namespace %s", ep.Spec.ProxyNamespace)}})
	return ep
}

// checkAdmission: the namespace is served and each hostname allowed.
func checkAdmission(r *Report, s *State, tr *edgev1alpha1.TenantRoute, ep *edgev1alpha1.EdgeProxy) {
	title := fmt.Sprintf("namespace %s served by EdgeProxy %s", tr.Namespace, ep.Name)
	var labels map[string]string
	if ns := s.Namespaces[tr.Namespace]; ns != nil {
		labels = ns.Labels
	}
	served, err := admission.NamespaceServed(ep, tr.Namespace, labels)
	switch {
	case err != nil:
		r.add(Step{Section: "admission", Title: title, Status: Failed, Evidence: []string{err.Error()}})
	case served:
		r.add(Step{Section: "admission", Title: title, Status: OK})
	case s.Errs[keyNamespace(tr.Namespace)] != nil && ep.Spec.TenantNamespaces.Selector != nil:
		r.add(Step{Section: "admission", Title: title, Status: Unknown,
			Evidence: []string{couldNotCheck(keyNamespace(tr.Namespace), s.Errs[keyNamespace(tr.Namespace)]) + " (the EdgeProxy selects namespaces by label)"}})
	default:
		r.add(Step{Section: "admission", Title: title, Status: Failed,
			Evidence: []string{fmt.Sprintf("spec.tenantNamespaces: names %v, selector %s", ep.Spec.TenantNamespaces.Names,
				metav1.FormatLabelSelector(ep.Spec.TenantNamespaces.Selector))},
			Cause: "404: the route is refused (NamespaceNotServed); its hosts are not served by this EdgeProxy",
			Fix:   "ask the platform team to add the namespace to the EdgeProxy's spec.tenantNamespaces, or use the class of the EdgeProxy serving it"})
	}
	hosts := map[string]bool{}
	var order []string
	for _, h := range tr.Spec.Hostnames {
		order, hosts[string(h)] = append(order, string(h)), true
	}
	for _, t := range tr.Spec.TLS {
		for _, h := range t.Hosts {
			if !hosts[string(h)] {
				order, hosts[string(h)] = append(order, string(h)), true
			}
		}
	}
	for _, h := range order {
		title := fmt.Sprintf("hostname %s allowed by EdgeProxy %s", h, ep.Name)
		if admission.HostnameAllowed(ep.Spec.Hostnames, h) {
			r.add(Step{Section: "admission", Title: title, Status: OK})
			continue
		}
		r.add(Step{Section: "admission", Title: title, Status: Failed,
			Evidence: []string{fmt.Sprintf("EdgeProxy spec.hostnames: %v", ep.Spec.Hostnames)},
			Cause:    "404: the route is refused (HostnameNotAllowed): the host is outside the tenant's allow-list (a wildcard covers exactly one extra label)",
			Fix:      "use a hostname the EdgeProxy allows, or ask the platform team to add it to spec.hostnames"})
	}
}

// checkConflicts: is each hostname owned by this route's namespace? The owner is named only when
// the caller can read it.
func checkConflicts(r *Report, s *State, tr *edgev1alpha1.TenantRoute) {
	acc := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionAccepted))
	conflict := acc != nil && acc.Status == metav1.ConditionFalse && acc.Reason == string(edgev1alpha1.RouteReasonHostnameConflict)
	hosts := tr.Spec.Hostnames
	if len(hosts) == 0 {
		hosts = []edgev1alpha1.Hostname{""}
	}
	_, peersHidden := s.Errs[keyPeers(tr.Spec.EdgeProxy)]
	for _, h := range hosts {
		name := string(h)
		if name == "" {
			name = "(catch-all)"
		}
		title := "ownership of " + name
		var owners []string
		for _, p := range s.Peers[tr.Spec.EdgeProxy] {
			if p.Namespace != tr.Namespace && admitted(&p) && claimsOverlap(p.Spec.Hostnames, string(h)) {
				owners = append(owners, fmt.Sprintf("TenantRoute %s/%s (created %s)", p.Namespace, p.Name, p.CreationTimestamp.UTC().Format("2006-01-02 15:04")))
			}
		}
		st := Step{Section: "conflicts", Title: title, Status: OK}
		switch {
		case len(owners) > 0:
			st.Evidence = append(st.Evidence, "claimed in another namespace by "+strings.Join(owners, ", "))
		case conflict && peersHidden:
			st.Evidence = append(st.Evidence, "the owner is a route in another namespace you may not read; the operator's log names it for the platform team")
		}
		if conflict && (len(owners) > 0 || strings.Contains(acc.Message, fmt.Sprintf("%q", name)) || len(tr.Spec.Hostnames) == 0) {
			st.Status = Failed
			st.Evidence = append(st.Evidence, "Accepted=False HostnameConflict: "+acc.Message)
			st.Cause = "404 (or another team's app answers): the hostname belongs to the oldest accepted route of another namespace; this route is refused and the owner's traffic is untouched"
			st.Fix = "use another hostname, or have the owner release it (delete or change their route)"
		} else if len(owners) > 0 {
			st.Status = Warning
			st.Cause = "another namespace serves this host or a wildcard covering it"
		}
		if st.Status == OK && len(st.Evidence) == 0 {
			if peersHidden {
				st.Evidence = append(st.Evidence, "no conflict reported on the route (you may not list other namespaces' routes)")
			} else {
				st.Evidence = append(st.Evidence, "no route of another namespace claims it")
			}
		}
		r.add(st)
	}
}

func admitted(tr *edgev1alpha1.TenantRoute) bool { return snapshot.Admitted(tr) }

// claimsOverlap: the same name, a wildcard covering it, or an exact name under it ("" is the catch-all).
func claimsOverlap(hosts []edgev1alpha1.Hostname, h string) bool {
	if len(hosts) == 0 {
		return h == ""
	}
	for _, o := range hosts {
		a, b := strings.ToLower(string(o)), strings.ToLower(h)
		if a == b || (b != "" && (admission.HostnameAllowed([]edgev1alpha1.Hostname{edgev1alpha1.Hostname(a)}, b) ||
			admission.HostnameAllowed([]edgev1alpha1.Hostname{edgev1alpha1.Hostname(b)}, a))) {
			return true
		}
	}
	return false
}
