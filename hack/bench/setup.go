package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchHost is the route's hostname; the load generators send it as Host and SNI while
// connecting to 127.0.0.1 (wrk through a Lua resolver, h2load with --connect-to).
const benchHost = "bench.example"

// backendBody is what the backend answers (small on purpose: the proxy's per-request cost is what
// is measured, not copying).
const backendBody = "ok\n"

type certFiles struct {
	certPEM, keyPEM []byte
	certPath        string
	keyPath         string
}

// selfSigned makes an ECDSA P-256 certificate for benchHost (both proxies serve the same one).
func selfSigned(dir string) certFiles {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: benchHost},
		DNSNames:              []string{benchHost},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	check(err)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	check(err)
	c := certFiles{
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
		certPath: filepath.Join(dir, "bench.crt"),
		keyPath:  filepath.Join(dir, "bench.key"),
	}
	check(os.WriteFile(c.certPath, c.certPEM, 0o600))
	check(os.WriteFile(c.keyPath, c.keyPEM, 0o600))
	return c
}

// backend is the upstream both proxies forward to.
type backend struct {
	addr string
	kind string
	pid  int // 0 when in-process
}

// startBackend starts nginx as a static backend when installed (it costs the least CPU of the
// candidates, leaving CPU 1 to the load generator), else a Go HTTP server in this process.
func startBackend(tmp string, procs *processes, useNginx bool) (backend, error) {
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if useNginx {
		dir := filepath.Join(tmp, "nginx-backend")
		check(os.MkdirAll(dir, 0o755))
		conf := nginxCommon(dir) + fmt.Sprintf(`
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen %s backlog=4096;
        location / { return 200 %q; }
    }
}
`, addr, backendBody)
		cmd, err := startNginx(dir, conf, procs)
		if err != nil {
			return backend{}, err
		}
		if err := waitTCP(addr, 10*time.Second); err != nil {
			return backend{}, err
		}
		return backend{addr: addr, kind: "nginx (static, 1 worker, CPU 1)", pid: cmd.Process.Pid}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return backend{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, backendBody)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return backend{addr: addr, kind: "Go net/http (in the harness, CPU 1)"}, nil
}

// nginxCommon is the main context of every nginx the harness runs: one worker, in the
// foreground, every path inside dir.
func nginxCommon(dir string) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
    worker_connections 4096;
}
`, dir)
}

func nginxTempPaths(dir string) string {
	var b strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s/%s;\n", k, dir, k)
	}
	return b.String()
}

func startNginx(dir, conf string, procs *processes) (*exec.Cmd, error) {
	path := filepath.Join(dir, "nginx.conf")
	check(os.WriteFile(path, []byte(conf), 0o644))
	// -e keeps nginx from opening the packaged default error log before reading the config.
	test := exec.Command("nginx", "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	if out, err := test.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v: %s", err, out)
	}
	return procs.start(filepath.Join(dir, "stdout.log"), "nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
}

// nginxProxyConf is nginx configured like Portico's route: HTTP and HTTPS (h2 by ALPN) for
// benchHost, proxy_pass over HTTP/1.1 keep-alive to the backend, and the same forwarding headers
// Portico sets. Access logs are off on both sides (Portico has none by default).
func nginxProxyConf(dir, httpAddr, httpsAddr, backendAddr string, cert certFiles) string {
	return nginxCommon(dir) + fmt.Sprintf(`
http {
    access_log off;
    default_type text/plain;
%[5]s
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream bench_backend {
        server %[3]s;
        keepalive 100;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen %[1]s backlog=4096;
        listen %[2]s ssl http2 backlog=4096;
        server_name %[6]s;
        ssl_certificate %[4]s;
        ssl_certificate_key %[7]s;
        location / {
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-Ip $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header Forwarded "for=$remote_addr;host=$host;proto=$scheme";
        }
    }
}
`, httpAddr, httpsAddr, backendAddr, cert.certPath, nginxTempPaths(dir), benchHost, cert.keyPath)
}

// porticoFiles writes the --files directory: one TenantRoute for benchHost with TLS, its Service
// and EndpointSlice (the backend), and the certificate as a kubernetes.io/tls Secret.
func porticoFiles(dir, backendAddr string, cert certFiles) {
	check(os.MkdirAll(dir, 0o755))
	host, port, err := net.SplitHostPort(backendAddr)
	check(err)
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	yaml := fmt.Sprintf(`apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: bench, namespace: bench}
spec:
  edgeProxy: local
  hostnames: [%[1]s]
  tls: [{secretName: bench-tls}]
  rules:
  - backendRefs: [{name: backend, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: bench}
spec:
  ports: [{name: http, port: 80, targetPort: %[3]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  namespace: bench
  labels: {kubernetes.io/service-name: backend}
addressType: IPv4
ports: [{name: http, port: %[3]s}]
endpoints:
- addresses: [%[2]s]
  conditions: {ready: true}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: bench}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%[4]s
  tls.key: |
%[5]s
`, benchHost, host, port, indent(cert.certPEM), indent(cert.keyPEM))
	check(os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(yaml), 0o644))
}

// waitStatus polls url (Host benchHost, TLS unverified) until it answers want.
func waitStatus(url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tr := newClientTransport(false)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = benchHost
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within %s (last: %s)", url, want, timeout, last)
}
