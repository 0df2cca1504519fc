package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// stableRoute is the route the clients use; every swap changes it (a response header carries the
// generation) without ever making it unavailable.
func stableRoute(gen int) string {
	return fmt.Sprintf(`
metadata: {name: stable}
spec:
  hostnames: [stable.example]
  tls: [{secretName: stable-tls}]
  policy: {websocket: true}
  rules:
  - backendRefs: [{name: app, port: 80}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Generation, value: "%d"}]}
`, gen)
}

func churnRoute(i int) string {
	return fmt.Sprintf(`
metadata: {name: churn-%d}
spec:
  hostnames: [churn-%d.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p%d}}]
    backendRefs: [{name: app, port: 80}]
`, i, i, i)
}

// dialCounter counts the connections a client opened: a client that never had to reconnect
// never saw a dropped connection.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) dial(addr string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		d.n.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

// TestZeroDowntimeUnderChurn keeps HTTP/1.1 keep-alive connections (plain and TLS), an HTTP/2
// connection over TLS, a prior-knowledge h2c connection and a WebSocket busy while the table is
// swapped hundreds of times (routes added, removed and changed, endpoints replaced, the
// certificate rotated), and requires zero failed requests and zero reconnections.
func TestZeroDowntimeUnderChurn(t *testing.T) {
	const swaps = 300
	h := dpt.Start(t, dpt.Options{Server: server.Config{H2C: true}})
	app1, app2 := dpt.NewEcho(t, "app1"), dpt.NewEcho(t, "app2")
	ep1, ep2 := dpt.EndpointOf(t, app1.URL), dpt.EndpointOf(t, app2.URL)
	ca := dpt.NewCA(t)
	_, _, cert := ca.Issue(t, "stable.example")
	secretKey := secret("stable-tls")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {ep1, ep2}})
	h.Apply(t, dpt.Routes(t, stableRoute(0)), tlsstore.Keypairs{secretKey: cert}, proxy.Settings{})

	var (
		requests atomic.Int64
		progress = make(chan struct{}, 64)
		failures atomic.Int64
		failed   = make(chan struct{})
		failOnce sync.Once
		firstErr atomic.Value
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprintf(format, args...))
		failOnce.Do(func() { close(failed) })
	}
	check := func(kind string, resp *http.Response, err error) {
		if err != nil {
			fail("%s: %v", kind, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Generation") == "" {
			fail("%s: status %d", kind, resp.StatusCode)
			return
		}
		requests.Add(1)
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	type client struct {
		name    string
		c       *http.Client
		url     string
		dials   *dialCounter
		workers int
	}
	var clients []client
	newClient := func(name, url, addr string, h2, h2c, tlsOn bool, workers int) {
		d := &dialCounter{}
		tr := &http.Transport{DialContext: d.dial(addr), MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "stable.example"}, ForceAttemptHTTP2: h2}
		if h2c {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetUnencryptedHTTP2(true)
		} else if tlsOn && !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		clients = append(clients, client{name, &http.Client{Transport: tr, Timeout: 10 * time.Second}, url, d, workers})
	}
	for i := range 3 {
		newClient(fmt.Sprintf("h1-%d", i), "http://stable.example/x", h.HTTP, false, false, false, 1)
	}
	newClient("h1-tls", "https://stable.example/x", h.HTTPS, false, false, true, 1)
	newClient("h2-tls", "https://stable.example/x", h.HTTPS, true, false, true, 4)
	newClient("h2c", "http://stable.example/x", h.HTTP, false, true, false, 2)

	for _, cl := range clients {
		for range cl.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := cl.c.Get(cl.url)
					if err == nil && strings.HasPrefix(cl.name, "h2") && resp.ProtoMajor != 2 {
						fail("%s: spoke %s", cl.name, resp.Proto)
					}
					check(cl.name, resp, err)
				}
			}()
		}
	}

	// One WebSocket, busy the whole time.
	ws, err := dialWS(t, h.HTTP, "stable.example")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	var wsMessages atomic.Int64
	go func() {
		defer wg.Done()
		defer ws.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprint("m", wsMessages.Load())
			var got string
			if err := websocket.Message.Send(ws, msg); err != nil {
				fail("websocket send: %v", err)
				return
			}
			if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
				fail("websocket receive: %q %v", got, err)
				return
			}
			wsMessages.Add(1)
		}
	}()

	// Swap, and after every swap wait until the clients made progress, so that swaps and
	// requests really interleave (bounded by a deadline, never by sleeping).
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; i <= swaps && failures.Load() == 0; i++ {
		docs := []string{stableRoute(i)}
		for j := max(0, i-5); j < i; j++ { // five churn routes live at a time: one added, one removed per swap
			docs = append(docs, churnRoute(j))
		}
		if i%10 == 0 {
			_, _, cert = ca.Issue(t, "stable.example")
		}
		eps := []upstream.Endpoint{ep1, ep2}
		if i%2 == 0 {
			eps = []upstream.Endpoint{ep2, ep1}
		}
		h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): eps})
		h.Apply(t, dpt.Routes(t, docs...), tlsstore.Keypairs{secretKey: cert}, proxy.Settings{})
	drain:
		for {
			select {
			case <-progress:
			default:
				break drain
			}
		}
		for range 3 {
			select {
			case <-progress:
			case <-failed:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("no progress after swap %d (%v)", i, firstErr.Load())
			}
		}
	}
	close(stop)
	wg.Wait()

	if n := failures.Load(); n != 0 {
		t.Fatalf("%d failed requests; first: %v", n, firstErr.Load())
	}
	for _, cl := range clients {
		if n := cl.dials.n.Load(); n != 1 {
			t.Errorf("%s opened %d connections, want 1 (a connection was dropped)", cl.name, n)
		}
	}
	if wsMessages.Load() == 0 {
		t.Error("the WebSocket carried no message")
	}
	t.Logf("%d swaps, %d requests, %d websocket round trips, 0 failures", swaps, requests.Load(), wsMessages.Load())
}

// dialWS opens a WebSocket to host through the proxy's plain listener.
func dialWS(t *testing.T, addr, host string) (*websocket.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://"+host+"/ws", "http://"+host)
	if err != nil {
		return nil, err
	}
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	return websocket.NewClient(cfg, raw)
}
