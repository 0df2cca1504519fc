package translate

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

func (t *ingressTranslator) tlsHostSet() map[string]bool {
	set := map[string]bool{}
	for _, tls := range t.ing.Spec.TLS {
		for _, h := range tls.Hosts {
			set[strings.ToLower(h)] = true
		}
	}
	return set
}

// assignTLS gives every TLS host to the group serving it, and hosts no rule uses to the first
// group: they still get their certificate. An entry without hosts covers every host of the
// Ingress, the nearest Portico has to the spec's "all hosts of the load balancer".
func (t *ingressTranslator) assignTLS(groups []*hostGroup) {
	tlsPath := field.NewPath("spec", "tls")
	if n := len(t.ing.Spec.TLS); n > maxTLSEntries {
		t.errs = append(t.errs, field.TooMany(tlsPath, n, maxTLSEntries))
		return
	}
	for i, tls := range t.ing.Spec.TLS {
		tp := tlsPath.Index(i)
		if tls.SecretName == "" {
			t.errs = append(t.errs, field.Required(tp.Child("secretName"),
				"Portico needs the Secret holding the certificate; it has no default certificate"))
			continue
		}
		hosts := make([]string, 0, len(tls.Hosts))
		for j, h := range tls.Hosts {
			h = strings.ToLower(h)
			if why := checkHostname(h); why != "" {
				t.errs = append(t.errs, field.Invalid(tp.Child("hosts").Index(j), tls.Hosts[j], why))
				continue
			}
			hosts = append(hosts, h)
		}
		if len(tls.Hosts) == 0 {
			for _, h := range allHostnames(groups) {
				hosts = append(hosts, string(h))
			}
			if len(hosts) == 0 {
				t.errs = append(t.errs, field.Required(tp.Child("hosts"), "the Ingress has no host for the certificate to serve"))
				continue
			}
		}
		perGroup := make([][]edgev1alpha1.Hostname, len(groups))
		for _, h := range hosts {
			gi := 0
			for k, g := range groups {
				if containsHostname(g.hostnames, h) {
					gi = k
					break
				}
			}
			if !containsHostname(perGroup[gi], h) {
				perGroup[gi] = append(perGroup[gi], edgev1alpha1.Hostname(h))
			}
		}
		for gi, list := range perGroup {
			if len(list) == 0 {
				continue
			}
			for _, c := range chunk(list, maxTLSHosts) {
				groups[gi].tls = append(groups[gi].tls, edgev1alpha1.RouteTLS{Hosts: c, SecretName: tls.SecretName})
			}
		}
	}
	for _, g := range groups {
		if len(g.tls) > maxTLSEntries {
			t.errs = append(t.errs, field.TooMany(tlsPath, len(g.tls), maxTLSEntries))
			return
		}
	}
}
