package adversarial

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Two tenants on one HTTPS listener: 100 concurrent handshakes (10 at a time) for each tenant's
// SNI, over HTTP/1.1 and h2 ALPN, each present exactly that tenant's leaf; no SNI and an unknown
// SNI get the unrecognized_name alert; B's Host on A's connection is 421 and never reaches B.
func TestSNINeverCrossesTenants(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	echo := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, echo.URL)}})
	ca := dpt.NewCA(t)
	kp := tlsstore.Keypairs{}
	leaves := map[string][]byte{}
	for name, ns := range map[string]string{"a": "team", "b": "other"} {
		_, _, c := ca.Issue(t, name+".tenant.example")
		kp[types.NamespacedName{Namespace: ns, Name: name}] = c
		leaves[name+".tenant.example"] = c.Certificate[0]
	}
	h.Apply(t, dpt.Routes(t, `
metadata: {name: a}
spec:
  hostnames: [a.tenant.example]
  tls: [{secretName: a}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: b, namespace: other}
spec:
  hostnames: [b.tenant.example]
  tls: [{secretName: b}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), kp, proxy.Settings{})

	const n = 100
	for sni, want := range leaves {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, wrong := 0, 0
		sem := make(chan struct{}, 10)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				protos := []string{"http/1.1"}
				if i%2 == 1 {
					protos = []string{"h2"}
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.HTTPS,
					&tls.Config{ServerName: sni, RootCAs: ca.Pool(), NextProtos: protos})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("%s handshake %d: %v", sni, i, err)
					return
				}
				defer c.Close()
				if bytes.Equal(c.ConnectionState().PeerCertificates[0].Raw, want) {
					ok++
				} else {
					wrong++
				}
			}()
		}
		wg.Wait()
		t.Logf("SNI %s: %d/%d handshakes presented its own certificate, %d another", sni, ok, n, wrong)
		if ok != n || wrong != 0 {
			t.Errorf("SNI %s: %d/%d own certificate, %d another tenant's", sni, ok, n, wrong)
		}
	}

	for _, sni := range []string{"", "c.tenant.example", "tenant.example", "127.0.0.1"} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.HTTPS,
			&tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err == nil {
			t.Errorf("SNI %q: handshake succeeded, certificate %s", sni, c.ConnectionState().PeerCertificates[0].Subject.CommonName)
			c.Close()
			continue
		}
		if !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("SNI %q: %v, want the unrecognized_name alert", sni, err)
		}
	}

	// B's Host over A's TLS connection: 421, B's backend untouched.
	before := echo.Requests.Load()
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.tenant.example", RootCAs: ca.Pool()},
			ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		req, _ := http.NewRequest("GET", "https://"+h.HTTPS+"/", nil)
		req.Host = "b.tenant.example"
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("h2=%v: Host of tenant B on tenant A's connection: %d, want 421", h2, resp.StatusCode)
		}
	}
	if got := echo.Requests.Load() - before; got != 0 {
		t.Errorf("backend reached %d times by misdirected requests", got)
	}
}
