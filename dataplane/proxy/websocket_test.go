package proxy_test

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// dialWS opens a WebSocket through the proxy at addr for host and path.
func dialWS(t *testing.T, addr, host, path string) (*websocket.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://"+host+path, "http://"+host)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	ws, err := websocket.NewClient(cfg, raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return ws, nil
}

func TestWebSocketOnlyWhereAllowed(t *testing.T) {
	h, _, app := setup(t, `
metadata: {name: ws}
spec:
  hostnames: [ws.example]
  policy: {websocket: true}
  rules: [{timeouts: {request: 200ms}, backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: plain}
spec:
  hostnames: [plain.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	ws, err := dialWS(t, h.HTTP, "ws.example", "/ws")
	if err != nil {
		t.Fatalf("websocket through the proxy: %v", err)
	}
	defer ws.Close()
	// Keep the connection busy well past the route's 200 ms request timeout: upgraded connections
	// are not cut by it.
	deadline := time.Now().Add(600 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		if err := websocket.Message.Send(ws, "ping"); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "ping" {
			t.Fatalf("receive %d: %q %v", n, got, err)
		}
		n++
	}

	if _, err := dialWS(t, h.HTTP, "plain.example", "/ws"); err == nil {
		t.Fatal("websocket upgrade allowed on a route without policy.websocket")
	}
	// The upgrade is stripped, the request forwarded as a plain one.
	e := newClient(t, h.HTTP).get("plain.example", "/", "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").echo(t)
	if _, ok := e.Header["Upgrade"]; ok {
		t.Errorf("Upgrade forwarded on a route without websocket: %v", e.Header)
	}
	if app.Requests.Load() == 0 {
		t.Error("no plain request reached the backend")
	}
}
