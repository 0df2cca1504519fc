package harness

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-dev/portico/internal/manifest"
)

// FieldOwner is the server-side apply field manager of everything the harness applies.
const FieldOwner = "portico-e2e"

// ApplyPath server-side applies every document of a YAML file, or of every YAML file of a directory
// (in name order), creating the namespaces they name when missing.
func (c *Cluster) ApplyPath(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var objs []manifest.Object
	if fi.IsDir() {
		objs, err = manifest.ReadDir(path)
	} else {
		objs, err = manifest.ReadFile(path)
	}
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := c.Apply(ctx, o.Unstructured); err != nil {
			return fmt.Errorf("%s (document %d): %w", o.File, o.Index, err)
		}
	}
	return nil
}

// Apply server-side applies one object, creating its namespace when missing.
func (c *Cluster) Apply(ctx context.Context, obj *unstructured.Unstructured) error {
	if ns := obj.GetNamespace(); ns != "" {
		if err := c.EnsureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	obj = obj.DeepCopy()
	obj.SetManagedFields(nil)
	obj.SetResourceVersion("")
	//nolint:staticcheck // client.Apply on unstructured objects is still the way for arbitrary YAML.
	return c.Client.Patch(ctx, obj, client.Apply, client.FieldOwner(FieldOwner), client.ForceOwnership)
}
