package packaging

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portico-dev/portico/internal/manifest"
	"github.com/portico-dev/portico/internal/testenv"
)

// warnings collects the API server's warnings (deprecated APIs, unknown fields under lenient
// validation...): a manifest the server accepts with a warning is not accepted cleanly.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// startControlPlane starts kube-apiserver and etcd with Portico's, the Gateway API's and
// cert-manager's CRDs (internal/testenv), plus the trimmed ServiceMonitor CRD of testdata/.
func startControlPlane(t *testing.T) (*rest.Config, client.Client, *warnings) {
	t.Helper()
	skipWithoutEnvtest(t)
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join("testdata", "servicemonitor-crd.yaml")},
		ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("install the ServiceMonitor CRD: %v", err)
	}
	w := &warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c, w
}

// TestServerDryRun sends every object of `helm template` (default and all-features values) and of
// `kustomize build config/default` to a real kube-apiserver with dryRun=All and strict field
// validation, as `kubectl apply --dry-run=server` would: each must be accepted without a warning.
// Namespaces the manifests create are created for real first (nothing namespaced can be dry-run
// into a namespace that does not exist); objects that exist already (the CRDs the control plane
// was started with) are dry-run server-side applied instead of created.
func TestServerDryRun(t *testing.T) {
	_, c, w := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := createNamespace(ctx, c, releaseNamespace); err != nil {
		t.Fatal(err)
	}

	sources := []struct {
		name string
		objs func(t *testing.T) []manifest.Object
	}{
		{"helm-default", func(t *testing.T) []manifest.Object { return helmTemplate(t) }},
		{"helm-all-features", func(t *testing.T) []manifest.Object { return helmTemplate(t, "-f", allFeaturesValues) }},
		{"kustomize-config-default", func(t *testing.T) []manifest.Object { return kustomizeBuild(t, "config/default") }},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			objs := src.objs(t)
			t.Logf("%d objects: %v", len(objs), kinds(objs))
			for _, o := range objs {
				if o.GetKind() != "Namespace" {
					continue
				}
				if err := createNamespace(ctx, c, o.GetName()); err != nil {
					t.Fatalf("namespace %s: %v", o.GetName(), err)
				}
			}
			for _, o := range objs {
				t.Run(fmt.Sprintf("%s/%s/%s", o.GetKind(), o.GetNamespace(), o.GetName()), func(t *testing.T) {
					how, err := dryRun(ctx, c, o.Unstructured)
					if err != nil {
						t.Fatalf("%s: refused by the API server: %v", o.File, err)
					}
					if ws := w.take(); len(ws) > 0 {
						t.Fatalf("accepted (%s) with warnings: %q", how, ws)
					}
				})
			}
		})
	}
}

// dryRun creates the object with dryRun=All and strict field validation, or, when it exists
// already, server-side applies it with dryRun=All. It says which of the two it did.
func dryRun(ctx context.Context, c client.Client, in *unstructured.Unstructured) (string, error) {
	obj := in.DeepCopy()
	namespaced, err := c.IsObjectNamespaced(obj)
	if err != nil {
		// A kind the API server does not serve (its CRD is not installed) is refused here.
		return "", fmt.Errorf("kind %s: %w", obj.GroupVersionKind(), err)
	}
	switch {
	case namespaced && obj.GetNamespace() == "":
		return "", fmt.Errorf("namespaced %s has no metadata.namespace: it would land in whatever namespace the installing tool defaults to", obj.GetKind())
	case !namespaced && obj.GetNamespace() != "":
		return "", fmt.Errorf("cluster-scoped %s has metadata.namespace %q", obj.GetKind(), obj.GetNamespace())
	}
	err = c.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict"), client.FieldOwner("portico-packaging-test"))
	if err == nil {
		return "create", nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return "create", err
	}
	apply := in.DeepCopy()
	return "server-side apply", c.Apply(ctx, client.ApplyConfigurationFromUnstructured(apply),
		client.DryRunAll, client.ForceOwnership, client.FieldOwner("portico-packaging-test"))
}

func createNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}
