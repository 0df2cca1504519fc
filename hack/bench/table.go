package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/upstream"
)

const tableNamespaces = 100

var tableServices = []string{"frontend", "api", "api-v1", "static", "health"}

// routeYAML is route i of the table measurement: its own host and five rules, like a typical
// Ingress (the same shape as dataplane/routing's BenchmarkBuild).
func routeYAML(i int) string {
	return fmt.Sprintf(`apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: route-%[1]d, namespace: tenant-%[2]d}
spec:
  edgeProxy: local
  hostnames: [h%[1]d.example.com]
  rules:
  - backendRefs: [{name: frontend, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api/v1}}, {path: {type: PathPrefix, value: /api/v1}, method: POST}]
    backendRefs: [{name: api-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /static/}}]
    backendRefs: [{name: static, port: 80}]
  - matches: [{path: {type: Exact, value: /healthz}}]
    backendRefs: [{name: health, port: 80}]
`, i, i%tableNamespaces)
}

func servicesYAML(backendAddr string) string {
	host, port, err := net.SplitHostPort(backendAddr)
	check(err)
	var b strings.Builder
	for ns := range tableNamespaces {
		for _, svc := range tableServices {
			fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: tenant-%[2]d}
spec:
  ports: [{name: http, port: 80, targetPort: %[4]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-1, namespace: tenant-%[2]d, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: http, port: %[4]s}]
endpoints: [{addresses: [%[3]s], conditions: {ready: true}}]
`, svc, ns, host, port)
		}
	}
	return b.String()
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func tableRun(ctx context.Context, c config, tmp string, procs *processes) error {
	n := c.tableRoutes
	fmt.Printf("== Routing table of %d routes (%d hosts, 5 rules and 6 matches each, %d namespaces)\n", n, n, tableNamespaces)

	// In process: the table Build makes, what it weighs on the heap, and the swap.
	base := heapAlloc()
	routes := make([]edgev1alpha1.TenantRoute, n)
	for i := range routes {
		if err := yaml.UnmarshalStrict([]byte(routeYAML(i)), &routes[i]); err != nil {
			return err
		}
		routes[i].CreationTimestamp.Time = time.Unix(1_700_000_000+int64(i), 0)
	}
	objects := heapAlloc() - base
	snap := routing.Snapshot{Version: "bench", Routes: routes}
	var builds []time.Duration
	var tbl *routing.Table
	for range 3 {
		tbl = nil
		runtime.GC()
		t0 := time.Now()
		t, errs := routing.Build(snap)
		builds = append(builds, time.Since(t0))
		if len(errs) > 0 {
			return fmt.Errorf("build: %d route errors, first %s/%s: %v", len(errs), errs[0].Namespace, errs[0].Name, errs[0].Errors)
		}
		tbl = t
	}
	withTable := heapAlloc()
	tableBytes := int64(withTable) - int64(base) - int64(objects)
	p := proxy.New(proxy.Options{Endpoints: upstream.NewStore(),
		Transports: upstream.NewTransports(upstream.NewDialer(upstream.Guard{}, time.Second), upstream.TransportOptions{})})
	p.SetTable(tbl, proxy.Settings{})
	var swaps []time.Duration
	for range 3 {
		runtime.GC()
		t0 := time.Now()
		t, _ := routing.Build(snap)
		p.SetTable(t, proxy.Settings{})
		swaps = append(swaps, time.Since(t0))
	}
	slices.Sort(builds)
	slices.Sort(swaps)
	fmt.Printf("  in process (this harness, CPU 1, GOMAXPROCS=%d):\n", runtime.GOMAXPROCS(0))
	fmt.Printf("    table on the heap:        %.1f MiB (the %d TenantRoute objects it is built from: %.1f MiB more)\n",
		mib(tableBytes), n, mib(int64(objects)))
	fmt.Printf("    routing.Build:            median %s (runs %s)\n", builds[len(builds)/2].Round(time.Millisecond), durs(builds))
	fmt.Printf("    Build + Proxy.SetTable:   median %s (runs %s); the swap itself is one atomic pointer store\n",
		swaps[len(swaps)/2].Round(time.Millisecond), durs(swaps))
	runtime.KeepAlive(routes)
	routes, snap, tbl = nil, routing.Snapshot{}, nil
	p.SetTable(nil, proxy.Settings{})
	runtime.GC()
	if c.portico == "" || ctx.Err() != nil {
		return nil
	}

	// End to end: `portico proxy --files` with the routes in YAML, pinned to CPU 0.
	be, err := startBackend(tmp, procs, false)
	if err != nil {
		return err
	}
	one, err := filesProxy(tmp, "table-1", c.portico, procs, func(dir string) {
		writeRoutes(dir, be.addr, 1, 1)
	})
	if err != nil {
		return err
	}
	oneMem := memoryOf(one.pid)
	oneHeap := heapInUse(one.admin)
	procs.stop(one.cmd, 5*time.Second)

	fp, err := filesProxy(tmp, "table-n", c.portico, procs, func(dir string) {
		writeRoutes(dir, be.addr, n, 10)
	})
	if err != nil {
		return err
	}
	defer procs.stop(fp.cmd, 5*time.Second)
	time.Sleep(2 * time.Second)
	mem := memoryOf(fp.pid)
	heap := heapInUse(fp.admin)
	firstTook := appliedTook(fp.log)

	// Reload: add one route in the first file and time until its host answers.
	newHost := fmt.Sprintf("h%d.example.com", n)
	var b strings.Builder
	for i := 0; i < n; i += 10 {
		b.WriteString("---\n" + routeYAML(i))
	}
	b.WriteString("---\n" + routeYAML(n))
	t0 := time.Now()
	check(os.WriteFile(filepath.Join(fp.dir, "routes-0.yaml"), []byte(b.String()), 0o644))
	live := time.Duration(0)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Since(t0) < 30*time.Second {
		req, _ := http.NewRequest(http.MethodGet, "http://"+fp.http+"/", nil)
		req.Host = newHost
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				live = time.Since(t0)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if live == 0 {
		return fmt.Errorf("the added route never answered 200")
	}
	time.Sleep(500 * time.Millisecond)
	tooks := appliedTook(fp.log)
	after := memoryOf(fp.pid)
	what := "portico proxy --files"
	if c.portico == "self" {
		what = "runner.Run --files (serve-portico: cmd/portico did not build)"
	}
	fmt.Printf("  %s, pinned to CPU 0:\n", what)
	fmt.Printf("    1 route (and the 500 Services): RSS %.1f MiB, Go heap in use %.1f MiB\n", mib(oneMem.rss), mib(oneHeap))
	fmt.Printf("    %d routes: RSS %.1f MiB, Go heap in use %.1f MiB (2 s after ready); RSS %.1f MiB after one reload\n",
		n, mib(mem.rss), mib(heap), mib(after.rss))
	fmt.Printf("    load at start (read %d YAML objects + build + swap): %s\n", n+2*len(tableServices)*tableNamespaces, strings.Join(firstTook, " "))
	fmt.Printf("    reload after editing one file: new route live %s after the write (includes the 150 ms debounce); reload itself took %s\n",
		live.Round(time.Millisecond), lastOr(tooks, "?"))
	fmt.Println("    (nginx with 10,000 server blocks, from the issue: 1.26 GiB, reload served after 7-9 s)")
	fmt.Println()
	return nil
}

func durs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Round(time.Millisecond).String())
	}
	return strings.Join(s, " ")
}

func lastOr(s []string, def string) string {
	if len(s) < 2 {
		return def
	}
	return s[len(s)-1]
}

// writeRoutes writes n routes over files route files plus the Services and EndpointSlices.
func writeRoutes(dir, backendAddr string, n, files int) {
	check(os.MkdirAll(dir, 0o755))
	for f := range files {
		var b strings.Builder
		for i := f; i < n; i += files {
			b.WriteString("---\n" + routeYAML(i))
		}
		check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("routes-%d.yaml", f)), []byte(b.String()), 0o644))
	}
	check(os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(servicesYAML(backendAddr)), 0o644))
}

type filesProc struct {
	cmd                   *exec.Cmd
	pid                   int
	dir, http, admin, log string
}

// filesProxy starts `portico proxy --files` on a directory that fill writes, pinned to CPU 0, and
// waits until it is ready.
func filesProxy(tmp, name, bin string, procs *processes, fill func(dir string)) (filesProc, error) {
	fp := filesProc{
		dir:   filepath.Join(tmp, name),
		http:  fmt.Sprintf("127.0.0.1:%d", freePort()),
		admin: fmt.Sprintf("127.0.0.1:%d", freePort()),
		log:   filepath.Join(tmp, name+".log"),
	}
	fill(fp.dir)
	sub := "proxy"
	if bin == "self" {
		bin, sub = selfExe(), "serve-portico"
	}
	cmd, err := procs.start(fp.log, porticoArgv(bin, sub, "--files", fp.dir, "--http-addr", fp.http,
		"--https-addr", "", "--admin-addr", fp.admin, "--shutdown-grace", "1ms", "--drain-timeout", "2s", "--log-level", "info")...)
	if err != nil {
		return fp, err
	}
	fp.cmd, fp.pid = cmd, cmd.Process.Pid
	if err := waitStatus("http://"+fp.admin+"/readyz", 200, 60*time.Second); err != nil {
		return fp, fmt.Errorf("portico --files %s not ready (log %s): %w", fp.dir, fp.log, err)
	}
	return fp, nil
}

// heapInUse reads go_memstats_heap_inuse_bytes from the admin listener's /metrics.
func heapInUse(admin string) int64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// appliedTook returns the "took" of every "configuration applied" line of a JSON log.
func appliedTook(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg  string `json:"msg"`
			Took string `json:"took"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "configuration applied" {
			out = append(out, l.Took)
		}
	}
	return out
}
