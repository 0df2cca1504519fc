// Package files is the standalone configuration source: `portico proxy --files DIR` reads a
// directory of ordinary multi-document Kubernetes YAML (TenantRoute, Ingress, IngressClass,
// GatewayClass, Gateway, HTTPRoute, ReferenceGrant, Service, EndpointSlice, kubernetes.io/tls
// Secret, Namespace, and optionally one EdgeProxy), builds what the proxy serves with the same
// translation, admission and routing code the operator uses (the first two injected as Hooks), and
// keeps it up to date as files change.
package files

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Problem is something wrong in the directory, located as precisely as the source allows.
type Problem struct {
	File    string // base name of the file
	Object  string // "TenantRoute demo/hello", or "document 3" when it has no name
	Field   string // "spec.rules[0].backendRefs[0].port", when known
	Message string
	// Warning problems are reported but do not stop the configuration from being applied
	// (ignored kinds, routes an EdgeProxy does not admit, Services that do not exist).
	Warning bool
}

func (p Problem) String() string {
	s := p.File
	if p.Object != "" {
		s += ": " + p.Object
	}
	if p.Field != "" {
		s += ": " + p.Field
	}
	return s + ": " + p.Message
}

// objects is everything read from the directory, each object with the file it came from.
type objects struct {
	routes      []sourced[edgev1alpha1.TenantRoute]
	ingresses   []sourced[networkingv1.Ingress]
	classes     []sourced[networkingv1.IngressClass]
	edgeProxies []sourced[edgev1alpha1.EdgeProxy]
	services    []sourced[corev1.Service]
	slices      []sourced[discoveryv1.EndpointSlice]
	secrets     []sourced[corev1.Secret]
	namespaces  []sourced[corev1.Namespace]
	// Gateway API objects, v1 and v1beta1 alike (v1beta1 types are the v1 ones).
	gatewayClasses []sourced[gwapiv1.GatewayClass]
	gateways       []sourced[gwapiv1.Gateway]
	httpRoutes     []sourced[gwapiv1.HTTPRoute]
	grants         []sourced[gwapiv1.ReferenceGrant]
	// certAliases name, in a TenantRoute's namespace, the Secret of another namespace holding a
	// listener certificate the route serves (see translateGatewayAPI).
	certAliases map[types.NamespacedName]types.NamespacedName
	problems    []Problem
	// routeInputs fingerprints everything the routing table depends on (all kinds but Services
	// and EndpointSlices), so that an endpoints-only change skips the table rebuild.
	routeInputs []byte
}

type sourced[T any] struct {
	file string
	obj  T
}

// DefaultNamespace is given to objects whose metadata names none, as kubectl would.
const DefaultNamespace = "default"

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// read parses every *.yaml, *.yml and *.json file directly in dir (not in subdirectories; names
// starting with "." are skipped, which also skips the "..data" links of a mounted ConfigMap).
func read(dir string) (*objects, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	o := &objects{}
	var names []string
	for _, e := range entries {
		n := e.Name()
		ext := strings.ToLower(filepath.Ext(n))
		if strings.HasPrefix(n, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.IsDir() {
			continue // a dangling link or a directory named like a file
		}
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			o.problems = append(o.problems, Problem{File: n, Message: err.Error()})
			continue
		}
		o.readFile(n, data)
	}
	return o, nil
}

func (o *objects) readFile(name string, data []byte) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			o.problems = append(o.problems, Problem{File: name, Object: fmt.Sprintf("document %d", i), Message: err.Error()})
			return
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		o.readDoc(name, i, doc)
	}
}

