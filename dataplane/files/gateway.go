package files

import (
	"crypto/sha256"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// translateGatewayAPI adds the TenantRoutes of every HTTPRoute, each attributed to the HTTPRoute's
// file, and the problems of the Gateways and HTTPRoutes to the configuration's.
//
// A TenantRoute's spec.tls names Secrets of its own namespace, while a listener's certificate
// usually lives with the Gateway (the translation hands those over as Certificates). Files mode
// serves such a certificate under an alias: the route's spec.tls names "<namespace>.<name>" (a
// namespace has no dots, so two Secrets never share an alias), and keypairs serves the Secret's
// key pair under that name in the route's namespace as well.
func (o *objects) translateGatewayAPI(c *Config, translate func(GatewayAPIInput) GatewayAPIOutput) {
	if translate == nil {
		ignored := func(file, obj string) {
			c.Problems = append(c.Problems, Problem{File: file, Object: obj, Warning: true,
				Message: "Gateway API objects are not read in files mode by this build; ignored"})
		}
		for _, v := range o.gatewayClasses {
			ignored(v.file, "GatewayClass "+v.obj.Name)
		}
		for _, v := range o.gateways {
			ignored(v.file, "Gateway "+v.obj.Namespace+"/"+v.obj.Name)
		}
		for _, v := range o.httpRoutes {
			ignored(v.file, "HTTPRoute "+v.obj.Namespace+"/"+v.obj.Name)
		}
		for _, v := range o.grants {
			ignored(v.file, "ReferenceGrant "+v.obj.Namespace+"/"+v.obj.Name)
		}
		return
	}
	if len(o.gateways) == 0 && len(o.httpRoutes) == 0 {
		return // GatewayClasses and ReferenceGrants alone serve nothing
	}
	in := GatewayAPIInput{}
	for _, v := range o.gatewayClasses {
		in.GatewayClasses = append(in.GatewayClasses, v.obj)
	}
	for _, v := range o.gateways {
		in.Gateways = append(in.Gateways, v.obj)
	}
	for _, v := range o.httpRoutes {
		in.HTTPRoutes = append(in.HTTPRoutes, v.obj)
	}
	for _, v := range o.grants {
		in.ReferenceGrants = append(in.ReferenceGrants, gwapiv1beta1.ReferenceGrant(v.obj))
	}
	for _, v := range o.namespaces {
		in.Namespaces = append(in.Namespaces, v.obj)
	}
	for _, v := range o.services {
		in.Services = append(in.Services, v.obj)
	}
	secrets := map[types.NamespacedName]bool{}
	for _, v := range o.secrets {
		in.Secrets = append(in.Secrets, withData(v.obj))
		secrets[types.NamespacedName{Namespace: v.obj.Namespace, Name: v.obj.Name}] = true
	}
	if len(o.edgeProxies) > 0 {
		in.EdgeProxy = &o.edgeProxies[0].obj
	}
	out := translate(in)

	for i, gw := range o.gateways {
		if i >= len(out.Gateways) {
			break
		}
		obj := "Gateway " + gw.obj.Namespace + "/" + gw.obj.Name
		if why := out.Gateways[i].Ignored; why != "" {
			c.Problems = append(c.Problems, Problem{File: gw.file, Object: obj, Warning: true, Message: why})
			continue
		}
		for _, f := range out.Gateways[i].Problems {
			c.Problems = append(c.Problems, Problem{File: gw.file, Object: obj, Field: f.Field, Message: f.Message, Warning: f.Warning})
		}
	}
	for i, hr := range o.httpRoutes {
		if i >= len(out.HTTPRoutes) {
			break
		}
		res := out.HTTPRoutes[i]
		obj := "HTTPRoute " + hr.obj.Namespace + "/" + hr.obj.Name
		if res.Ignored != "" {
			c.Problems = append(c.Problems, Problem{File: hr.file, Object: obj, Warning: true, Message: res.Ignored})
			continue
		}
		for _, f := range res.Problems {
			c.Problems = append(c.Problems, Problem{File: hr.file, Object: obj, Field: f.Field, Message: f.Message, Warning: f.Warning})
		}
		routes := res.Routes
		for _, cert := range res.Certificates {
			r := findRoute(routes, cert.Route)
			if r == nil {
				continue
			}
			alias := types.NamespacedName{Namespace: r.Namespace, Name: certAlias(cert.Secret)}
			if secrets[alias] {
				c.Problems = append(c.Problems, Problem{File: hr.file, Object: obj, Warning: true, Message: fmt.Sprintf(
					"the certificate of Secret %s cannot be served for %v: files mode serves it as Secret %s, which the directory defines too",
					cert.Secret, cert.Hosts, alias)})
				continue
			}
			tls := edgev1alpha1.RouteTLS{SecretName: alias.Name}
			for _, h := range cert.Hosts {
				tls.Hosts = append(tls.Hosts, edgev1alpha1.Hostname(h))
			}
			r.Spec.TLS = append(r.Spec.TLS, tls)
			if o.certAliases == nil {
				o.certAliases = map[types.NamespacedName]types.NamespacedName{}
			}
			o.certAliases[alias] = cert.Secret
		}
		for _, r := range routes {
			o.routes = append(o.routes, sourced[edgev1alpha1.TenantRoute]{hr.file, r})
		}
	}
}

func findRoute(routes []edgev1alpha1.TenantRoute, name string) *edgev1alpha1.TenantRoute {
	for i := range routes {
		if routes[i].Name == name {
			return &routes[i]
		}
	}
	return nil
}

// certAlias is the name under which a TenantRoute of another namespace serves a Secret's key pair:
// "<namespace>.<name>", a Secret name too; past 253 characters the name is replaced by a hash.
func certAlias(s types.NamespacedName) string {
	if n := s.Namespace + "." + s.Name; len(n) <= 253 {
		return n
	}
	sum := sha256.Sum256([]byte(s.Name))
	return fmt.Sprintf("%s.%x", s.Namespace, sum[:16])
}

// withData returns a copy of a Secret whose stringData is merged into data, as the API server
// stores it.
func withData(s corev1.Secret) corev1.Secret {
	if len(s.StringData) == 0 {
		return s
	}
	out := *s.DeepCopy()
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	for k, v := range out.StringData {
		out.Data[k] = []byte(v)
	}
	out.StringData = nil
	return out
}
