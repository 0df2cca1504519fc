// Command bench is the loopback load test of `make bench`: it runs Portico and, when installed,
// nginx configured equivalently in front of the same tiny backend, drives both with the same load
// generator (wrk and h2load when installed, a bounded Go client otherwise) over HTTP/1.1
// keep-alive, TLS and h2, and prints requests/s, p50/p99 latency, memory and CPU time per request
// for each, with the ratio to nginx. It also measures the routing table for 10,000 routes (memory,
// build and swap time, and a files-mode reload end to end).
//
// The proxies run pinned to CPU 0 (`taskset -c 0`), everything else (this program, the load
// generator and the backend) to CPU 1, so that CPU time per request is the proxy's alone. All
// traffic goes to 127.0.0.1; every load loop is bounded in time and in count.
//
//	go run ./hack/bench                       # everything, 3 repetitions of 10 s per scenario
//	go run ./hack/bench -duration 5s -repeat 1 -scenarios h1
//	go run ./hack/bench -profile-dir /tmp/prof  # Portico only, in-process, with CPU/heap profiles
//
// See docs/performance.md for the method and the numbers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type config struct {
	duration    time.Duration
	warmup      time.Duration
	repeat      int
	conns       int
	h2Conns     int
	h2Streams   int
	scenarios   []string
	portico     string
	noNginx     bool
	baseline    bool
	lean        bool
	loadgen     string // auto, wrk, go
	tableRoutes int
	profileDir  string
	maxRequests int64
	keep        bool
	porticoEnv  string
	compare     string
	skipLoad    bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve-portico" {
		os.Exit(servePortico(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-lean" {
		os.Exit(serveLean(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-reverseproxy" {
		os.Exit(serveReverseProxy(os.Args[2:]))
	}
	var c config
	var scenarios string
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured duration of one run")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each run")
	flag.IntVar(&c.repeat, "repeat", 3, "repetitions of every (scenario, proxy) run; the median is reported")
	flag.IntVar(&c.conns, "connections", 32, "keep-alive connections for HTTP/1.1 and TLS")
	flag.IntVar(&c.h2Conns, "h2-connections", 4, "h2 connections")
	flag.IntVar(&c.h2Streams, "h2-streams", 8, "concurrent streams per h2 connection")
	flag.StringVar(&scenarios, "scenarios", "h1,tls,h2", "scenarios to run: h1 (HTTP/1.1 keep-alive), tls (HTTP/1.1 over TLS), h2 (HTTP/2 over TLS)")
	flag.StringVar(&c.portico, "portico", "", "portico binary (built from ./cmd/portico into a temporary directory when empty; \"self\": this program's serve-portico, the same runner.Run)")
	flag.BoolVar(&c.noNginx, "no-nginx", false, "do not run nginx even when installed")
	flag.BoolVar(&c.lean, "lean", true, "also measure go-lean, a minimal Go HTTP/1.1 proxy loop (HTTP/1.1 and TLS only): the floor a lean core could reach")
	flag.BoolVar(&c.baseline, "baseline", true, "also measure a plain httputil.ReverseProxy (same Go, same pinning) as the Go baseline")
	flag.StringVar(&c.loadgen, "loadgen", "auto", "load generator: auto (wrk/h2load when installed, else go), wrk, go")
	flag.IntVar(&c.tableRoutes, "table-routes", 10000, "routes of the routing-table measurement (0 skips it)")
	flag.StringVar(&c.profileDir, "profile-dir", "", "profile mode: run Portico in-process with CPU and heap profiles written here, one per scenario (no nginx, no table)")
	flag.Int64Var(&c.maxRequests, "max-requests", 20_000_000, "upper bound on the requests of one run of the Go load generator")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (configs, logs)")
	flag.StringVar(&c.compare, "compare", "", "a second portico binary, measured interleaved with the first as \"portico-ref\" (before/after comparisons)")
	flag.StringVar(&c.porticoEnv, "portico-env", "", "comma-separated VAR=value for the Portico process (e.g. GOGC=400), for experiments")
	flag.BoolVar(&c.skipLoad, "skip-load", false, "only the routing-table measurement")
	flag.Parse()
	c.scenarios = strings.Split(scenarios, ",")
	if c.porticoEnv != "" {
		porticoEnv = strings.Split(c.porticoEnv, ",")
	}
	if c.repeat < 1 || c.duration <= 0 || c.duration > 10*time.Minute || c.conns < 1 || c.conns > 1024 ||
		c.h2Conns < 1 || c.h2Streams < 1 || c.h2Conns*c.h2Streams > 1024 {
		fatalf("flags out of range")
	}
	for _, s := range c.scenarios {
		if s != "h1" && s != "tls" && s != "h2" {
			fatalf("unknown scenario %q", s)
		}
	}

	// Build Portico before pinning this process (and its children) to one CPU.
	if c.portico == "" && c.profileDir == "" && !c.skipLoad {
		dir, err := os.MkdirTemp("", "portico-bench-bin-")
		check(err)
		if !c.keep {
			defer os.RemoveAll(dir)
		}
		c.portico = filepath.Join(dir, "portico")
		fmt.Fprintf(os.Stderr, ">> building %s\n", c.portico)
		cmd := exec.Command("go", "build", "-trimpath", "-o", c.portico, "github.com/portico-dev/portico/cmd/portico")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			// The data plane is still measurable when another part of the tree does not build:
			// this program's serve-portico runs the same runner.Run as `portico proxy`.
			fmt.Fprintf(os.Stderr, "!! building cmd/portico failed (%v); using the in-process runner (serve-portico) instead\n", err)
			c.portico = "self"
		}
	}
	if pinned := pinSelf(c); !pinned {
		fmt.Fprintln(os.Stderr, "!! not pinned: taskset missing or fewer than 2 CPUs; CPU numbers include noise from the load generator")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, c)
	os.Exit(code)
}

