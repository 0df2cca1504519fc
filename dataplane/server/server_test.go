package server_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck/checktest"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/upstream"
)

const appRoute = `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`

func adminGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdminEndpoints(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	if code, _ := adminGet(t, h.Admin, "/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := adminGet(t, h.Admin, "/readyz"); code != 503 {
		t.Errorf("readyz before the first table: %d", code)
	}
	if code, _ := adminGet(t, h.Admin, "/debug/routes"); code != 503 {
		t.Errorf("debug/routes before the first table: %d", code)
	}
	h.Apply(t, dpt.Routes(t, appRoute), nil, proxy.Settings{})
	if code, _ := adminGet(t, h.Admin, "/readyz"); code != 200 {
		t.Errorf("readyz with a table: %d", code)
	}
	code, body := adminGet(t, h.Admin, "/debug/routes")
	var dump any
	if code != 200 || json.Unmarshal([]byte(body), &dump) != nil || !strings.Contains(body, "app.example") {
		t.Errorf("debug/routes: %d %s", code, body)
	}
	if code, body := adminGet(t, h.Admin, "/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics: %d", code)
	}
	// The admin API is not reachable through the proxy.
	c := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+h.HTTP+"/debug/routes", nil)
	req.Host = "localhost"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("admin path through the proxy: %d", resp.StatusCode)
	}
}

func TestGracefulShutdown(t *testing.T) {
	h := dpt.Start(t, dpt.Options{Server: server.Config{ShutdownGrace: 300 * time.Millisecond}})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, appRoute), nil, proxy.Settings{})

	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest("GET", "http://"+h.HTTP+"/sleep?d=800ms", nil)
		req.Host = "app.example"
		resp, err := c.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- result{code: resp.StatusCode}
	}()
	eventually(t, 5*time.Second, "the request to reach the backend", func() bool { return app.Requests.Load() == 1 })

	h.Begin()
	eventually(t, 5*time.Second, "readyz to turn false", func() bool {
		code, _ := adminGet(t, h.Admin, "/readyz")
		return code == 503
	})
	// Still serving during the grace period.
	if res := checktest.Send(t, h.HTTP, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n"); res.Status != 200 {
		t.Errorf("request during the grace period: %d", res.Status)
	}
	if err := h.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r := <-inflight; r.err != nil || r.code != 200 {
		t.Errorf("in-flight request: %d %v", r.code, r.err)
	}
	if c, err := net.DialTimeout("tcp", h.HTTP, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepting after shutdown")
	}
}

// The strict request checks, end to end through the real listener and proxy.
func TestRequestCheckVectorsEndToEnd(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	up := checktest.NewUpstream(t)
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, up.URL)}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: any}
spec:
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), nil, proxy.Settings{})
	for _, v := range checktest.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			bytesBefore, reqBefore := up.Bytes(), up.Requests()
			res := checktest.Send(t, h.HTTP, v.Raw)
			if res.Status != v.Status {
				t.Errorf("status %d (%q), want %d", res.Status, res.Body, v.Status)
			}
			if v.Forwarded {
				if got := up.Requests() - reqBefore; got != 1 {
					t.Errorf("upstream saw %d requests, want 1", got)
				}
				return
			}
			if !res.Closed {
				t.Error("connection not closed after a refusal")
			}
			if got := up.Bytes() - bytesBefore; got != 0 {
				t.Errorf("upstream received %d bytes", got)
			}
		})
	}
}
