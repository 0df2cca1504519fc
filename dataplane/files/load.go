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
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/files/internal/yamlconv"
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
//
// With a cache, a file whose content is unchanged since the last read is not decoded again, and
// the cache is left holding the files read this time. The documents of the files to decode are
// decoded in parallel; the result is the same, in the same order, as reading them one by one.
func read(dir string, cache *fileCache) (*objects, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
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

	type file struct {
		name   string
		sum    [32]byte
		frag   *objects // decoded, or taken from the cache
		cached bool
		docs   []splitDoc
		split  *Problem // the file cannot be read or split into documents past docs
		failed bool     // the file could not be read
	}
	files := make([]file, len(names))
	var jobs []*splitDoc
	for i, n := range names {
		f := &files[i]
		f.name = n
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			f.split, f.failed = &Problem{File: n, Message: err.Error()}, true
			continue
		}
		f.sum = sha256.Sum256(data)
		if c, ok := cache.get(n, f.sum); ok {
			f.frag, f.cached = c, true
			continue
		}
		f.docs, f.split = splitDocs(n, data)
		for j := range f.docs {
			jobs = append(jobs, &f.docs[j])
		}
	}
	decodeAll(jobs)

	o := &objects{}
	next := map[string]cachedFile{}
	for i := range files {
		f := &files[i]
		if f.frag == nil {
			f.frag = &objects{}
			for _, d := range f.docs {
				d.res.apply(f.frag, f.name, d.raw)
			}
			if f.split != nil {
				f.frag.problems = append(f.frag.problems, *f.split)
			}
		}
		if cache != nil && !f.failed {
			next[f.name] = cachedFile{sum: f.sum, objs: f.frag}
		}
		o.merge(f.frag, cache != nil)
	}
	if cache != nil {
		cache.files = next
	}
	return o, nil
}

// fileCache keeps what each file of the directory decoded into, by content digest, so that a
// reload decodes only the files that changed. The objects in it are never handed out: read merges
// deep copies of them (later steps may modify what they are given).
type fileCache struct {
	files map[string]cachedFile
}

type cachedFile struct {
	sum  [32]byte
	objs *objects
}

func (c *fileCache) get(name string, sum [32]byte) (*objects, bool) {
	if c == nil {
		return nil, false
	}
	f, ok := c.files[name]
	if !ok || f.sum != sum {
		return nil, false
	}
	return f.objs, true
}

// merge appends what one file holds to o, as deep copies when the file's objects are kept in the
// cache.
func (o *objects) merge(f *objects, copyObjects bool) {
	o.routes = appendObjects(o.routes, f.routes, copyObjects)
	o.ingresses = appendObjects(o.ingresses, f.ingresses, copyObjects)
	o.classes = appendObjects(o.classes, f.classes, copyObjects)
	o.edgeProxies = appendObjects(o.edgeProxies, f.edgeProxies, copyObjects)
	o.services = appendObjects(o.services, f.services, copyObjects)
	o.slices = appendObjects(o.slices, f.slices, copyObjects)
	o.secrets = appendObjects(o.secrets, f.secrets, copyObjects)
	o.namespaces = appendObjects(o.namespaces, f.namespaces, copyObjects)
	o.gatewayClasses = appendObjects(o.gatewayClasses, f.gatewayClasses, copyObjects)
	o.gateways = appendObjects(o.gateways, f.gateways, copyObjects)
	o.httpRoutes = appendObjects(o.httpRoutes, f.httpRoutes, copyObjects)
	o.grants = appendObjects(o.grants, f.grants, copyObjects)
	o.problems = append(o.problems, f.problems...)
	o.routeInputs = append(o.routeInputs, f.routeInputs...)
}

func appendObjects[T any, PT interface {
	*T
	DeepCopyInto(*T)
}](dst, src []sourced[T], deep bool) []sourced[T] {
	if !deep {
		return append(dst, src...)
	}
	for i := range src {
		var v T
		PT(&src[i].obj).DeepCopyInto(&v)
		dst = append(dst, sourced[T]{src[i].file, v})
	}
	return dst
}

