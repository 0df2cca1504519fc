package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// sample is one measured run.
type sample struct {
	rps       float64
	p50, p99  time.Duration
	cpuPerReq time.Duration
	mem       memory
	requests  int64
	errors    int64
}

// reference CPU µs per request on these machines, from the Performance section of the issue.
var reference = map[string]struct{ nginx, reverseProxy, traefik float64 }{
	"h1":  {13, 43, 51},
	"tls": {17, 46, 62},
	"h2":  {15, 62, 90},
}

var scenarioTitle = map[string]string{
	"h1":  "HTTP/1.1 keep-alive",
	"tls": "HTTP/1.1 over TLS",
	"h2":  "HTTP/2 over TLS",
}

// measure runs a warm-up and then one measured run, reading the target's CPU time before and
// after: CPU per request = (utime+stime delta) / requests completed.
func measure(ctx context.Context, c config, lg loadgen, scenario string, t target) (sample, error) {
	if c.warmup > 0 {
		// A warm-up only has to open connections and warm caches; on a busy machine it may not
		// complete a request (TLS handshakes), which is no reason to stop.
		if _, err := lg.run(ctx, scenario, t, c.warmup); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "   (%s %s warm-up: %v)\n", scenario, t.name, err)
		}
	}
	before := cpuTime(t.pid)
	o, err := lg.run(ctx, scenario, t, c.duration)
	after := cpuTime(t.pid)
	if err != nil {
		return sample{}, err
	}
	if o.requests == 0 {
		return sample{}, errNoRequests
	}
	return sample{
		rps:       float64(o.requests) / o.elapsed.Seconds(),
		p50:       o.p50,
		p99:       o.p99,
		cpuPerReq: (after - before) / time.Duration(o.requests),
		mem:       memoryOf(t.pid),
		requests:  o.requests,
		errors:    o.errors,
	}, nil
}

func loadRun(ctx context.Context, c config, tmp string, procs *processes) error {
	_, nginxErr := exec.LookPath("nginx")
	useNginx := nginxErr == nil && !c.noNginx
	if !useNginx && !c.noNginx {
		fmt.Println("nginx is not installed (make bench-deps): Portico only, no ratios")
	}
	cert := selfSigned(tmp)
	benchRoots.AppendCertsFromPEM(cert.certPEM)
	be, err := startBackend(tmp, procs, useNginx)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	lg := pickLoadgen(c, tmp)

	var targets []target
	pt, err := startPortico(tmp, c.portico, be.addr, cert, procs, "", "portico")
	if err != nil {
		return err
	}
	targets = append(targets, pt)
	if c.compare != "" {
		rt, err := startPortico(tmp, c.compare, be.addr, cert, procs, "", "portico-ref")
		if err != nil {
			return err
		}
		targets = append(targets, rt)
	}
	if c.baseline {
		bt, err := startReverseProxy(tmp, be.addr, cert, procs)
		if err != nil {
			return err
		}
		targets = append(targets, bt)
	}
	if c.lean {
		lt, err := startLean(tmp, be.addr, cert, procs)
		if err != nil {
			return err
		}
		targets = append(targets, lt)
	}
	if useNginx {
		nt, err := startNginxProxy(tmp, be.addr, cert, procs)
		if err != nil {
			return err
		}
		targets = append(targets, nt)
	}
	fmt.Printf("backend: %s on %s; proxies pinned to CPU 0, load generator and backend to CPU 1\n", be.kind, be.addr)
	fmt.Printf("each run: %s warm-up, then %s measured; %d repetitions, proxies interleaved; median reported\n\n",
		c.warmup, c.duration, c.repeat)

	results := map[string]map[string][]sample{}
	for _, sc := range c.scenarios {
		results[sc] = map[string][]sample{}
		for r := range c.repeat {
			for _, t := range targets {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if t.only != nil && !t.only[sc] {
					continue
				}
				s, err := measure(ctx, c, lg, sc, t)
				if err != nil {
					return fmt.Errorf("%s %s run %d: %w", t.name, sc, r+1, err)
				}
				fmt.Fprintf(os.Stderr, "   %-4s %-8s run %d: %8.0f req/s  p50 %-9s p99 %-9s  %6.1f µs CPU/req  RSS %5.1f MiB  errors %d\n",
					sc, t.name, r+1, s.rps, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond),
					us(s.cpuPerReq), mib(s.mem.rss), s.errors)
				results[sc][t.name] = append(results[sc][t.name], s)
			}
		}
	}
	report(c, lg, results, targets)
	return nil
}

