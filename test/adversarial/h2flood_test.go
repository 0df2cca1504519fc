package adversarial

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// h2Attacker is a prior-knowledge h2c connection driven frame by frame.
type h2Attacker struct {
	c      net.Conn
	mu     sync.Mutex // the framer writes from two goroutines
	fr     *http2.Framer
	goaway atomic.Value // http2.ErrCode of a GOAWAY received
	frames atomic.Int64 // frames received
	closed chan struct{}
}

func dialH2C(t *testing.T, addr string) *h2Attacker {
	c := dialRaw(t, addr, 60*time.Second)
	a := &h2Attacker{c: c, fr: http2.NewFramer(c, c), closed: make(chan struct{})}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	rd := http2.NewFramer(io.Discard, c)
	go func() {
		defer close(a.closed)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				return
			}
			a.frames.Add(1)
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				a.goaway.Store(f.ErrCode)
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = a.write(a.fr.WriteSettingsAck)
				}
			}
		}
	}()
	return a
}

func (a *h2Attacker) write(f func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return f()
}

func requestBlock(host, path string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", host}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// h2Harness serves h2c on the HTTP listener; the returned closeIdle empties the proxy's upstream
// pool (idle keep-alive connections are bounded, 100 per endpoint, and not a leak; the baseline
// comparison is made without them).
func h2Harness(t *testing.T) (h *dpt.Harness, echo *dpt.Backend, get func() error, closeIdle func()) {
	echo = dpt.NewEcho(t, "app")
	transports := upstream.NewTransports(upstream.NewDialer(upstream.Guard{AllowLoopback: true}, 2*time.Second), upstream.TransportOptions{})
	h = start(t, dpt.Options{Server: server.Config{H2C: true}, Proxy: proxy.Options{Transports: transports}}, echo.URL, appRoute)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	closeIdle = func() {
		transports.CloseIdleConnections()
		client.CloseIdleConnections()
	}
	return h, echo, httpGetter(client, "http://"+h.HTTP+"/", "app.example"), closeIdle
}

// HTTP/2 rapid reset: 10,000 streams opened and reset at once over one connection. The proxy
// either cuts the connection or keeps the work bounded; parallel real traffic sees 0 errors and
// the goroutines return to their baseline.
func TestH2RapidReset(t *testing.T) {
	h, echo, get, closeIdle := h2Harness(t)
	for range 5 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	closeIdle()
	base := waitGoroutines(0, 0)
	mem := watchMemory(t)
	stop := make(chan struct{})
	tr := startTraffic(t, get, 50, stop)

	a := dialH2C(t, h.HTTP)
	block := requestBlock("app.example", "/")
	begin := time.Now()
	sent := 0
	var werr error
	for i := range 10000 {
		id := uint32(2*i + 1)
		werr = a.write(func() error {
			if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true, EndStream: true}); err != nil {
				return err
			}
			return a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		})
		if werr != nil {
			break
		}
		sent++
	}
	attack := time.Since(begin)
	select {
	case <-a.closed:
	case <-time.After(2 * time.Second):
	}
	_ = a.c.Close()
	<-a.closed
	close(stop)
	tr.wait()
	ga, _ := a.goaway.Load().(http2.ErrCode)
	reached := echo.Requests.Load() - 5 - tr.sent.Load()
	t.Logf("rapid reset: %d/10000 streams opened and reset in %v (write error: %v); GOAWAY %v; %d reached the backend",
		sent, attack.Round(time.Millisecond), werr, ga, max(reached, 0))
	t.Logf("real traffic: %d requests, %d failed %s", tr.sent.Load(), tr.failed.Load(), tr.firstErr)
	if tr.failed.Load() != 0 {
		t.Errorf("real traffic: %d/%d failed, first: %s", tr.failed.Load(), tr.sent.Load(), tr.firstErr)
	}
	pooled := waitGoroutines(0, 0)
	closeIdle()
	got := waitGoroutines(base+16, 10*time.Second)
	t.Logf("goroutines: %d before, %d after (%d with the idle upstream pool)", base, got, pooled)
	if got > base+16 {
		t.Errorf("goroutines: %d after the attack, %d before", got, base)
	}
	mem.finish(t, 32)
}

// CONTINUATION flood: one HEADERS frame without END_HEADERS followed by an endless stream of
// CONTINUATION frames (CVE-2024-27316 class). The proxy must cut the connection once the header
// list passes its 64 KiB limit, long before the 10,000 frames (10 MiB) are sent.
func TestH2ContinuationFlood(t *testing.T) {
	h, _, get, closeIdle := h2Harness(t)
	for range 5 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	closeIdle()
	base := waitGoroutines(0, 0)
	mem := watchMemory(t)
	stop := make(chan struct{})
	tr := startTraffic(t, get, 50, stop)

	a := dialH2C(t, h.HTTP)
	// Each fragment is a valid literal header field, so the decoder accumulates real header bytes.
	var frag bytes.Buffer
	_ = hpack.NewEncoder(&frag).WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("f", 1000)})
	_ = a.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	werr := a.write(func() error {
		return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("app.example", "/")})
	})
	sent := 0
	for werr == nil && sent < 10000 {
		if werr = a.write(func() error { return a.fr.WriteContinuation(1, false, frag.Bytes()) }); werr == nil {
			sent++
		}
	}
	select {
	case <-a.closed:
	case <-time.After(5 * time.Second):
	}
	cut := false
	select {
	case <-a.closed:
		cut = true
	default:
	}
	_ = a.c.Close()
	<-a.closed
	close(stop)
	tr.wait()
	ga, _ := a.goaway.Load().(http2.ErrCode)
	// "written" counts what the client's socket took, socket buffers on both sides included (a few
	// MiB on loopback), not what the proxy decoded.
	t.Logf("CONTINUATION flood: %d frames of ~1 KiB written before %v; connection cut: %v; GOAWAY %v", sent, werr, cut, ga)
	t.Logf("real traffic: %d requests, %d failed %s", tr.sent.Load(), tr.failed.Load(), tr.firstErr)
	if !cut {
		t.Errorf("the flooding connection was not cut (%d frames accepted)", sent)
	}
	if sent >= 10000 {
		t.Errorf("all 10,000 CONTINUATION frames were taken before the cut")
	}
	if tr.failed.Load() != 0 {
		t.Errorf("real traffic: %d/%d failed, first: %s", tr.failed.Load(), tr.sent.Load(), tr.firstErr)
	}
	pooled := waitGoroutines(0, 0)
	closeIdle()
	got := waitGoroutines(base+16, 10*time.Second)
	t.Logf("goroutines: %d before, %d after (%d with the idle upstream pool)", base, got, pooled)
	if got > base+16 {
		t.Errorf("goroutines: %d after the attack, %d before", got, base)
	}
	mem.finish(t, 32)
}