// splitDoc is one document of a file and, once decoded, what it contributes.
type splitDoc struct {
	file string
	idx  int
	raw  []byte
	res  docResult
}

// splitDocs cuts a file into its non-empty documents; a document that cannot be cut ends the file
// with a problem.
func splitDocs(name string, data []byte) ([]splitDoc, *Problem) {
	var docs []splitDoc
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, &Problem{File: name, Object: fmt.Sprintf("document %d", i), Message: err.Error()}
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		docs = append(docs, splitDoc{file: name, idx: i, raw: doc})
	}
}

// decodeAll decodes the documents on every CPU.
func decodeAll(docs []*splitDoc) {
	workers := min(runtime.GOMAXPROCS(0), len(docs))
	if workers <= 1 {
		for _, d := range docs {
			d.res = decodeDoc(d.file, d.idx, d.raw, true)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(docs) {
					return
				}
				d := docs[i]
				d.res = decodeDoc(d.file, d.idx, d.raw, true)
			}
		})
	}
	wg.Wait()
}

// slowDecodes counts the documents decoded the slow way (for tests).
var slowDecodes atomic.Int64

// docResult is what one document contributes to the objects of its file.
type docResult struct {
	problem *Problem
	add     func(o *objects, file string) // appends the decoded object
	route   bool                          // the document is an input of the routing table
	retry   bool                          // the single-parse decoding failed: decode it the slow way
}

func (r docResult) apply(o *objects, file string, raw []byte) {
	if r.problem != nil {
		o.problems = append(o.problems, *r.problem)
	}
	if r.add != nil {
		r.add(o, file)
	}
	if r.route {
		o.routeInputs = append(append(o.routeInputs, raw...), 0)
	}
}

