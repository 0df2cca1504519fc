// Package packaging tests what platform teams install: the Helm chart, the kustomize tree and the
// image's build. Rendered manifests go to a real kube-apiserver (internal/testenv); helm and
// kustomize are built from their Go modules by hack/tools.sh (cached by version, like the control
// plane), never skipped when missing.
package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/portico-dev/portico/internal/manifest"
	"github.com/portico-dev/portico/internal/testenv"
)

// scratchDir outlives single tests (the binary built once is shared by several); TestMain removes it.
var scratchDir string

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard()) // the API server's answers are checked, not logged
	var err error
	if scratchDir, err = os.MkdirTemp("", "portico-packaging-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(scratchDir)
	os.Exit(code)
}

var (
	root      = testenv.RepoRoot()
	chartDir  = filepath.Join(root, "charts", "portico")
	toolsOnce sync.Once
	toolsErr  error
)

// kubeVersion is what `helm template` renders for: the version of the test control plane (Helm
// built from source reports an old default otherwise, which the chart's kubeVersion refuses).
const kubeVersion = "1.37.1"

// releaseNamespace is where the chart is rendered and installed in these tests.
const releaseNamespace = "portico-system"

// tool returns the path of helm or kustomize in bin/, building both the first time (hack/tools.sh
// prints its progress; a cached build is a symlink). The script runs every time the test binary
// does, so bin/ always holds the pinned version.
func tool(t testing.TB, name string) string {
	t.Helper()
	toolsOnce.Do(func() {
		cmd := exec.Command(filepath.Join(root, "hack", "tools.sh"), "helm", "kustomize")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			toolsErr = fmt.Errorf("hack/tools.sh helm kustomize: %w\n%s", err, out.String())
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	path := filepath.Join(root, "bin", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s was not built into bin/: %v", name, err)
	}
	return path
}

// run runs a command in the repository root and returns its stdout; it fails the test, with stderr,
// when the command fails.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func runErr(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w\nstderr:\n%s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// allFeaturesValues switches on every optional part of the chart (chart-testing's ci/ convention).
var allFeaturesValues = filepath.Join(chartDir, "ci", "all-features-values.yaml")

// helmTemplate renders the chart as release "portico" in releaseNamespace, CRDs included.
func helmTemplate(t testing.TB, extra ...string) []manifest.Object {
	t.Helper()
	args := append([]string{"template", "portico", chartDir, "--namespace", releaseNamespace,
		"--kube-version", kubeVersion, "--include-crds"}, extra...)
	out := run(t, tool(t, "helm"), args...)
	objs, err := decode("helm template "+strings.Join(extra, " "), out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

// kustomizeBuild renders a kustomize directory relative to the repository root.
func kustomizeBuild(t testing.TB, dir string) []manifest.Object {
	t.Helper()
	out := run(t, tool(t, "kustomize"), "build", filepath.Join(root, dir))
	objs, err := decode("kustomize build "+dir, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("kustomize build %s rendered nothing", dir)
	}
	return objs
}

// decode splits a multi-document stream. A stream opening with "---" and a comment-only document
// (helm template --include-crds does: "---\n# Source: ...\n---\n") trips manifest.Decode, whose
// YAML reader keeps the opening separator in the first document; drop that separator first.
func decode(name string, data []byte) ([]manifest.Object, error) {
	return manifest.Decode(name, bytes.TrimPrefix(data, []byte("---\n")))
}

// find returns the one object of kind (and name, when not empty); it fails the test otherwise.
func find(t testing.TB, objs []manifest.Object, kind, name string) manifest.Object {
	t.Helper()
	var found []manifest.Object
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q in the rendered manifests, found %d", kind, name, len(found))
	}
	return found[0]
}

func kinds(objs []manifest.Object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

func skipWithoutEnvtest(t *testing.T) {
	t.Helper()
	if os.Getenv("PORTICO_SKIP_ENVTEST") != "" {
		t.Skip("PORTICO_SKIP_ENVTEST is set: this test needs the real kube-apiserver")
	}
}
