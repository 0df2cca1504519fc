package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portico-dev/portico/internal/manifest"
)

// There is no container engine on the development machines, so the image itself cannot be built
// here. What can be checked is checked: the Dockerfile's shape (multi-stage, Go version of go.mod,
// distroless non-root final image, labels), and its build stage, run for real: the same `go build`
// command on exactly the directories the Dockerfile copies, twice in different directories, must
// give byte-identical, static binaries that run.

// dockerfile is the parsed Dockerfile: instructions with line continuations joined.
type dockerfile struct {
	instructions []instruction
}

type instruction struct {
	cmd   string // FROM, COPY, RUN... upper-cased
	args  string
	stage int // index of the FROM it belongs to
}

func parseDockerfile(t testing.TB) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	stage := -1
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		df.instructions = append(df.instructions, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return df
}

func (d dockerfile) stage(i int, cmd string) []string {
	var out []string
	for _, in := range d.instructions {
		if in.stage == i && in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (d dockerfile) stages() int {
	n := 0
	for _, in := range d.instructions {
		if in.cmd == "FROM" {
			n++
		}
	}
	return n
}

// TestDockerfileShape checks the Dockerfile's structure: a Go build stage on the go.mod's Go
// version, then a distroless static non-root final stage holding only the binary, with OCI labels.
func TestDockerfileShape(t *testing.T) {
	df := parseDockerfile(t)
	if df.stages() != 2 {
		t.Fatalf("want a two-stage Dockerfile (build, final), got %d stages", df.stages())
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	from := df.stage(0, "FROM")[0]
	if !strings.HasPrefix(from, "golang:"+string(m[1])+" ") && !strings.HasPrefix(from, "golang:"+string(m[1])+"@") &&
		!strings.HasPrefix(from, "golang:"+string(m[1])+".") {
		t.Errorf("build stage FROM %q: want golang:%s (the go directive of go.mod)", from, m[1])
	}
	final := df.stage(1, "FROM")[0]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") || !strings.Contains(final, "nonroot") {
		t.Errorf("final stage FROM %q: want a distroless static nonroot image (no shell, no libc)", final)
	}
	if users := df.stage(1, "USER"); len(users) != 1 || !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(users[0]) {
		t.Errorf("final stage USER %q: want a numeric non-root uid (runAsNonRoot can only verify numbers)", users)
	}
	if copies := df.stage(1, "COPY"); len(copies) != 1 || !strings.HasPrefix(copies[0], "--from=") {
		t.Errorf("final stage copies %q: want only the binary from the build stage", copies)
	}
	if ep := df.stage(1, "ENTRYPOINT"); len(ep) != 1 || ep[0] != `["/portico"]` {
		t.Errorf("ENTRYPOINT %q: want [\"/portico\"] (exec form)", ep)
	}
	labels := strings.Join(df.stage(1, "LABEL"), " ")
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.licenses", "org.opencontainers.image.description"} {
		if !strings.Contains(labels, l+"=") {
			t.Errorf("final stage has no %s label", l)
		}
	}
}

// buildCommand is the build stage's `go build` RUN line and the directories it copies.
func buildCommand(t testing.TB) (run string, copies [][2]string) {
	t.Helper()
	df := parseDockerfile(t)
	for _, c := range df.stage(0, "COPY") {
		f := strings.Fields(c)
		if len(f) < 2 || strings.HasPrefix(f[0], "--") {
			t.Fatalf("unexpected COPY %q in the build stage", c)
		}
		dst := f[len(f)-1]
		for _, src := range f[:len(f)-1] {
			copies = append(copies, [2]string{src, dst})
		}
	}
	for _, r := range df.stage(0, "RUN") {
		if strings.Contains(r, "go build") {
			if run != "" {
				t.Fatal("more than one go build in the build stage")
			}
			run = r
		}
	}
	if run == "" {
		t.Fatal("no RUN ... go build in the build stage")
	}
	return run, copies
}

// stageContext lays out what the build stage sees after its COPY instructions: go.mod, go.sum and
// the copied directories, nothing else of the work tree.
func stageContext(t testing.TB, copies [][2]string) string {
	t.Helper()
	dir, err := os.MkdirTemp(scratchDir, "stage-")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range copies {
		src, dst := c[0], c[1]
		target := filepath.Join(dir, dst)
		if !strings.HasSuffix(dst, "/") && dst != "." && dst != "./" {
			t.Fatalf("COPY %s %s: want a directory destination", src, dst)
		}
		if !strings.HasSuffix(src, "/") {
			target = filepath.Join(target, filepath.Base(src))
		}
		copyTree(t, filepath.Join(root, src), target)
	}
	return dir
}

type builtBinary struct {
	path, sha string
	err       error
}

var (
	buildOnce sync.Once
	built     [2]builtBinary
)

// testVersion is what the build-arg VERSION is set to; `portico version` must print it.
const testVersion = "v0.0.0-packaging-test"

// portico builds the binary the way the Dockerfile's build stage does, twice, in two different
// directories (reproducibility), once per test binary. The first build is the one other tests run.
func portico(t testing.TB) [2]builtBinary {
	t.Helper()
	buildOnce.Do(func() {
		run, copies := buildCommand(t)
		// One snapshot of the sources (the work tree may change while we build), in two places.
		first := stageContext(t, copies)
		second, err := os.MkdirTemp(scratchDir, "stage-copy-")
		if err != nil {
			t.Fatal(err)
		}
		copyTree(t, first, second)
		for i, ctx := range []string{first, second} {
			out, err := os.MkdirTemp(scratchDir, "out-")
			if err != nil {
				built[i].err = err
				continue
			}
			// The Dockerfile writes /out/portico; everything else runs as written, in the stage's
			// WORKDIR, with ARG VERSION in the environment as Docker sets it.
			script := strings.ReplaceAll(run, "/out/portico", filepath.Join(out, "portico"))
			fmt.Fprintf(os.Stderr, "packaging: building ./cmd/portico as the Dockerfile does (%d/2)\n", i+1)
			cmd := exec.Command("sh", "-ec", script)
			cmd.Dir = ctx
			cmd.Env = append(os.Environ(), "VERSION="+testVersion, "GOFLAGS=", "GOWORK=off")
			if o, err := cmd.CombinedOutput(); err != nil {
				built[i].err = fmt.Errorf("build stage command failed: %v\n%s\n%s", err, script, o)
				continue
			}
			built[i].path = filepath.Join(out, "portico")
			data, err := os.ReadFile(built[i].path)
			if err != nil {
				built[i].err = err
				continue
			}
			sum := sha256.Sum256(data)
			built[i].sha = hex.EncodeToString(sum[:])
		}
	})
	for _, b := range built {
		if b.err != nil {
			t.Fatal(b.err)
		}
	}
	return built
}

// TestDockerfileBuildStage runs the build stage's command and checks its result: static (no
// program interpreter, no dynamic section, no shared libraries), reproducible (identical bytes from
// two directories), and it runs and reports the VERSION build-arg.
func TestDockerfileBuildStage(t *testing.T) {
	run, _ := buildCommand(t)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "./cmd/portico", "${VERSION}"} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage command lacks %q: %s", want, run)
		}
	}
	b := portico(t)
	f, err := elf.Open(b[0].path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("binary has a .dynamic section: it is dynamically linked")
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if b[0].sha != b[1].sha {
		t.Errorf("two builds of the same sources in different directories differ (%s vs %s): the build is not reproducible", b[0].sha, b[1].sha)
	}
	out, err := exec.Command(b[0].path, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("portico version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "portico "+testVersion {
		t.Errorf("portico version = %q, want %q (VERSION build-arg through -ldflags -X)", got, "portico "+testVersion)
	}
}

// TestChartArgsAreOperatorFlags: every flag the chart (default and all-features) and config/manager
// pass to `portico operator` is one the operator defines, so a renamed flag breaks this test rather
// than a rollout (the operator exits on an unknown flag and the Deployment crash-loops).
func TestChartArgsAreOperatorFlags(t *testing.T) {
	bin := portico(t)[0].path
	help, err := exec.Command(bin, "operator", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("portico operator --help: %v\n%s", err, help)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)`).FindAllSubmatch(help, -1) {
		defined[string(m[1])] = true
	}
	if !defined["--leader-elect"] || !defined["--metrics-bind-address"] {
		t.Fatalf("could not read the flags of `portico operator --help`:\n%s", help)
	}
	renders := map[string][]string{
		"helm-default":      deploymentArgs(t, helmTemplate(t)),
		"helm-all-features": deploymentArgs(t, helmTemplate(t, "-f", allFeaturesValues)),
		"kustomize":         deploymentArgs(t, kustomizeBuild(t, "config/default")),
	}
	for name, args := range renders {
		if len(args) == 0 || args[0] != "operator" {
			t.Errorf("%s: args %q do not run `portico operator`", name, args)
			continue
		}
		for _, a := range args[1:] {
			flag, _, _ := strings.Cut(a, "=")
			if !defined[flag] {
				t.Errorf("%s: %q is not a flag of `portico operator` (it has %v)", name, a, slices.Sorted(maps.Keys(defined)))
			}
		}
	}
}

func deploymentArgs(t *testing.T, objs []manifest.Object) []string {
	t.Helper()
	d := find(t, objs, "Deployment", "")
	cs, _, err := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	var args []string
	for _, a := range cs[0].(map[string]any)["args"].([]any) {
		args = append(args, a.(string))
	}
	return args
}
