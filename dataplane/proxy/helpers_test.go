package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// client talks to the harness's HTTP listener; requests carry their own Host.
type client struct {
	t    *testing.T
	addr string
	c    *http.Client
}

func newClient(t *testing.T, addr string) *client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, addr: addr, c: &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body string
}

func (c *client) do(method, host, target string, body io.Reader, hdr ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.addr+target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s%s: %v", method, host, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return response{resp, string(b)}
}

func (c *client) get(host, target string, hdr ...string) response {
	c.t.Helper()
	return c.do(http.MethodGet, host, target, nil, hdr...)
}

// echo decodes an echo backend's answer.
func (r response) echo(t *testing.T) dpt.Echo {
	t.Helper()
	if r.StatusCode != 200 {
		t.Fatalf("status %d: %s", r.StatusCode, r.body)
	}
	return dpt.DecodeEcho(t, strings.NewReader(r.body))
}

// expectAnswer checks a proxy-made answer: status and reason named in the body.
func expectAnswer(t *testing.T, r response, status int, reason string) {
	t.Helper()
	if r.StatusCode != status || !strings.Contains(r.body, reason) {
		t.Errorf("got %d %q, want %d naming %q", r.StatusCode, r.body, status, reason)
	}
	if strings.Contains(r.body, "127.0.0.1") || strings.Contains(r.body, "dial") {
		t.Errorf("answer leaks internals: %q", r.body)
	}
}

// observed collects exchanges.
type observed struct{ ch chan proxy.Exchange }

func newObserved() *observed { return &observed{ch: make(chan proxy.Exchange, 1000)} }

func (o *observed) Observe(e *proxy.Exchange) { o.ch <- *e }

func (o *observed) next(t *testing.T) proxy.Exchange {
	t.Helper()
	select {
	case e := <-o.ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no exchange observed")
	}
	return proxy.Exchange{}
}

// setup starts a harness with one echo backend "app" behind route YAML.
func setup(t *testing.T, routeYAML ...string) (*dpt.Harness, *client, *dpt.Backend) {
	t.Helper()
	h := dpt.Start(t, dpt.Options{})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, routeYAML...), nil, proxy.Settings{})
	return h, newClient(t, h.HTTP), app
}

const simpleRoute = `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules:
  - backendRefs: [{name: app, port: 80}]
`