func (o *objects) readDoc(file string, idx int, doc []byte) {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		o.problems = append(o.problems, Problem{File: file, Object: fmt.Sprintf("document %d", idx), Message: cleanYAMLError(err)})
		return
	}
	label := tm.Kind
	if tm.Metadata.Name != "" {
		ns := tm.Metadata.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		label += " " + ns + "/" + tm.Metadata.Name
	} else {
		label = fmt.Sprintf("document %d (%s)", idx, tm.Kind)
	}
	bad := func(err error) {
		p := Problem{File: file, Object: label, Message: cleanYAMLError(err)}
		if f := unknownField(err); f != "" {
			p.Field, p.Message = f, "unknown field"
		}
		o.problems = append(o.problems, p)
	}
	group, version, _ := strings.Cut(tm.APIVersion, "/")
	gatewayAPI := group == gwapiv1.GroupName && (version == "v1" || version == "v1beta1")
	switch {
	case tm.Kind == "TenantRoute" && group == edgev1alpha1.GroupVersion.Group:
		var v edgev1alpha1.TenantRoute
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		defaultNS(&v.Namespace)
		o.routes = append(o.routes, sourced[edgev1alpha1.TenantRoute]{file, v})
	case tm.Kind == "EdgeProxy" && group == edgev1alpha1.GroupVersion.Group:
		var v edgev1alpha1.EdgeProxy
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		o.edgeProxies = append(o.edgeProxies, sourced[edgev1alpha1.EdgeProxy]{file, v})
	case tm.Kind == "Ingress" && tm.APIVersion == "networking.k8s.io/v1":
		var v networkingv1.Ingress
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		defaultNS(&v.Namespace)
		o.ingresses = append(o.ingresses, sourced[networkingv1.Ingress]{file, v})
	case tm.Kind == "IngressClass" && tm.APIVersion == "networking.k8s.io/v1":
		var v networkingv1.IngressClass
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		o.classes = append(o.classes, sourced[networkingv1.IngressClass]{file, v})
	case tm.Kind == "Service" && tm.APIVersion == "v1":
		var v corev1.Service
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		defaultNS(&v.Namespace)
		o.services = append(o.services, sourced[corev1.Service]{file, v})
		return // endpoints only: not part of the route fingerprint
	case tm.Kind == "EndpointSlice" && tm.APIVersion == "discovery.k8s.io/v1":
		var v discoveryv1.EndpointSlice
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		defaultNS(&v.Namespace)
		o.slices = append(o.slices, sourced[discoveryv1.EndpointSlice]{file, v})
		return
	case tm.Kind == "Secret" && tm.APIVersion == "v1":
		var v corev1.Secret
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		defaultNS(&v.Namespace)
		o.secrets = append(o.secrets, sourced[corev1.Secret]{file, v})
	case tm.Kind == "Namespace" && tm.APIVersion == "v1":
		var v corev1.Namespace
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			bad(err)
			return
		}
		o.namespaces = append(o.namespaces, sourced[corev1.Namespace]{file, v})
	case gatewayAPI && tm.Kind == "GatewayClass":
		if !readInto(&o.gatewayClasses, file, doc, bad, nil) {
			return
		}
	case gatewayAPI && tm.Kind == "Gateway":
		if !readInto(&o.gateways, file, doc, bad, func(v *gwapiv1.Gateway) *string { return &v.Namespace }) {
			return
		}
	case gatewayAPI && tm.Kind == "HTTPRoute":
		if !readInto(&o.httpRoutes, file, doc, bad, func(v *gwapiv1.HTTPRoute) *string { return &v.Namespace }) {
			return
		}
	case gatewayAPI && tm.Kind == "ReferenceGrant":
		if !readInto(&o.grants, file, doc, bad, func(v *gwapiv1.ReferenceGrant) *string { return &v.Namespace }) {
			return
		}
	case tm.Kind == "":
		o.problems = append(o.problems, Problem{File: file, Object: label, Field: "kind", Message: "missing"})
		return
	default:
		o.problems = append(o.problems, Problem{File: file, Object: label, Warning: true,
			Message: fmt.Sprintf("%s %s is not read in files mode; ignored", tm.APIVersion, tm.Kind)})
		return
	}
	o.routeInputs = append(append(o.routeInputs, doc...), 0)
}

// readInto decodes one document strictly and appends it to list; ns, when set, gives the object's
// namespace, defaulted. It reports a document that does not decode and returns false.
func readInto[T any](list *[]sourced[T], file string, doc []byte, bad func(error), ns func(*T) *string) bool {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		bad(err)
		return false
	}
	if ns != nil {
		defaultNS(ns(&v))
	}
	*list = append(*list, sourced[T]{file, v})
	return true
}

func defaultNS(ns *string) {
	if *ns == "" {
		*ns = DefaultNamespace
	}
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// cleanYAMLError drops the layers of "error unmarshaling JSON: while decoding JSON:" that
// sigs.k8s.io/yaml puts in front of the useful part.
func cleanYAMLError(err error) string {
	s := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// unknownField extracts the field name from a strict-decoding error.
func unknownField(err error) string {
	s := err.Error()
	i := strings.Index(s, `unknown field "`)
	if i < 0 {
		return ""
	}
	rest := s[i+len(`unknown field "`):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}
