package files

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Config is one complete reading of the directory.
type Config struct {
	Table     *routing.Table
	Keypairs  tlsstore.Keypairs
	Settings  proxy.Settings
	Endpoints upstream.Endpoints
	Problems  []Problem
	// RoutesDigest changes whenever anything but Services and EndpointSlices changes.
	RoutesDigest [32]byte
}

// Errors returns the problems that are not warnings.
func (c *Config) Errors() []Problem {
	var out []Problem
	for _, p := range c.Problems {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Load reads dir and builds everything from it, without Hooks: Ingresses and Gateway API objects
// are not read and routes are served without the EdgeProxy's admission. LoadWith is what
// `portico proxy --files` runs.
func Load(dir string, base proxy.Settings, now time.Time) (*Config, error) {
	return LoadWith(dir, base, now, Hooks{})
}

// LoadWith reads dir and builds everything from it, translating Ingresses and HTTPRoutes and
// admitting routes with the hooks. It returns an error only when the directory cannot be read;
// problems in its files are in Config.Problems, and whatever is valid is built.
func LoadWith(dir string, base proxy.Settings, now time.Time, hooks Hooks) (*Config, error) {
	return loadWith(dir, base, now, hooks, nil)
}

// loadWith is LoadWith decoding only the files that changed since the cache was filled, when
// there is one (Source's reloads).
func loadWith(dir string, base proxy.Settings, now time.Time, hooks Hooks, cache *fileCache) (*Config, error) {
	o, err := read(dir, cache)
	if err != nil {
		return nil, err
	}
	c := &Config{Problems: o.problems, Settings: base}
	inputs := o.routeInputs
	if len(o.ingresses) > 0 || len(o.httpRoutes) > 0 {
		// Ingress backends may name Service ports, and HTTPRoute backends must exist with their
		// port (its appProtocol too), so Services' ports feed the routes too.
		inputs = append(slices.Clip(inputs), o.servicePorts()...)
	}
	c.RoutesDigest = sha256.Sum256(inputs)
	o.translateIngresses(c, hooks.TranslateIngress)
	o.translateGatewayAPI(c, hooks.TranslateGatewayAPI)
	defaults, routes := o.admit(c, &c.Settings, hooks.Admit)
	snap := routing.Snapshot{Version: fmt.Sprintf("files-%x", c.RoutesDigest[:6]), Defaults: defaults}
	fileOf := map[types.NamespacedName]string{}
	for _, r := range routes {
		snap.Routes = append(snap.Routes, r.obj)
		fileOf[types.NamespacedName{Namespace: r.obj.Namespace, Name: r.obj.Name}] = r.file
	}
	var errs []routing.RouteError
	c.Table, errs = routing.Build(snap)
	for _, e := range errs {
		obj := "TenantRoute " + e.Namespace + "/" + e.Name
		file := fileOf[types.NamespacedName{Namespace: e.Namespace, Name: e.Name}]
		for _, fe := range e.Errors {
			c.Problems = append(c.Problems, Problem{File: file, Object: obj, Field: fe.Field,
				Message: strings.TrimPrefix(fe.ErrorBody(), fe.Field+": ")})
		}
	}
	c.Keypairs = o.keypairs(c, now)
	c.Endpoints = o.endpoints(c)
	o.checkBackends(c, routes)
	return c, nil
}

// servicePorts fingerprints the Services' ports: an Ingress backend naming a port by name
// translates differently when they change.
func (o *objects) servicePorts() []byte {
	var b []byte
	for _, s := range o.services {
		ports, _ := json.Marshal(s.obj.Spec.Ports)
		b = append(append(append(b, s.obj.Namespace+"/"+s.obj.Name+"="...), ports...), 0)
	}
	return b
}

// translateIngresses adds the TenantRoutes of every Ingress to the routes, each attributed to the
// Ingress's file, and its problems to the configuration's.
func (o *objects) translateIngresses(c *Config, translate func(IngressInput) IngressOutput) {
	if translate == nil {
		for _, ing := range o.ingresses {
			c.Problems = append(c.Problems, Problem{File: ing.file, Object: "Ingress " + ing.obj.Namespace + "/" + ing.obj.Name,
				Warning: true, Message: "Ingresses are not read in files mode by this build; ignored"})
		}
		return
	}
	classes := make([]networkingv1.IngressClass, len(o.classes))
	for i, cl := range o.classes {
		classes[i] = cl.obj
	}
	var ep *edgev1alpha1.EdgeProxy
	if len(o.edgeProxies) > 0 {
		ep = &o.edgeProxies[0].obj
	}
	for i := range o.ingresses {
		ing := &o.ingresses[i]
		in := IngressInput{Ingress: &ing.obj, IngressClasses: classes, EdgeProxy: ep}
		for _, s := range o.services {
			if s.obj.Namespace == ing.obj.Namespace {
				in.Services = append(in.Services, s.obj)
			}
		}
		for _, other := range o.ingresses {
			if other.obj.Namespace == ing.obj.Namespace {
				in.Ingresses = append(in.Ingresses, other.obj)
			}
		}
		out := translate(in)
		obj := "Ingress " + ing.obj.Namespace + "/" + ing.obj.Name
		if out.Ignored != "" {
			c.Problems = append(c.Problems, Problem{File: ing.file, Object: obj, Warning: true, Message: out.Ignored})
			continue
		}
		for _, f := range out.Problems {
			c.Problems = append(c.Problems, Problem{File: ing.file, Object: obj, Field: f.Field, Message: f.Message, Warning: f.Warning})
		}
		for _, r := range out.Routes {
			o.routes = append(o.routes, sourced[edgev1alpha1.TenantRoute]{ing.file, r})
		}
	}
}

// admit applies the EdgeProxy, when the directory has one, the way the operator does for a
// cluster: its settings, and, through the admission hook, only routes naming it, from namespaces it
// serves, claiming hostnames it allows and no other namespace owns, with its traffic defaults.
// Without an EdgeProxy every route is served with Portico's defaults.
func (o *objects) admit(c *Config, s *proxy.Settings, admit func(AdmitInput) AdmitOutput) (routing.Defaults, []sourced[edgev1alpha1.TenantRoute]) {
	switch len(o.edgeProxies) {
	case 0:
		return routing.Defaults{}, o.routes
	case 1:
	default:
		for _, ep := range o.edgeProxies[1:] {
			c.Problems = append(c.Problems, Problem{File: ep.file, Object: "EdgeProxy " + ep.obj.Name,
				Message: fmt.Sprintf("files mode serves one EdgeProxy; %q is already defined", o.edgeProxies[0].obj.Name)})
		}
	}
	ep := &o.edgeProxies[0].obj
	s.Tenant = ep.Name
	s.Observability = ep.Spec.Observability
	if t := ep.Spec.Traffic; t != nil && t.TrustedHops > 0 {
		s.TrustedHops = int(t.TrustedHops)
	}
	if ep.Spec.TLS != nil && ep.Spec.TLS.RedirectHTTPToHTTPS {
		s.RedirectHTTPToHTTPS = true
	}
	if admit == nil {
		c.Problems = append(c.Problems, Problem{File: o.edgeProxies[0].file, Object: "EdgeProxy " + ep.Name, Warning: true,
			Message: "this build cannot apply the EdgeProxy's admission: routes are served without its namespace and hostname checks or its traffic defaults"})
		return routing.Defaults{}, o.routes
	}
	in := AdmitInput{EdgeProxy: ep, NamespaceLabels: map[string]map[string]string{}}
	for _, ns := range o.namespaces {
		in.NamespaceLabels[ns.obj.Name] = ns.obj.Labels
	}
	for i := range o.routes {
		in.Routes = append(in.Routes, &o.routes[i].obj)
	}
	res := admit(in)
	var out []sourced[edgev1alpha1.TenantRoute]
	for i, r := range o.routes {
		if why, refused := res.Refused[i]; refused {
			c.Problems = append(c.Problems, Problem{File: r.file, Object: "TenantRoute " + r.obj.Namespace + "/" + r.obj.Name,
				Message: "not served: " + why, Warning: true})
			continue
		}
		out = append(out, r)
	}
	return res.Defaults, out
}

func (o *objects) keypairs(c *Config, now time.Time) tlsstore.Keypairs {
	kp := tlsstore.Keypairs{}
	for _, s := range o.secrets {
		if s.obj.Type != corev1.SecretTypeTLS {
			continue
		}
		crt, key := s.obj.Data[corev1.TLSCertKey], s.obj.Data[corev1.TLSPrivateKeyKey]
		if v, ok := s.obj.StringData[corev1.TLSCertKey]; ok {
			crt = []byte(v)
		}
		if v, ok := s.obj.StringData[corev1.TLSPrivateKeyKey]; ok {
			key = []byte(v)
		}
		cert, err := tlsstore.ParseKeypair(crt, key, now)
		if err != nil {
			c.Problems = append(c.Problems, Problem{File: s.file, Object: "Secret " + s.obj.Namespace + "/" + s.obj.Name,
				Field: "data", Message: err.Error()})
			continue
		}
		kp[types.NamespacedName{Namespace: s.obj.Namespace, Name: s.obj.Name}] = cert
	}
	for alias, secret := range o.certAliases {
		if cert, ok := kp[secret]; ok {
			kp[alias] = cert
		}
	}
	return kp
}

// endpoints resolves every Service port to the ready, non-terminating addresses of its
// EndpointSlices, matching Service and slice ports by name as kube-proxy does.
func (o *objects) endpoints(c *Config) upstream.Endpoints {
	bySvc := map[types.NamespacedName][]*discoveryv1.EndpointSlice{}
	for i := range o.slices {
		s := &o.slices[i].obj
		if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
			k := types.NamespacedName{Namespace: s.Namespace, Name: svc}
			bySvc[k] = append(bySvc[k], s)
		}
	}
	eps := upstream.Endpoints{}
	for _, svc := range o.services {
		if svc.obj.Spec.Type == corev1.ServiceTypeExternalName {
			c.Problems = append(c.Problems, Problem{File: svc.file, Object: "Service " + svc.obj.Namespace + "/" + svc.obj.Name,
				Field: "spec.type", Message: "ExternalName Services are not served", Warning: true})
			continue
		}
		for _, sp := range svc.obj.Spec.Ports {
			key := routing.BackendKey{Namespace: svc.obj.Namespace, Name: svc.obj.Name, Port: sp.Port}
			var list []upstream.Endpoint
			for _, slice := range bySvc[types.NamespacedName{Namespace: svc.obj.Namespace, Name: svc.obj.Name}] {
				list = append(list, sliceEndpoints(slice, sp)...)
			}
			eps[key] = list
		}
	}
	return eps
}

func sliceEndpoints(s *discoveryv1.EndpointSlice, sp corev1.ServicePort) []upstream.Endpoint {
	if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	var port *discoveryv1.EndpointPort
	for i := range s.Ports {
		if name := s.Ports[i].Name; (name == nil && sp.Name == "") || (name != nil && *name == sp.Name) {
			port = &s.Ports[i]
			break
		}
	}
	if port == nil || port.Port == nil {
		return nil
	}
	proto := ""
	if port.AppProtocol != nil {
		proto = *port.AppProtocol
	} else if sp.AppProtocol != nil {
		proto = *sp.AppProtocol
	}
	var out []upstream.Endpoint
	for _, e := range s.Endpoints {
		if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || (e.Conditions.Terminating != nil && *e.Conditions.Terminating) {
			continue
		}
		for _, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			out = append(out, upstream.Endpoint{Addr: netip.AddrPortFrom(ip.Unmap(), uint16(*port.Port)), AppProtocol: proto})
		}
	}
	return out
}

// checkBackends warns about backendRefs naming a Service (or port) the directory does not define:
// those requests would get 503 no_endpoints, which is easier to understand with a log line.
func (o *objects) checkBackends(c *Config, routes []sourced[edgev1alpha1.TenantRoute]) {
	for _, r := range routes {
		for i, rule := range r.obj.Spec.Rules {
			for j, b := range rule.BackendRefs {
				ns := r.obj.Namespace
				if b.Namespace != nil {
					ns = string(*b.Namespace)
				}
				var port int32
				if b.Port != nil {
					port = int32(*b.Port)
				}
				if _, ok := c.Endpoints[routing.BackendKey{Namespace: ns, Name: string(b.Name), Port: port}]; !ok {
					c.Problems = append(c.Problems, Problem{File: r.file, Object: "TenantRoute " + r.obj.Namespace + "/" + r.obj.Name,
						Field:   fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j),
						Message: fmt.Sprintf("no Service port %s/%s:%d in the directory; requests will get 503", ns, b.Name, port), Warning: true})
				}
			}
		}
	}
}
