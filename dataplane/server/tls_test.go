package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

func secret(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "team", Name: name}
}

// tlsSetup serves a.example (own cert), b.example (own cert), *.wild.example (wildcard cert),
// exact.wild.example (own cert), and shared1/shared2.example under one certificate.
func tlsSetup(t *testing.T) (*dpt.Harness, *dpt.CA, tlsstore.Keypairs) {
	h := dpt.Start(t, dpt.Options{})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	ca := dpt.NewCA(t)
	kp := tlsstore.Keypairs{}
	for name, hosts := range map[string][]string{
		"a": {"a.example"}, "b": {"b.example"}, "wild": {"*.wild.example"}, "exact": {"exact.wild.example"},
		"shared": {"shared1.example", "shared2.example"},
	} {
		_, _, kp[secret(name)] = ca.Issue(t, hosts...)
	}
	h.Apply(t, tlsRoutes(t), kp, proxy.Settings{})
	return h, ca, kp
}

func tlsRoutes(t *testing.T) []edgeRoute {
	return dpt.Routes(t, `
metadata: {name: a}
spec:
  hostnames: [a.example]
  tls: [{secretName: a}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: b}
spec:
  hostnames: [b.example]
  tls: [{secretName: b}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: wild}
spec:
  hostnames: ["*.wild.example", exact.wild.example]
  tls: [{secretName: wild, hosts: ["*.wild.example"]}, {secretName: exact, hosts: [exact.wild.example]}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: shared}
spec:
  hostnames: [shared1.example, shared2.example]
  tls: [{secretName: shared}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: plain}
spec:
  hostnames: [plain.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
}

func handshake(t *testing.T, addr, sni string, pool *x509.CertPool, protos ...string) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: pool, NextProtos: protos})
}

func TestSNISelection(t *testing.T) {
	h, ca, _ := tlsSetup(t)
	for sni, wantCN := range map[string]string{
		"a.example":          "a.example",
		"B.Example":          "b.example",
		"x.wild.example":     "*.wild.example",
		"exact.wild.example": "exact.wild.example",
	} {
		c, err := handshake(t, h.HTTPS, sni, ca.Pool())
		if err != nil {
			t.Errorf("%s: %v", sni, err)
			continue
		}
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != wantCN {
			t.Errorf("%s: got certificate %s, want %s", sni, cn, wantCN)
		}
		c.Close()
	}
	for _, sni := range []string{"unknown.example", "a.b.wild.example", "wild.example", "plain.example", ""} {
		c, err := handshake(t, h.HTTPS, sni, ca.Pool())
		if err == nil {
			c.Close()
			t.Errorf("SNI %q: handshake succeeded without a certificate for it", sni)
			continue
		}
		if sni != "" && !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("SNI %q: %v, want an unrecognized_name alert", sni, err)
		}
	}
}

func httpsClient(ca *dpt.CA, addr string, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx netCtx, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHTTPSAndHTTP2ByALPN(t *testing.T) {
	h, ca, _ := tlsSetup(t)
	for _, h2 := range []bool{false, true} {
		c := httpsClient(ca, h.HTTPS, h2)
		resp, err := c.Get("https://a.example/x")
		if err != nil {
			t.Fatal(err)
		}
		e := dpt.DecodeEcho(t, resp.Body)
		resp.Body.Close()
		wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		if resp.Proto != wantProto || e.URI != "/x" || http.Header(e.Header).Get("X-Forwarded-Proto") != "https" {
			t.Errorf("h2=%v: proto %s, backend saw %s %v", h2, resp.Proto, e.URI, e.Header)
		}
		c.CloseIdleConnections()
	}
}

func TestMisdirectedRequest(t *testing.T) {
	h, ca, _ := tlsSetup(t)
	for _, tc := range []struct {
		sni, host string
		status    int
	}{
		{"a.example", "a.example", 200},
		{"a.example", "A.example:443", 200},
		{"a.example", "b.example", 421},
		{"a.example", "plain.example", 421},
		{"a.example", "unknown.example", 421},
		{"shared1.example", "shared2.example", 200}, // same certificate: connection reuse is legitimate
		{"x.wild.example", "y.wild.example", 200},
		{"x.wild.example", "exact.wild.example", 421},
	} {
		for _, h2 := range []bool{false, true} {
			protos := []string{"http/1.1"}
			if h2 {
				protos = []string{"h2"}
			}
			conn, err := handshake(t, h.HTTPS, tc.sni, ca.Pool(), protos...)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "https://"+tc.host+"/", nil)
			var resp *http.Response
			if h2 {
				tr := &http.Transport{ForceAttemptHTTP2: true}
				cc, err := h2ClientConn(tr, conn)
				if err != nil {
					t.Fatal(err)
				}
				resp, err = cc.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				_ = req.Write(conn)
				resp, err = http.ReadResponse(bufio.NewReader(conn), req)
				if err != nil {
					t.Fatal(err)
				}
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			conn.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("SNI %s Host %s h2=%v: %d %s, want %d", tc.sni, tc.host, h2, resp.StatusCode, body, tc.status)
			}
			if tc.status == 421 && !strings.Contains(string(body), proxy.ReasonMisdirected) {
				t.Errorf("421 body %q", body)
			}
		}
	}
}

// Raw request checks also guard HTTP/1.1 over TLS.
func TestRequestChecksOverTLS(t *testing.T) {
	h, ca, _ := tlsSetup(t)
	conn, err := handshake(t, h.HTTPS, "a.example", ca.Pool(), "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("duplicate Content-Length over TLS: %v %v", resp, err)
	}
}

func TestCertificateRotationLive(t *testing.T) {
	h, ca, kp := tlsSetup(t)
	for _, h2 := range []bool{false, true} {
		c := httpsClient(ca, h.HTTPS, h2)
		get := func() *big.Int {
			resp, err := c.Get("https://a.example/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.TLS.PeerCertificates[0].SerialNumber
		}
		before := get()
		next := tlsstore.Keypairs{}
		for k, v := range kp {
			next[k] = v
		}
		_, _, next[secret("a")] = ca.Issue(t, "a.example")
		h.Apply(t, tlsRoutes(t), next, proxy.Settings{})
		// The established connection keeps working (and keeps its certificate)...
		if got := get(); got.Cmp(before) != 0 {
			t.Errorf("h2=%v: keep-alive connection changed certificate", h2)
		}
		c.CloseIdleConnections()
		// ...and a new one gets the new certificate.
		if got := get(); got.Cmp(before) == 0 {
			t.Errorf("h2=%v: new connection still gets the old certificate", h2)
		}
		c.CloseIdleConnections()
		kp = next
	}
}

type (
	edgeRoute = edgev1alpha1.TenantRoute
	netCtx    = context.Context
)

// h2ClientConn speaks HTTP/2 on an established TLS connection.
func h2ClientConn(_ *http.Transport, c net.Conn) (interface {
	RoundTrip(*http.Request) (*http.Response, error)
}, error) {
	return (&http2.Transport{}).NewClientConn(c)
}

// HTTP/2 requests bypass the raw HTTP/1 checks; the proxy applies the ones net/http's HTTP/2
// server does not.
func TestHTTP2HeaderChecks(t *testing.T) {
	h, ca, _ := tlsSetup(t)
	c := httpsClient(ca, h.HTTPS, true)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://a.example/", nil)
	req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 400 || !strings.Contains(string(body), "underscore") {
		t.Errorf("underscore header over h2: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	resp, err = c.Get("https://a.example/a%2Fb")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("encoded slash over h2: %d", resp.StatusCode)
	}
}
