package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/portico-dev/portico/internal/testenv"
)

// DumpKinds are the kinds Dump prints, in this order.
var DumpKinds = []schema.GroupVersionKind{
	{Group: "edge.portico.dev", Version: "v1alpha1", Kind: "EdgeProxy"},
	{Group: "edge.portico.dev", Version: "v1alpha1", Kind: "TenantRoute"},
	{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
	{Group: "networking.k8s.io", Version: "v1", Kind: "IngressClass"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "", Version: "v1", Kind: "Pod"},
	{Group: "", Version: "v1", Kind: "Service"},
	{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"},
	{Group: "", Version: "v1", Kind: "Event"},
}

// Dump writes every object of DumpKinds (YAML, managedFields dropped; Events as one line each) and
// the last lines of every host and pod process log. Call it when a test fails.
func (c *Cluster) Dump(w io.Writer) {
	if c == nil || c.Client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, gvk := range DumpKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.Client.List(ctx, list); err != nil {
			fmt.Fprintf(w, "=== %s: %v\n", gvk.Kind, err)
			continue
		}
		fmt.Fprintf(w, "=== %s (%d)\n", gvk.Kind, len(list.Items))
		for _, o := range list.Items {
			if o.GetNamespace() == "kube-system" || o.GetNamespace() == "kube-node-lease" {
				continue
			}
			if gvk.Kind == "Event" {
				fmt.Fprintf(w, "%s %s/%s %v: %v %v\n", o.Object["type"], o.GetNamespace(), nested(o, "involvedObject", "name"), o.Object["reason"], o.Object["message"], o.Object["note"])
				continue
			}
			unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
			data, _ := yaml.Marshal(o.Object)
			fmt.Fprintf(w, "--- %s %s/%s\n%s", gvk.Kind, o.GetNamespace(), o.GetName(), data)
		}
	}
	c.mu.Lock()
	procs := append([]*Process(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		fmt.Fprintf(w, "=== log of %s\n%s\n", p.Name, p.Tail(60))
	}
	logs, _ := filepath.Glob(filepath.Join(c.Opts.StateDir, "pods", "*", "*.log"))
	sort.Strings(logs)
	for _, l := range logs {
		fmt.Fprintf(w, "=== log of pod %s\n%s\n", strings.TrimPrefix(l, c.Opts.StateDir+"/pods/"), tailFile(l, 40))
	}
}

func nested(o unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(o.Object, fields...)
	return s
}

// BuildPortico builds ./cmd/portico into out (an up-to-date binary is left alone by go build).
func BuildPortico(out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/portico")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/portico: %w\n%s", err, b)
	}
	return nil
}

func runStreaming(argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