func startPortico(tmp, bin, backendAddr string, cert certFiles, procs *processes, profileDir, name string) (target, error) {
	dir := filepath.Join(tmp, name+"-files")
	porticoFiles(dir, backendAddr, cert)
	t := target{name: name,
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", freePort()),
		httpsAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	argv := []string{"proxy", "--files", dir, "--http-addr", t.httpAddr, "--https-addr", t.httpsAddr,
		"--admin-addr", admin, "--shutdown-grace", "1ms", "--drain-timeout", "2s", "--log-level", "info"}
	if profileDir != "" || bin == "self" {
		bin, argv[0] = selfExe(), "serve-portico"
	}
	if profileDir != "" {
		argv = append(argv, "--cpuprofile", filepath.Join(profileDir, "cpu.pprof"),
			"--memprofile", filepath.Join(profileDir, "allocs.pprof"))
	}
	cmd, err := procs.start(filepath.Join(tmp, name+".log"), porticoArgv(bin, argv...)...)
	if err != nil {
		return t, err
	}
	t.pid = cmd.Process.Pid
	if err := waitStatus("http://"+admin+"/readyz", 200, 20*time.Second); err != nil {
		return t, fmt.Errorf("%s not ready (log in %s): %w", name, filepath.Join(tmp, name+".log"), err)
	}
	if err := waitStatus("http://"+t.httpAddr+"/", 200, 10*time.Second); err != nil {
		return t, fmt.Errorf("portico: %w", err)
	}
	return t, nil
}

// porticoEnv is set by -portico-env.
var porticoEnv []string

// porticoArgv runs bin on CPU 0 with porticoEnv (env(1) and taskset exec, so the PID is bin's).
func porticoArgv(bin string, args ...string) []string {
	argv := []string{"taskset", "-c", "0"}
	if len(porticoEnv) > 0 {
		argv = append([]string{"taskset", "-c", "0", "env"}, porticoEnv...)
	}
	return append(append(argv, bin), args...)
}

func selfExe() string {
	self, err := os.Executable()
	check(err)
	return self
}

func startLean(tmp, backendAddr string, cert certFiles, procs *processes) (target, error) {
	t := target{name: "go-lean",
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", freePort()),
		httpsAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
		only:      map[string]bool{"h1": true, "tls": true},
	}
	cmd, err := procs.start(filepath.Join(tmp, "lean.log"), "taskset", "-c", "0", selfExe(), "serve-lean",
		"-http-addr", t.httpAddr, "-https-addr", t.httpsAddr, "-backend", backendAddr, "-cert", cert.certPath, "-key", cert.keyPath)
	if err != nil {
		return t, err
	}
	t.pid = cmd.Process.Pid
	if err := waitStatus("http://"+t.httpAddr+"/", 200, 10*time.Second); err != nil {
		return t, fmt.Errorf("go-lean: %w", err)
	}
	return t, nil
}

func startReverseProxy(tmp, backendAddr string, cert certFiles, procs *processes) (target, error) {
	self := selfExe()
	t := target{name: "go-rp",
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", freePort()),
		httpsAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
	}
	cmd, err := procs.start(filepath.Join(tmp, "reverseproxy.log"), "taskset", "-c", "0", self, "serve-reverseproxy",
		"-http-addr", t.httpAddr, "-https-addr", t.httpsAddr, "-backend", backendAddr, "-cert", cert.certPath, "-key", cert.keyPath)
	if err != nil {
		return t, err
	}
	t.pid = cmd.Process.Pid
	if err := waitStatus("http://"+t.httpAddr+"/", 200, 10*time.Second); err != nil {
		return t, fmt.Errorf("reverseproxy baseline: %w", err)
	}
	return t, nil
}

func startNginxProxy(tmp, backendAddr string, cert certFiles, procs *processes) (target, error) {
	dir := filepath.Join(tmp, "nginx-proxy")
	check(os.MkdirAll(dir, 0o755))
	t := target{name: "nginx",
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", freePort()),
		httpsAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
	}
	conf := nginxProxyConf(dir, t.httpAddr, t.httpsAddr, backendAddr, cert)
	path := filepath.Join(dir, "nginx.conf")
	check(os.WriteFile(path, []byte(conf), 0o644))
	cmd, err := procs.start(filepath.Join(dir, "stdout.log"), "taskset", "-c", "0",
		"nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	if err != nil {
		return t, err
	}
	t.pid = cmd.Process.Pid
	if err := waitStatus("http://"+t.httpAddr+"/", 200, 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return t, fmt.Errorf("nginx: %w: %s", err, b)
	}
	return t, nil
}

func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

func fmtLatency(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

func report(c config, lg loadgen, results map[string]map[string][]sample, targets []target) {
	fmt.Println("== Load test (medians; CPU is the proxy's user+system time per completed request)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tproxy\treq/s\tp50\tp99\tCPU µs/req\t(runs)\treq/s per core\tRSS MiB\tPSS MiB\terrors\t")
	for _, sc := range c.scenarios {
		byName := results[sc]
		for _, t := range targets {
			ss := byName[t.name]
			if len(ss) == 0 {
				continue
			}
			cpu := median(ss, func(s sample) float64 { return us(s.cpuPerReq) })
			var runs []string
			var errs int64
			for _, s := range ss {
				runs = append(runs, fmt.Sprintf("%.1f", us(s.cpuPerReq)))
				errs += s.errors
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%.1f\t%s\t%.0f\t%.1f\t%.1f\t%d\t\n", sc, t.name,
				median(ss, func(s sample) float64 { return s.rps }),
				fmtLatency(median(ss, func(s sample) float64 { return us(s.p50) })),
				fmtLatency(median(ss, func(s sample) float64 { return us(s.p99) })),
				cpu, strings.Join(runs, " "), 1e6/cpu,
				median(ss, func(s sample) float64 { return mib(s.mem.rss) }),
				median(ss, func(s sample) float64 { return mib(s.mem.pss) }), errs)
		}
	}
	tw.Flush()

	if len(targets) > 1 {
		fmt.Println("\n== Portico / nginx (CPU per request and p99: lower is better; req/s: higher is better)")
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tCPU/req\treq/s\treq/s per core\tp50\tp99\tRSS\t")
		for _, sc := range c.scenarios {
			p, n := results[sc]["portico"], results[sc]["nginx"]
			if len(p) == 0 || len(n) == 0 {
				continue
			}
			ratio := func(f func(sample) float64) float64 { return median(p, f) / median(n, f) }
			cpu := ratio(func(s sample) float64 { return us(s.cpuPerReq) })
			fmt.Fprintf(tw, "%s\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t\n", sc, cpu,
				ratio(func(s sample) float64 { return s.rps }), 1/cpu,
				ratio(func(s sample) float64 { return us(s.p50) }),
				ratio(func(s sample) float64 { return us(s.p99) }),
				ratio(func(s sample) float64 { return float64(s.mem.rss) }))
		}
		tw.Flush()
	}

	fmt.Println("\n== CPU µs per request: measured here, and the issue's reference numbers for these machines")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tportico\tgo-rp\tgo-lean\tnginx\tnginx ref\tReverseProxy ref\tTraefik ref\tfirst aim (Traefik/2)\tmet\t")
	for _, sc := range c.scenarios {
		p := results[sc]["portico"]
		if len(p) == 0 {
			continue
		}
		cpuOf := func(name string) string {
			ss := results[sc][name]
			if len(ss) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", median(ss, func(s sample) float64 { return us(s.cpuPerReq) }))
		}
		cpu := median(p, func(s sample) float64 { return us(s.cpuPerReq) })
		ref := reference[sc]
		met := "no"
		if cpu <= ref.traefik/2 {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.1f\t%s\t\n", sc, cpu, cpuOf("go-rp"), cpuOf("go-lean"), cpuOf("nginx"),
			ref.nginx, ref.reverseProxy, ref.traefik, ref.traefik/2, met)
	}
	tw.Flush()
	fmt.Println("\nload generators:")
	for _, sc := range c.scenarios {
		fmt.Printf("  %-4s %s: %s\n", sc, scenarioTitle[sc], lg.name(sc))
	}
	fmt.Println("Numbers are noisy on a shared 2-CPU machine: compare CPU per request (least sensitive to load), across the repetitions shown.")
	fmt.Println()
}

// profileRun runs Portico in-process (this binary's serve-portico, the same runner as
// `portico proxy`) once per scenario under load, with CPU and allocation profiles.
func profileRun(ctx context.Context, c config, tmp string, procs *processes) error {
	check(os.MkdirAll(c.profileDir, 0o755))
	cert := selfSigned(tmp)
	benchRoots.AppendCertsFromPEM(cert.certPEM)
	_, nginxErr := exec.LookPath("nginx")
	be, err := startBackend(tmp, procs, nginxErr == nil && !c.noNginx)
	if err != nil {
		return err
	}
	lg := pickLoadgen(c, tmp)
	for _, sc := range c.scenarios {
		dir := filepath.Join(c.profileDir, sc)
		check(os.MkdirAll(dir, 0o755))
		t, err := startPortico(tmp, "", be.addr, cert, procs, dir, "portico")
		if err != nil {
			return err
		}
		s, err := measure(ctx, c, lg, sc, t)
		if err != nil {
			return err
		}
		procs.stop(findCmd(procs, t.pid), 10*time.Second)
		fmt.Printf("%-4s (profiling on) %8.0f req/s  p50 %-9s p99 %-9s %6.1f µs CPU/req  profiles in %s\n",
			sc, s.rps, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), us(s.cpuPerReq), dir)
	}
	fmt.Printf("\ngo tool pprof -top %s/h1/cpu.pprof   (and -sample_index=alloc_space on allocs.pprof)\n", c.profileDir)
	return nil
}

func findCmd(p *processes, pid int) *exec.Cmd {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.list {
		if c.Process != nil && c.Process.Pid == pid {
			return c
		}
	}
	return nil
}