// pinSelf re-executes this program on CPU 1 (children inherit it); the proxies are started on
// CPU 0 explicitly. It returns false when pinning is not possible.
func pinSelf(c config) bool {
	if os.Getenv("PORTICO_BENCH_PINNED") != "" {
		return true
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil || runtime.NumCPU() < 2 {
		return false
	}
	self, err := os.Executable()
	check(err)
	args := []string{"taskset", "-c", "1", self}
	args = append(args, os.Args[1:]...)
	if c.portico != "" {
		args = append(args, "-portico", c.portico)
	}
	env := append(os.Environ(), "PORTICO_BENCH_PINNED=1")
	// Exec keeps the PID, so `go run` waits for the pinned program.
	check(syscall.Exec(taskset, args, env))
	return true
}

func run(ctx context.Context, c config) int {
	tmp, err := os.MkdirTemp("", "portico-bench-")
	check(err)
	if c.keep {
		fmt.Fprintf(os.Stderr, ">> temporary directory %s kept\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	procs := &processes{}
	defer procs.stopAll()

	env := describeMachine()
	fmt.Println(env)

	if !c.skipLoad {
		if c.profileDir != "" {
			if err := profileRun(ctx, c, tmp, procs); err != nil {
				fmt.Fprintln(os.Stderr, "profile run failed:", err)
				return 1
			}
			return 0
		}
		if err := loadRun(ctx, c, tmp, procs); err != nil {
			fmt.Fprintln(os.Stderr, "load test failed:", err)
			return 1
		}
	}
	if c.tableRoutes > 0 && ctx.Err() == nil {
		if err := tableRun(ctx, c, tmp, procs); err != nil {
			fmt.Fprintln(os.Stderr, "table measurement failed:", err)
			return 1
		}
	}
	return 0
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

func describeMachine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("machine: %d CPUs online (%s), %s, %s; load average %s", numCPUOnline(), model, runtime.Version(), runtime.GOARCH, load)
}

func numCPUOnline() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		var lo, hi int
		if k, _ := fmt.Sscanf(part, "%d-%d", &lo, &hi); k == 2 {
			n += hi - lo + 1
		} else {
			n++
		}
	}
	return n
}
