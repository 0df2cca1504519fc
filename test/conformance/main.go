// Command conformance runs the official Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, GATEWAY-HTTP profile) against Portico on the local platform
// of test/e2e/harness: a real kube-apiserver, etcd and kube-controller-manager, the harness playing
// kubelet, scheduler and cloud load balancer, the Portico operator as a host process, and the suite's
// own backends (echo-basic, coredns) built from their Go modules by hack/conformance.sh.
//
// `make test-conformance` runs it; docs/conformance/README.md explains the modes. It needs root.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/testenv"
	"github.com/portico-dev/portico/test/e2e/harness"
)

// Images the conformance manifests use (by repository; the harness ignores tags).
const (
	echoBasicImage = "registry.k8s.io/gateway-api/echo-basic"
	corednsImage   = "registry.k8s.io/coredns/coredns"
)

// coreFeatures are the GATEWAY-HTTP profile's core features.
var coreFeatures = []string{"Gateway", "HTTPRoute", "ReferenceGrant"}

type options struct {
	mode          string
	report        string
	runTest       string
	skipTests     string
	keep          bool
	version       string
	gatewayClass  string
	suiteTimeout  time.Duration
	extraArgs     string
	stateDir      string
	gatewayAPIVer string
	verbose       bool
}

func main() {
	harness.RunRoleIfRequested()
	var o options
	flag.StringVar(&o.mode, "mode", "extended", `"core": only the GATEWAY-HTTP core tests (Gateway, HTTPRoute, ReferenceGrant); "extended": core plus every extended feature the GatewayClass status lists`)
	flag.StringVar(&o.report, "report", "", "ConformanceReport output (default: docs/conformance/gateway-api-<version>-report.yaml for extended, bin/conformance/core-report.yaml for core)")
	flag.StringVar(&o.runTest, "run-test", "", "run only this conformance test (the suite's --run-test; features are then not inferred)")
	flag.StringVar(&o.skipTests, "skip-tests", "", "comma-separated conformance tests to skip (the suite's --skip-tests)")
	flag.BoolVar(&o.keep, "keep", false, "keep the state directory (logs, dumps) after a passing run")
	flag.StringVar(&o.version, "version", "", "Portico version for the report (default: git describe)")
	flag.StringVar(&o.gatewayClass, "gateway-class", "portico", "GatewayClass to create and test")
	flag.DurationVar(&o.suiteTimeout, "timeout", 30*time.Minute, "timeout of the suite run")
	flag.StringVar(&o.extraArgs, "suite-args", "", "extra arguments for the conformance test binary, space separated")
	flag.StringVar(&o.stateDir, "state-dir", "", "state directory (default bin/conformance/state)")
	flag.StringVar(&o.gatewayAPIVer, "gateway-api-version", "v1.6.3", "version of sigs.k8s.io/gateway-api/conformance (hack/conformance.sh builds it)")
	flag.BoolVar(&o.verbose, "v", false, "stream the suite's whole output (it is always in <state dir>/suite.log); without -v only each test's verdict and the summary are printed")
	flag.Parse()
	if o.mode != "core" && o.mode != "extended" {
		fatalf("--mode must be core or extended, not %q", o.mode)
	}
	if os.Geteuid() != 0 {
		fatalf("the conformance run needs root: the harness creates network namespaces and veth links (CI runs as root)")
	}
	code, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nconformance: FAILED: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "conformance: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "conformance %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(o options) (int, error) {
	start := time.Now()
	root := testenv.RepoRoot()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	logf("building echo-basic, coredns and the conformance test binary (hack/conformance.sh; cached by version)")
	script := filepath.Join(root, "hack", "conformance.sh")
	build := exec.CommandContext(ctx, script, "echo-basic", "coredns", "conformance.test")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	build.Env = append(os.Environ(), "GATEWAY_API_VERSION="+o.gatewayAPIVer)
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("hack/conformance.sh: %w", err)
	}
	out, err := exec.CommandContext(ctx, script, "moddir").Output()
	if err != nil {
		return 0, fmt.Errorf("hack/conformance.sh moddir: %w", err)
	}
	modDir := strings.TrimSpace(string(out))
	binDir := filepath.Join(root, "bin", "conformance")

	portico := filepath.Join(root, "bin", "e2e", "portico")
	logf("building %s", portico)
	if err := harness.BuildPortico(portico); err != nil {
		return 0, err
	}
	logf("builds done in %s", time.Since(start).Round(time.Second))

	if o.stateDir == "" {
		o.stateDir = filepath.Join(binDir, "state")
	}
	_ = os.RemoveAll(o.stateDir)
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return 0, err
	}
	harnessLog, err := os.Create(filepath.Join(o.stateDir, "harness.log"))
	if err != nil {
		return 0, err
	}
	defer harnessLog.Close()

	platformStart := time.Now()
	logf("starting the platform (harness pconf on 198.51.100.128/25; log %s)", harnessLog.Name())
	cluster, err := harness.Start(ctx, harness.Options{
		Name:     "pconf",
		Subnet:   netip.MustParsePrefix("198.51.100.128/25"),
		StateDir: filepath.Join(o.stateDir, "harness"),
		Images: map[string]harness.Image{
			harness.PorticoImageRepository: harness.PorticoImage(portico),
			echoBasicImage:                 {Entrypoint: []string{filepath.Join(binDir, "echo-basic")}},
			corednsImage: {Entrypoint: []string{filepath.Join(binDir, "coredns")},
				Commands: map[string]string{"/coredns": filepath.Join(binDir, "coredns")}},
		},
		Log: harnessLog,
	})
	if err != nil {
		return 0, fmt.Errorf("start the platform: %w", err)
	}
	failed := true
	defer func() {
		if failed {
			dumpDir := filepath.Join(o.stateDir, "failures")
			if err := os.MkdirAll(dumpDir, 0o755); err == nil {
				f, err := os.Create(filepath.Join(dumpDir, "dump.txt"))
				if err == nil {
					cluster.Dump(f)
					f.Close()
					logf("cluster dump: %s", f.Name())
				}
			}
		}
		cluster.Stop()
		if !failed && !o.keep {
			_ = os.RemoveAll(o.stateDir)
		} else {
			logf("state (logs, kubeconfig, pod logs) kept in %s", o.stateDir)
		}
	}()

	logf("starting the Portico operator")
	if _, err := cluster.StartOperator(ctx, harness.OperatorOptions{Binary: portico, Namespace: "portico-system",
		ProxyImage: harness.PorticoImageRepository + ":conformance"}); err != nil {
		return 0, err
	}
	features, err := ensureGatewayClass(ctx, cluster, o.gatewayClass)
	if err != nil {
		return 0, err
	}
	logf("platform ready in %s; GatewayClass %s supports: %s", time.Since(platformStart).Round(time.Second), o.gatewayClass, strings.Join(features, ","))

	supported := features
	if o.mode == "core" {
		supported = nil
		for _, f := range coreFeatures {
			if !slices.Contains(features, f) {
				return 0, fmt.Errorf("GatewayClass %s does not list the core feature %s in status.supportedFeatures", o.gatewayClass, f)
			}
			supported = append(supported, f)
		}
	}
	report := o.report
	if report == "" {
		if o.mode == "extended" {
			report = filepath.Join(root, "docs", "conformance", fmt.Sprintf("gateway-api-%s-report.yaml", o.gatewayAPIVer))
		} else {
			report = filepath.Join(binDir, "core-report.yaml")
		}
	}
	if abs, err := filepath.Abs(report); err == nil {
		report = abs
	}
	version := o.version
	if version == "" {
		if b, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
			version = strings.TrimSpace(string(b))
		} else {
			version = "dev"
		}
	}
	args := []string{
		"-test.run", "^TestConformance$", "-test.v=test2json", "-test.timeout", o.suiteTimeout.String(),
		"--gateway-class=" + o.gatewayClass,
		"--conformance-profiles=GATEWAY-HTTP",
		"--supported-features=" + strings.Join(supported, ","),
		"--report-output=" + report,
		"--organization=portico-dev",
		"--project=portico",
		"--url=https://github.com/portico-dev/portico",
		"--version=" + version,
		"--contact=https://github.com/portico-dev/portico/issues",
		"--mode=default",
		"--cleanup-base-resources=false", // the platform is thrown away afterwards
	}
	if o.runTest != "" {
		args = append(args, "--run-test="+o.runTest)
	}
	if o.skipTests != "" {
		args = append(args, "--skip-tests="+o.skipTests)
	}
	if o.extraArgs != "" {
		args = append(args, strings.Fields(o.extraArgs)...)
	}
	suiteLog := filepath.Join(o.stateDir, "suite.log")
	logf("running the suite (mode %s; output also in %s):\n  cd %s && KUBECONFIG=%s %s %s", o.mode, suiteLog, modDir,
		cluster.Kubeconfig, filepath.Join(binDir, "conformance.test"), strings.Join(args, " "))
	suiteStart := time.Now()
	addrCheck := make(chan error, 1)
	go func() { addrCheck <- checkGatewayAddresses(ctx, cluster.Client) }()
	res, err := runSuite(ctx, modDir, filepath.Join(binDir, "conformance.test"), args, cluster.Kubeconfig, suiteLog, o.verbose)
	if err != nil {
		return 0, err
	}
	logf("suite finished in %s (total %s)", time.Since(suiteStart).Round(time.Second), time.Since(start).Round(time.Second))
	res.print(os.Stdout)
	var addrErr error
	select {
	case addrErr = <-addrCheck:
	case <-time.After(30 * time.Second):
		addrErr = errors.New("the base Gateways did not all become Programmed")
	}
	if addrErr != nil {
		fmt.Printf("Gateway addresses: FAIL: %v\n", addrErr)
	} else {
		fmt.Printf("Gateway addresses: each base Gateway has its own address, listener ports open\n")
	}
	if _, err := os.Stat(report); err == nil {
		fmt.Printf("report: %s\n", report)
	}
	if res.exitOK && len(res.failed) == 0 && addrErr == nil {
		failed = false
		fmt.Printf("conformance (%s): PASS\n", o.mode)
		return 0, nil
	}
	fmt.Printf("conformance (%s): FAIL\n", o.mode)
	return 1, nil
}

