package files_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	// Write then rename, as editors and ConfigMap updates do, so a reader never sees half a file.
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func routeYAML(host, prefix string) string {
	return `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: app, namespace: team}
spec:
  edgeProxy: local
  hostnames: [` + host + `]
  rules:
  - matches: [{path: {type: PathPrefix, value: ` + prefix + `}}]
    backendRefs: [{name: app, port: 80}]
`
}

func serviceYAML(backendAddr string) string {
	host, port, _ := net.SplitHostPort(backendAddr)
	return `
apiVersion: v1
kind: Service
metadata: {name: app, namespace: team}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app, namespace: team, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{name: http, port: ` + port + `}]
endpoints: [{addresses: [` + host + `]}]
`
}

func status(t *testing.T, c *http.Client, addr, host, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestFilesModeLiveReload(t *testing.T) {
	dir := t.TempDir()
	h := dpt.Start(t, dpt.Options{})
	a, b := dpt.NewEcho(t, "a"), dpt.NewEcho(t, "b")
	writeFile(t, dir, "route.yaml", routeYAML("app.example", "/v1"))
	writeFile(t, dir, "service.yaml", serviceYAML(strings.TrimPrefix(a.URL, "http://")))

	var logs syncBuffer
	src := files.NewSource(files.Options{Dir: dir, Debounce: 50 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, h.Dataplane)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if got := status(t, c, h.HTTP, "app.example", "/v1/x"); got != 200 {
		t.Fatalf("initial route: %d", got)
	}

	// A route change is served without restart.
	writeFile(t, dir, "route.yaml", routeYAML("app.example", "/v2"))
	eventually(t, "the new path to be served", func() bool { return status(t, c, h.HTTP, "app.example", "/v2/x") == 200 })
	if got := status(t, c, h.HTTP, "app.example", "/v1/x"); got != 404 {
		t.Errorf("old path after change: %d", got)
	}

	// An endpoints-only change keeps the table.
	table := h.Proxy.Table()
	writeFile(t, dir, "service.yaml", serviceYAML(strings.TrimPrefix(b.URL, "http://")))
	eventually(t, "backend b to serve", func() bool {
		status(t, c, h.HTTP, "app.example", "/v2/x")
		return b.Requests.Load() > 0
	})
	if h.Proxy.Table() != table {
		t.Error("endpoints-only change rebuilt the table")
	}

	// An invalid file is reported, and the last good configuration keeps serving.
	writeFile(t, dir, "route.yaml", routeYAML("app.example", "no-leading-slash"))
	eventually(t, "the problem to be logged", func() bool {
		l := logs.String()
		return strings.Contains(l, `"file":"route.yaml"`) && strings.Contains(l, `"object":"TenantRoute team/app"`) &&
			strings.Contains(l, `"field":"spec.rules[0].matches[0].path.value"`)
	})
	if got := status(t, c, h.HTTP, "app.example", "/v2/x"); got != 200 {
		t.Errorf("last good route after an invalid change: %d", got)
	}
	writeFile(t, dir, "garbage.yaml", "kind: [unterminated")
	writeFile(t, dir, "route.yaml", routeYAML("app.example", "/v3"))
	eventually(t, "the broken file to be logged", func() bool { return strings.Contains(logs.String(), `"file":"garbage.yaml"`) })
	if got := status(t, c, h.HTTP, "app.example", "/v2/x"); got != 200 {
		t.Errorf("last good route while a file is broken: %d", got)
	}
	if err := os.Remove(filepath.Join(dir, "garbage.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fixed directory to apply", func() bool { return status(t, c, h.HTTP, "app.example", "/v3/x") == 200 })
}

func TestFilesModeTLSFromStringData(t *testing.T) {
	dir := t.TempDir()
	h := dpt.Start(t, dpt.Options{})
	app := dpt.NewEcho(t, "app")
	ca := dpt.NewCA(t)
	certPEM, keyPEM, _ := ca.Issue(t, "secure.example")
	indent := func(s string) string { return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") }
	writeFile(t, dir, "all.yaml", serviceYAML(strings.TrimPrefix(app.URL, "http://"))+`
---
apiVersion: v1
kind: Secret
metadata: {name: secure-tls, namespace: team}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(string(certPEM))+`
  tls.key: |
`+indent(string(keyPEM))+`
---
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: secure, namespace: team}
spec:
  edgeProxy: local
  hostnames: [secure.example]
  tls: [{secretName: secure-tls}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	src := files.NewSource(files.Options{Dir: dir, Settings: proxy.Settings{}}, h.Dataplane)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", h.HTTPS, &tls.Config{ServerName: "secure.example", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("handshake with the Secret's certificate: %v", err)
	}
	conn.Close()
}

func TestFilesModeUnreadableDirectory(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	src := files.NewSource(files.Options{Dir: filepath.Join(t.TempDir(), "missing")}, h.Dataplane)
	if err := src.Start(context.Background()); err == nil {
		t.Fatal("starting on a missing directory succeeded")
	}
}