// decodeDoc decodes one document. With fast, the YAML is parsed once (yamlconv) and decoded from
// that, exactly as sigs.k8s.io/yaml would; whenever that fails for any reason, the document is
// decoded again the way sigs.k8s.io/yaml does it (twice: its kind, then strictly its type), so
// that problems read exactly as sigs.k8s.io/yaml words them.
func decodeDoc(file string, idx int, doc []byte, fast bool) docResult {
	var tm typeMeta
	var dec func(target any) error
	if fast {
		obj, err := yamlconv.Parse(doc)
		if err != nil || !yamlconv.Plain(obj) ||
			yamlconv.Decode(yamlconv.Pick(obj, "apiVersion", "kind", "metadata"), &tm, false) != nil {
			return decodeDoc(file, idx, doc, false)
		}
		dec = func(target any) error { return yamlconv.Decode(obj, target, true) }
	} else {
		slowDecodes.Add(1)
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return docResult{problem: &Problem{File: file, Object: fmt.Sprintf("document %d", idx), Message: cleanYAMLError(err)}}
		}
		dec = func(target any) error { return yaml.UnmarshalStrict(doc, target) }
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
	bad := func(err error) docResult {
		if fast {
			return docResult{retry: true}
		}
		p := Problem{File: file, Object: label, Message: cleanYAMLError(err)}
		if f := unknownField(err); f != "" {
			p.Field, p.Message = f, "unknown field"
		}
		return docResult{problem: &p}
	}
	group, version, _ := strings.Cut(tm.APIVersion, "/")
	gatewayAPI := group == gwapiv1.GroupName && (version == "v1" || version == "v1beta1")
	var r docResult
	switch {
	case tm.Kind == "TenantRoute" && group == edgev1alpha1.GroupVersion.Group:
		r = typed(dec, bad, true, func(v *edgev1alpha1.TenantRoute) *string { return &v.Namespace },
			func(o *objects) *[]sourced[edgev1alpha1.TenantRoute] { return &o.routes })
	case tm.Kind == "EdgeProxy" && group == edgev1alpha1.GroupVersion.Group:
		r = typed(dec, bad, true, nil, func(o *objects) *[]sourced[edgev1alpha1.EdgeProxy] { return &o.edgeProxies })
	case tm.Kind == "Ingress" && tm.APIVersion == "networking.k8s.io/v1":
		r = typed(dec, bad, true, func(v *networkingv1.Ingress) *string { return &v.Namespace },
			func(o *objects) *[]sourced[networkingv1.Ingress] { return &o.ingresses })
	case tm.Kind == "IngressClass" && tm.APIVersion == "networking.k8s.io/v1":
		r = typed(dec, bad, true, nil, func(o *objects) *[]sourced[networkingv1.IngressClass] { return &o.classes })
	case tm.Kind == "Service" && tm.APIVersion == "v1":
		// Services and EndpointSlices: endpoints only, not part of the route fingerprint.
		r = typed(dec, bad, false, func(v *corev1.Service) *string { return &v.Namespace },
			func(o *objects) *[]sourced[corev1.Service] { return &o.services })
	case tm.Kind == "EndpointSlice" && tm.APIVersion == "discovery.k8s.io/v1":
		r = typed(dec, bad, false, func(v *discoveryv1.EndpointSlice) *string { return &v.Namespace },
			func(o *objects) *[]sourced[discoveryv1.EndpointSlice] { return &o.slices })
	case tm.Kind == "Secret" && tm.APIVersion == "v1":
		r = typed(dec, bad, true, func(v *corev1.Secret) *string { return &v.Namespace },
			func(o *objects) *[]sourced[corev1.Secret] { return &o.secrets })
	case tm.Kind == "Namespace" && tm.APIVersion == "v1":
		r = typed(dec, bad, true, nil, func(o *objects) *[]sourced[corev1.Namespace] { return &o.namespaces })
	case gatewayAPI && tm.Kind == "GatewayClass":
		r = typed(dec, bad, true, nil, func(o *objects) *[]sourced[gwapiv1.GatewayClass] { return &o.gatewayClasses })
	case gatewayAPI && tm.Kind == "Gateway":
		r = typed(dec, bad, true, func(v *gwapiv1.Gateway) *string { return &v.Namespace },
			func(o *objects) *[]sourced[gwapiv1.Gateway] { return &o.gateways })
	case gatewayAPI && tm.Kind == "HTTPRoute":
		r = typed(dec, bad, true, func(v *gwapiv1.HTTPRoute) *string { return &v.Namespace },
			func(o *objects) *[]sourced[gwapiv1.HTTPRoute] { return &o.httpRoutes })
	case gatewayAPI && tm.Kind == "ReferenceGrant":
		r = typed(dec, bad, true, func(v *gwapiv1.ReferenceGrant) *string { return &v.Namespace },
			func(o *objects) *[]sourced[gwapiv1.ReferenceGrant] { return &o.grants })
	case tm.Kind == "":
		return docResult{problem: &Problem{File: file, Object: label, Field: "kind", Message: "missing"}}
	default:
		return docResult{problem: &Problem{File: file, Object: label, Warning: true,
			Message: fmt.Sprintf("%s %s is not read in files mode; ignored", tm.APIVersion, tm.Kind)}}
	}
	if r.retry {
		return decodeDoc(file, idx, doc, false)
	}
	return r
}

// typed decodes a document strictly into a T; ns, when set, gives the object's namespace,
// defaulted; list is where the object goes in its file's objects; route says whether the document
// is an input of the routing table.
func typed[T any](dec func(any) error, bad func(error) docResult, route bool, ns func(*T) *string, list func(*objects) *[]sourced[T]) docResult {
	v := new(T)
	if err := dec(v); err != nil {
		return bad(err)
	}
	if ns != nil {
		defaultNS(ns(v))
	}
	return docResult{route: route, add: func(o *objects, file string) {
		l := list(o)
		*l = append(*l, sourced[T]{file, *v})
	}}
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
