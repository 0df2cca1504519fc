package translate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// backend is a Service port, the port already resolved to its number.
type backend struct {
	service string
	port    int32
}

func (b backend) ref(weight *int32) gwapiv1.HTTPBackendRef {
	return gwapiv1.HTTPBackendRef{
		BackendRef: gwapiv1.BackendRef{
			BackendObjectReference: gwapiv1.BackendObjectReference{
				Name: gwapiv1.ObjectName(b.service),
				Port: ptrTo(gwapiv1.PortNumber(b.port)),
			},
			Weight: weight,
		},
	}
}

// ruleName is the base name of rules sending to this backend, as access logs and metrics show it.
func (b backend) ruleName() string { return fmt.Sprintf("%s-%d", b.service, b.port) }

// serviceIndex holds the Services of one namespace by name.
type serviceIndex map[string]*corev1.Service

func indexServices(services []corev1.Service, namespace string) serviceIndex {
	idx := serviceIndex{}
	for i := range services {
		if s := &services[i]; s.Namespace == namespace {
			idx[s.Name] = s
		}
	}
	return idx
}

// resolveBackend checks an Ingress backend and resolves a port name with the Service. p is the
// backend's field path (spec.rules[0].http.paths[1].backend or spec.defaultBackend).
func resolveBackend(b *networkingv1.IngressBackend, services serviceIndex, namespace string, p *field.Path) (backend, *field.Error) {
	switch {
	case b.Resource != nil:
		return backend{}, field.Forbidden(p.Child("resource"), fmt.Sprintf(
			"resource backends (%s %s) are not supported: Portico sends traffic to Services only",
			groupKind(deref(b.Resource.APIGroup), b.Resource.Kind), b.Resource.Name))
	case b.Service == nil:
		return backend{}, field.Required(p.Child("service"), "a Service backend is required")
	case b.Service.Name == "":
		return backend{}, field.Required(p.Child("service", "name"), "")
	}
	pp := p.Child("service", "port")
	port := b.Service.Port
	switch {
	case port.Number != 0:
		if port.Number < 1 || port.Number > 65535 {
			return backend{}, field.Invalid(pp.Child("number"), port.Number, "must be between 1 and 65535")
		}
		return backend{service: b.Service.Name, port: port.Number}, nil
	case port.Name == "":
		return backend{}, field.Required(pp, "a port number or name is required")
	}
	svc := services[b.Service.Name]
	if svc == nil {
		return backend{}, field.Invalid(pp.Child("name"), port.Name, fmt.Sprintf(
			"Service %s/%s was not found, so the port name cannot be resolved to a number", namespace, b.Service.Name))
	}
	var names []string
	for _, sp := range svc.Spec.Ports {
		if sp.Name == port.Name {
			return backend{service: b.Service.Name, port: sp.Port}, nil
		}
		if sp.Name != "" {
			names = append(names, sp.Name)
		}
	}
	slices.Sort(names)
	has := "it has no named ports"
	if len(names) > 0 {
		has = "its ports are named " + strings.Join(names, ", ")
	}
	return backend{}, field.Invalid(pp.Child("name"), port.Name, fmt.Sprintf(
		"Service %s/%s has no port named %q; %s", namespace, b.Service.Name, port.Name, has))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
