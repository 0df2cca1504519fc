package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// The deadlines are lowered so that the short tier measures them in seconds.
const (
	headerTimeout = 2 * time.Second
	bodyTimeout   = 2 * time.Second
	writeTimeout  = 2 * time.Second
)

// closed counts the client connections of the HTTP listener that the proxy closed.
var closed atomic.Int64

func slowHarness(t *testing.T) (*dpt.Harness, *dpt.Backend) {
	closed.Store(0)
	h := dpt.Start(t, dpt.Options{Server: server.Config{ReadHeaderTimeout: headerTimeout,
		OnConnState: func(l string, st http.ConnState) {
			if l == "http" && st == http.StateClosed {
				closed.Add(1)
			}
		},
		BodyReadTimeout: bodyTimeout, ResponseWriteTimeout: writeTimeout,
		// Every client here is 127.0.0.1: the per-IP cap would refuse the attack before the
		// header timeout is reached (TestConnectionCaps covers the caps).
		MaxConnsPerIP: -1}})
	echo := dpt.NewEcho(t, "app")
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("z", 64<<10))
		for range 512 { // 32 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(big.Close)
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, echo.URL)},
		dpt.Key("big"): {dpt.EndpointOf(t, big.URL)}})
	h.Apply(t, dpt.Routes(t, appRoute, `
metadata: {name: big}
spec:
  hostnames: [big.example]
  rules: [{backendRefs: [{name: big, port: 80}]}]
`), nil, proxy.Settings{})
	return h, echo
}

// Slowloris: N connections trickle a header byte every 300 ms; each is closed at the header
// timeout ± 1 s, while real traffic at 50 requests/s sees 0 errors. N is 500 in the short tier,
// 2,000 in the long one.
func TestSlowloris(t *testing.T) {
	n := 500
	if long() {
		n = 2000
	}
	h, _ := slowHarness(t)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get := httpGetter(client, "http://"+h.HTTP+"/", "app.example")
	for range 5 { // warm the connection pools, so that the baseline includes them
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	base := waitGoroutines(0, 0)
	mem := watchMemory(t)
	stop := make(chan struct{})
	tr := startTraffic(t, get, 50, stop)

	lifetimes := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", h.HTTP, 5*time.Second)
			if err != nil {
				lifetimes[i] = -1
				return
			}
			defer c.Close()
			begin := time.Now()
			_ = c.SetDeadline(begin.Add(headerTimeout + 10*time.Second))
			go func() {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\nX-Slow: "); err != nil {
					return
				}
				for {
					time.Sleep(300 * time.Millisecond)
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			_, _ = io.Copy(io.Discard, c) // returns when the proxy closes (or the 12 s deadline)
			lifetimes[i] = time.Since(begin)
		}()
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // stay under the listen backlog
		}
	}
	wg.Wait()
	close(stop)
	tr.wait()
	client.CloseIdleConnections()

	slices.Sort(lifetimes)
	outside := 0
	for _, d := range lifetimes {
		if d < headerTimeout-time.Second || d > headerTimeout+time.Second {
			outside++
		}
	}
	t.Logf("slowloris: %d connections, closed after min %v, median %v, max %v (header timeout %v); %d outside ±1 s",
		n, lifetimes[0].Round(time.Millisecond), lifetimes[n/2].Round(time.Millisecond), lifetimes[n-1].Round(time.Millisecond), headerTimeout, outside)
	t.Logf("real traffic: %d requests, %d failed %s", tr.sent.Load(), tr.failed.Load(), tr.firstErr)
	if outside > 0 {
		t.Errorf("%d/%d slowloris connections not closed within header timeout ± 1 s", outside, n)
	}
	if tr.failed.Load() != 0 || tr.sent.Load() == 0 {
		t.Errorf("real traffic: %d/%d failed, first: %s", tr.failed.Load(), tr.sent.Load(), tr.firstErr)
	}
	// Idle pooled connections opened by the traffic's bursts may remain (4 goroutines each,
	// client and proxy sides): allow a few.
	got := waitGoroutines(base+16, 5*time.Second)
	t.Logf("goroutines: %d before, %d after", base, got)
	if got > base+16 {
		t.Errorf("goroutines: %d after the attack, %d before", got, base)
	}
	// Both ends of every connection live in this process (proxy and attacker): about 40 KiB per
	// connection for the two was measured (goroutine stacks, buffers; kernel side excluded); 96 KiB
	// leaves room for -race, which about doubles stacks.
	mem.finish(t, float64(n)*96/1024)
}

// A body that stops arriving is answered 408 and closed at the body deadline ± 1 s (declared
// length and chunked); the backend is never reached for the buffered (chunked) case.
func TestSlowBody(t *testing.T) {
	h, echo := slowHarness(t)
	for _, tc := range []struct{ name, raw string }{
		{"declared length", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n0123456789"},
		{"chunked", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := echo.Requests.Load()
			c := dialRaw(t, h.HTTP, 10*time.Second)
			defer c.Close()
			begin := time.Now()
			_, _ = io.WriteString(c, tc.raw)
			br := bufio.NewReader(c)
			resp, body, err := readResp(br)
			took := time.Since(begin)
			if err != nil {
				t.Fatalf("after %v: %v", took, err)
			}
			t.Logf("%s: %d after %v", tc.name, resp.StatusCode, took.Round(time.Millisecond))
			if resp.StatusCode != http.StatusRequestTimeout || took < bodyTimeout-time.Second || took > bodyTimeout+time.Second {
				t.Errorf("%d %q after %v, want 408 after %v ± 1 s", resp.StatusCode, body, took, bodyTimeout)
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := br.ReadByte(); err == nil {
				t.Error("bytes after the 408")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("connection still open after the 408")
			}
			if tc.name == "chunked" && echo.Requests.Load() != before {
				t.Error("backend reached for a stalled chunked body")
			}
		})
	}
	// A slow but moving body is not cut: 5 bytes every 500 ms for 3 s (longer than the deadline).
	c := dialRaw(t, h.HTTP, 15*time.Second)
	defer c.Close()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 30\r\n\r\n")
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(c, "01234")
	}
	resp, _, err := readResp(bufio.NewReader(c))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("slow but steady body: %v %v", err, resp)
	}
}

// A client that reads none of a 32 MiB response: once the socket buffers are full the proxy's
// write fails at the write deadline, the request leaves the proxy (in flight back to 0) and the
// proxy closes the connection.
func TestSlowReader(t *testing.T) {
	h, _ := slowHarness(t)
	c, err := net.DialTimeout("tcp", h.HTTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	mem := watchMemory(t)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: big.example\r\n\r\n")
	begin := time.Now()
	deadline := begin.Add(writeTimeout + 8*time.Second)
	for h.Proxy.InFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for h.Proxy.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(begin)
	t.Logf("slow reader: request released after %v (write deadline %v)", took.Round(time.Millisecond), writeTimeout)
	if h.Proxy.InFlight() != 0 {
		t.Fatalf("slow reader still in flight after %v", took)
	}
	// The proxy closed its end (the kernel may still hold queued bytes for the peer, as with any
	// closed socket, but no goroutine, buffer or upstream connection of the proxy does).
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if closed.Load() == 0 {
		t.Errorf("the slow reader's connection was not closed by the proxy after %v", time.Since(begin))
	}
	// The proxy streams: it never holds the 32 MiB response it cannot deliver.
	mem.finish(t, 8)
}
