package filesmode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/diagnose"
	"github.com/portico-dev/portico/internal/filesmode"
)

// portico's GatewayClass under the name the source example's Gateway uses.
const gatewayClass = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nginx}
spec:
  controllerName: edge.portico.dev/gateway-controller
`

// tlsSecret is a kubernetes.io/tls Secret with a key pair issued for hosts, written with
// stringData as a person would.
func tlsSecret(t *testing.T, ca *dataplanetest.CA, namespace, name string, hosts ...string) (string, *tls.Certificate) {
	t.Helper()
	certPEM, keyPEM, cert := ca.Issue(t, hosts...)
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return `
apiVersion: v1
kind: Secret
metadata: {name: ` + name + `, namespace: ` + namespace + `}
type: kubernetes.io/tls
stringData:
  tls.crt: |
` + indent(certPEM) + `
  tls.key: |
` + indent(keyPEM) + "\n", cert
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The source document's gateway-httproute.yaml unchanged, served over real HTTP(S) on 127.0.0.1
// through the operator's Gateway API translation: the route, in namespace app, is refused by the
// listener (allowedRoutes defaults to the Gateway's namespace) and its host answers 404; once the
// listener admits every namespace, HTTPS for api.example.com answers from the backend with the
// listener's certificate, a Secret of the Gateway's namespace.
func TestServesGatewayAPIDirectory(t *testing.T) {
	dir := t.TempDir()
	h := dataplanetest.Start(t, dataplanetest.Options{})
	api := dataplanetest.NewEcho(t, "web-api")
	write(t, dir, "class.yaml", gatewayClass)
	write(t, dir, "backends.yaml", backendYAML(t, "web-api", api))
	write(t, dir, "gateway-httproute.yaml", sourceExample(t, "gateway-httproute.yaml"))

	var logs syncBuffer
	src := files.NewSource(files.Options{Dir: dir, Debounce: 50 * time.Millisecond, Hooks: filesmode.Hooks(),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, h.Dataplane)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l := logs.String()
	for _, want := range []string{`"level":"WARN"`, `"object":"HTTPRoute app/web-api"`, `"field":"spec.parentRefs[0]"`,
		"not served by Gateway gateway-system/public-gateway: NotAllowedByListeners: ",
		"only routes of namespace gateway-system are admitted"} {
		if !strings.Contains(l, want) {
			t.Errorf("the refusal is not logged with %s: %s", want, l)
		}
	}
	if strings.Contains(l, `"level":"ERROR"`) {
		t.Errorf("a refused HTTPRoute must be a warning, not an error: %s", l)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if status, backend := get(t, c, h.HTTP, "api.example.com", "/"); status != 404 {
		t.Errorf("the refused route is served: %d from %q", status, backend)
	}

	t.Run("allowedRoutes from All, with the listener's certificate", func(t *testing.T) {
		variant := readTestdata(t, "gateway-httproute-from-all.yaml")
		if want := strings.Replace(sourceExample(t, "gateway-httproute.yaml"), "      hostname: api.example.com\n",
			"      hostname: api.example.com\n      allowedRoutes:\n        namespaces:\n          from: All\n", 1); !strings.HasSuffix(variant, want) {
			t.Fatalf("testdata/gateway-httproute-from-all.yaml is no longer the source example plus allowedRoutes")
		}
		ca := dataplanetest.NewCA(t)
		secret, cert := tlsSecret(t, ca, "gateway-system", "api-example-com-tls", "api.example.com")
		write(t, dir, "secret.yaml", secret)
		write(t, dir, "gateway-httproute.yaml", variant)
		tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "api.example.com", RootCAs: ca.Pool()}}}
		var served *http.Response
		eventually(t, "the HTTPRoute to be served over HTTPS", func() bool {
			req, _ := http.NewRequest("GET", "https://"+h.HTTPS+"/users", nil)
			req.Host = "api.example.com"
			resp, err := tc.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			served = resp
			return resp.StatusCode == 200 && resp.Header.Get("X-Backend") == "web-api"
		})
		if peer := served.TLS.PeerCertificates; len(peer) == 0 || !bytes.Equal(peer[0].Raw, cert.Certificate[0]) {
			t.Errorf("the proxy did not present the listener's certificate")
		}

		cfg, err := files.LoadWith(dir, proxy.Settings{}, time.Now(), filesmode.Hooks())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range cfg.Problems {
			t.Errorf("unexpected problem: %v", p)
		}

		table, err := diagnose.FromFiles(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ex, err := diagnose.Explain(table, diagnose.Request{URL: "https://api.example.com/users"})
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status != 0 || !strings.HasPrefix(ex.Route, "app/httproute-web-api-public-gateway-") ||
			!strings.Contains(ex.Certificate, "gateway-system.api-example-com-tls") {
			t.Errorf("explain: %+v", ex)
		}
	})
}

// A listener's certificate in a third namespace needs a ReferenceGrant there from Gateways of the
// Gateway's namespace, as in a cluster; without one the Gateway's listener says RefNotPermitted and
// the host gets no certificate.
func TestGatewayCertificateNeedsReferenceGrant(t *testing.T) {
	dir := t.TempDir()
	ca := dataplanetest.NewCA(t)
	secret, _ := tlsSecret(t, ca, "certs", "shared-tls", "shop.example.com")
	write(t, dir, "objects.yaml", gatewayClass+`
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nginx
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: shop.example.com
    allowedRoutes: {namespaces: {from: All}}
    tls: {certificateRefs: [{name: shared-tls, namespace: certs}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: app}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: shop, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: app}
spec: {ports: [{port: 80}]}
---
`+secret)
	load := func() *files.Config {
		t.Helper()
		cfg, err := files.LoadWith(dir, proxy.Settings{}, time.Now(), filesmode.Hooks())
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load()
	if _, ok := cfg.Table.TLSSecretFor("shop.example.com"); ok {
		t.Errorf("the certificate is served without a ReferenceGrant")
	}
	var refused bool
	for _, p := range cfg.Problems {
		refused = refused || p.Object == "Gateway infra/gw" && p.Field == "spec.listeners[0]" && strings.Contains(p.Message, "RefNotPermitted")
	}
	if !refused {
		t.Errorf("no RefNotPermitted warning on the listener: %v", cfg.Problems)
	}

	write(t, dir, "grant.yaml", `
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: "", kind: Secret}]
`)
	cfg = load()
	for _, p := range cfg.Problems {
		if !strings.Contains(p.Message, "requests will get 503") { // the Service has no EndpointSlice
			t.Errorf("unexpected problem: %v", p)
		}
	}
	sec, ok := cfg.Table.TLSSecretFor("shop.example.com")
	if !ok {
		t.Fatalf("no certificate for shop.example.com with the grant")
	}
	if want := (types.NamespacedName{Namespace: "app", Name: "certs.shared-tls"}); sec.Secret != want {
		t.Errorf("certificate from %v, want the alias %v", sec.Secret, want)
	}
	if cfg.Keypairs[sec.Secret] == nil || cfg.Keypairs[sec.Secret] != cfg.Keypairs[types.NamespacedName{Namespace: "certs", Name: "shared-tls"}] {
		t.Errorf("the alias does not serve the Secret's key pair")
	}
}
