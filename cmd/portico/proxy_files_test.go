package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// `portico proxy --files DIR` serves a directory of plain Ingress YAML — the source document's
// host-path-routing.yaml, unchanged — through the operator's translation, over real HTTP.
func TestProxyServesIngressDirectory(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "test", "testdata", "source-examples", "host-path-routing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{string(example), `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: edge.portico.dev/ingress-controller}`}
	for _, name := range []string{"frontend", "web-api", "admin-ui"} {
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Backend", name)
		}))
		t.Cleanup(backend.Close)
		host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
		docs = append(docs, `
apiVersion: v1
kind: Service
metadata: {name: `+name+`, namespace: app}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: `+name+`, namespace: app, labels: {kubernetes.io/service-name: `+name+`}}
addressType: IPv4
ports: [{name: http, port: `+port+`}]
endpoints: [{addresses: [`+host+`]}]`)
	}
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(strings.Join(docs, "\n---\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCommand()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs([]string{"proxy", "--files", dir, "--http-addr", httpAddr, "--https-addr", freeAddr(t),
			"--admin-addr", freeAddr(t), "--access-log=false", "--log-level", "error",
			"--shutdown-grace", "1ms", "--drain-timeout", "1s"})
		done <- cmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("portico proxy: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("portico proxy did not stop")
		}
	}()

	c := &http.Client{Timeout: 2 * time.Second}
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Backend")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if status, _ := get("app.example.com", "/"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy never served app.example.com")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct{ host, path, backend string }{
		{"app.example.com", "/", "frontend"},
		{"app.example.com", "/api/v1/items", "web-api"},
		{"admin.example.com", "/", "admin-ui"},
	} {
		if status, backend := get(tc.host, tc.path); status != http.StatusOK || backend != tc.backend {
			t.Errorf("%s%s: %d from %q, want 200 from %q", tc.host, tc.path, status, backend, tc.backend)
		}
	}
}