// suiteResult collects the outcome of every test from the test2json stream.
type suiteResult struct {
	passed, skipped []string
	failed          []string
	output          map[string][]string
	exitOK          bool
}

type testEvent struct {
	Action string
	Test   string
	Output string
}

// runSuite runs the conformance test binary through `go tool test2json`, streams its output, and
// records per-test results.
func runSuite(ctx context.Context, dir, bin string, args []string, kubeconfig, logPath string, verbose bool) (*suiteResult, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "test2json", "-t", bin}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stderr = io.MultiWriter(os.Stderr, logFile)
	// test2json and the suite in their own process group: an interrupt stops both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	res := &suiteResult{output: map[string][]string{}}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintln(os.Stdout, sc.Text())
			fmt.Fprintln(logFile, sc.Text())
			continue
		}
		switch ev.Action {
		case "output":
			if verbose || ev.Test == "" || strings.Count(ev.Test, "/") == 1 && isVerdict(ev.Output) {
				fmt.Fprint(os.Stdout, ev.Output)
			}
			fmt.Fprint(logFile, ev.Output)
			if ev.Test != "" {
				res.output[ev.Test] = append(res.output[ev.Test], strings.TrimRight(ev.Output, "\n"))
			}
		case "pass":
			if ev.Test != "" {
				res.passed = append(res.passed, ev.Test)
			}
		case "fail":
			if ev.Test != "" {
				res.failed = append(res.failed, ev.Test)
			}
		case "skip":
			if ev.Test != "" {
				res.skipped = append(res.skipped, ev.Test)
			}
		}
	}
	err = cmd.Wait()
	res.exitOK = err == nil
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return nil, err
	}
	return res, nil
}

