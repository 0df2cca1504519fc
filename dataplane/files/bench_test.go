package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/proxy"
)

// benchRouteYAML is route i of the 10,000-route directory: its own host and five rules, the shape
// of hack/bench's table measurement.
func benchRouteYAML(i int) string {
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
`, i, i%100)
}

// writeBenchDir writes n routes over files route files, plus 500 Services and their
// EndpointSlices in services.yaml.
func writeBenchDir(tb testing.TB, dir string, n, files int) {
	tb.Helper()
	for f := range files {
		var b strings.Builder
		for i := f; i < n; i += files {
			b.WriteString("---\n" + benchRouteYAML(i))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("routes-%d.yaml", f)), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	var b strings.Builder
	for ns := range 100 {
		for _, svc := range []string{"frontend", "api", "api-v1", "static", "health"} {
			fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: tenant-%[2]d}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-1, namespace: tenant-%[2]d, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
`, svc, ns)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLoad10k is a cold load of a 10,000-route directory (10 files of 1,000 routes, and 500
// Services with their EndpointSlices): what `portico proxy --files` does at start.
func BenchmarkLoad10k(b *testing.B) {
	dir := b.TempDir()
	writeBenchDir(b, dir, 10_000, 10)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		c, err := Load(dir, proxy.Settings{}, time.Now())
		if err != nil || len(c.Errors()) > 0 {
			b.Fatal(err, c.Errors())
		}
	}
}

// BenchmarkReload10kOneFileChanged is a Source's reload of the same directory after one of the
// 10 route files changed: only that file is decoded again.
func BenchmarkReload10kOneFileChanged(b *testing.B) {
	dir := b.TempDir()
	writeBenchDir(b, dir, 10_000, 10)
	var cache fileCache
	if _, err := loadWith(dir, proxy.Settings{}, time.Now(), Hooks{}, &cache); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	n := 0
	for b.Loop() {
		b.StopTimer()
		var s strings.Builder
		for i := 0; i < 10_000; i += 10 {
			s.WriteString("---\n" + benchRouteYAML(i))
		}
		n++
		s.WriteString("---\n" + benchRouteYAML(10_000+n))
		if err := os.WriteFile(filepath.Join(dir, "routes-0.yaml"), []byte(s.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c, err := loadWith(dir, proxy.Settings{}, time.Now(), Hooks{}, &cache)
		if err != nil || len(c.Errors()) > 0 {
			b.Fatal(err, c.Errors())
		}
	}
}

// reportCPU reports the process's CPU time per operation (user + system, all threads: the
// machine is shared, so wall time says more about the neighbours than about the code).
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}