// isVerdict: a test's "--- PASS/FAIL" line (skips are counted in the summary only).
func isVerdict(line string) bool {
	l := strings.TrimSpace(line)
	return strings.HasPrefix(l, "--- PASS") || strings.HasPrefix(l, "--- FAIL")
}

var whyLine = regexp.MustCompile(`(?i)error|fail|expected|mismatch|timed out|timeout|unexpected|not |want|got`)

// print summarises the run: counts of conformance tests (direct subtests of TestConformance) and,
// for each failed one, its failing subtests and the lines saying why.
func (r *suiteResult) print(w io.Writer) {
	top := func(names []string) []string {
		var out []string
		for _, n := range names {
			if parts := strings.Split(n, "/"); len(parts) == 2 {
				out = append(out, parts[1])
			}
		}
		slices.Sort(out)
		return out
	}
	passed, failed, skipped := top(r.passed), top(r.failed), top(r.skipped)
	fmt.Fprintf(w, "\n==================== conformance summary ====================\n")
	fmt.Fprintf(w, "tests passed: %d, failed: %d, skipped: %d\n", len(passed), len(failed), len(skipped))
	for _, t := range failed {
		fmt.Fprintf(w, "\nFAIL %s\n", t)
		prefix := "TestConformance/" + t
		leaves := 0
		for _, name := range r.failed {
			if name != prefix && !strings.HasPrefix(name, prefix+"/") || r.hasFailedChild(name) {
				continue
			}
			if leaves++; leaves > 8 {
				fmt.Fprintf(w, "  ... (more failed subtests in the suite log)\n")
				break
			}
			if name != prefix {
				fmt.Fprintf(w, "  - %s\n", strings.TrimPrefix(name, prefix+"/"))
			}
			for _, l := range r.why(name, 3) {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	if !r.exitOK && len(failed) == 0 {
		fmt.Fprintf(w, "\nthe suite exited with an error before any conformance test failed (setup?); see the output above\n")
		if out := r.output["TestConformance"]; len(out) > 0 {
			for _, l := range out[max(0, len(out)-25):] {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	fmt.Fprintf(w, "==============================================================\n")
}

// hasFailedChild reports whether a failed subtest of name failed too (then name only reports it).
func (r *suiteResult) hasFailedChild(name string) bool {
	for _, n := range r.failed {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

// why returns the last n distinct lines of a test's output that say what went wrong, shortened
// to their start and their end (where the suite puts the reason).
func (r *suiteResult) why(name string, n int) []string {
	var out []string
	seen := map[string]bool{}
	lines := r.output[name]
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		s := strings.TrimSpace(lines[i])
		if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- ") || !whyLine.MatchString(s) {
			continue
		}
		if len(s) > 420 {
			s = s[:140] + " … " + s[len(s)-280:]
		}
		key := s
		if len(key) > 200 {
			key = key[len(key)-200:]
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append([]string{s}, out...)
	}
	if len(out) == 0 && len(lines) > 0 {
		out = append(out, strings.TrimSpace(lines[len(lines)-1]))
	}
	return out
}
