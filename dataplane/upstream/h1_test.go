package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a raw upstream: every connection reads request heads and answers each with the
// next function of its script (which writes whatever bytes it likes).
type scripted struct {
	ln    net.Listener
	conns atomic.Int32
	mu    sync.Mutex
	heads []string
}

func newScripted(t *testing.T, answer func(n int, head string, w net.Conn) (keep bool)) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln}
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					s.mu.Lock()
					s.heads = append(s.heads, head.String())
					s.mu.Unlock()
					if !answer(int(n.Add(1)), head.String(), c) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *scripted) addr() string { return s.ln.Addr().String() }

func (s *scripted) lastHead() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heads[len(s.heads)-1]
}

func newTestH1() *H1 {
	var d net.Dialer
	return NewH1(d.DialContext, time.Minute, 4, 64<<10)
}

func get(t *testing.T, h *H1, addr, path string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = "app.example"
	req.Header.Set("User-Agent", "")
	if !h.Eligible(req) {
		t.Fatalf("GET %s not eligible", path)
	}
	resp, err := h.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

const okResp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

func TestH1ReusesConnectionsAndWritesTheHead(t *testing.T) {
	s := newScripted(t, func(_ int, _ string, w net.Conn) bool { io.WriteString(w, okResp); return true })
	h := newTestH1()
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr()+"/a%2Fb?q=1", nil)
		req.Host = "app.example"
		req.Header.Set("User-Agent", "")
		req.Header["X-Multi"] = []string{"1", " 2\t"}
		resp, err := h.RoundTrip(req)
		if err != nil {
			t.Fatal(i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" {
			t.Fatalf("%d: %d %q", i, resp.StatusCode, b)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 5 sequential requests, want 1", n)
	}
	head := s.lastHead()
	for _, want := range []string{"GET /a%2Fb?q=1 HTTP/1.1\r\n", "Host: app.example\r\n", "X-Multi: 1\r\n", "X-Multi: 2\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("head %q lacks %q", head, want)
		}
	}
	if strings.Contains(head, "User-Agent") || strings.Contains(head, "Content-Length") {
		t.Errorf("head %q has a User-Agent or Content-Length", head)
	}
}

func TestH1ResponseFramings(t *testing.T) {
	answers := map[string]string{
		"/chunked":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nok\n\r\n0\r\nX-T: v\r\n\r\n",
		"/empty":    "HTTP/1.1 204 No Content\r\n\r\n",
		"/notmod":   "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"/early":    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + okResp,
		"/close":    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n",
		"/eof":      "HTTP/1.1 200 OK\r\n\r\nok\n", // close-delimited
		"/http10":   "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
		"/zero":     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"/keep":     okResp,
		"/switched": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	}
	closes := map[string]bool{"/close": true, "/eof": true, "/http10": true, "/switched": true}
	s := newScripted(t, func(_ int, head string, w net.Conn) bool {
		path := strings.Fields(head)[1]
		io.WriteString(w, answers[path])
		return !closes[path]
	})
	h := newTestH1()
	for _, path := range []string{"/chunked", "/empty", "/notmod", "/early", "/close", "/eof", "/http10", "/zero", "/keep", "/switched"} {
		var hints []int
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr()+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { hints = append(hints, code); return nil },
		}))
		before := s.conns.Load()
		resp, err := h.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: body: %v", path, err)
		}
		switch path {
		case "/chunked":
			if string(b) != "ok\n" || resp.Trailer.Get("X-T") != "v" {
				t.Errorf("%s: body %q trailer %v", path, b, resp.Trailer)
			}
		case "/early":
			if resp.StatusCode != 200 || len(hints) != 2 || hints[0] != 103 || hints[1] != 100 {
				t.Errorf("%s: status %d, 1xx seen %v", path, resp.StatusCode, hints)
			}
		case "/empty", "/notmod", "/zero", "/switched":
			if len(b) != 0 {
				t.Errorf("%s: body %q", path, b)
			}
		default:
			if string(b) != "ok\n" {
				t.Errorf("%s: body %q", path, b)
			}
		}
		// The next request tells whether the connection went back to the pool.
		if _, _, err := get(t, h, s.addr(), "/keep"); err != nil {
			t.Fatalf("after %s: %v", path, err)
		}
		newConns := s.conns.Load() - before
		if closes[path] && newConns != 1 && before > 0 {
			t.Errorf("%s: the next request reused a connection that had to be closed (%d new)", path, newConns)
		}
		if !closes[path] && newConns != 0 && before > 0 {
			t.Errorf("%s: a reusable connection was not reused (%d new connections)", path, newConns)
		}
	}
}

// An upstream that closes idle connections, or sends bytes nobody asked for, never makes a
// request fail or get another request's answer.
func TestH1StaleAndDirtyConnections(t *testing.T) {
	s := newScripted(t, func(n int, head string, w net.Conn) bool {
		path := strings.Fields(head)[1]
		switch path {
		case "/then-close":
			io.WriteString(w, okResp)
			time.Sleep(20 * time.Millisecond)
			return false
		case "/then-garbage":
			io.WriteString(w, okResp)
			time.Sleep(20 * time.Millisecond)
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n")
			return true
		case "/extra":
			io.WriteString(w, okResp+"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n")
			return true
		}
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext\n")
		return true
	})
	h := newTestH1()
	for _, first := range []string{"/then-close", "/then-garbage", "/extra"} {
		if _, body, err := get(t, h, s.addr(), first); err != nil || body != "ok\n" {
			t.Fatalf("%s: %q %v", first, body, err)
		}
		time.Sleep(60 * time.Millisecond)
		if _, body, err := get(t, h, s.addr(), "/next"); err != nil || body != "next\n" {
			t.Fatalf("after %s: %q %v", first, body, err)
		}
	}
}

// A request whose pooled connection dies mid-exchange is sent again only when replayable.
func TestH1RetriesOnlyReplayableRequests(t *testing.T) {
	var drop atomic.Bool
	s := newScripted(t, func(_ int, _ string, w net.Conn) bool {
		if drop.Load() {
			return false // read the request, close without answering
		}
		io.WriteString(w, okResp)
		return true
	})
	h := newTestH1()
	if _, _, err := get(t, h, s.addr(), "/"); err != nil {
		t.Fatal(err)
	}
	drop.Store(true)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr()+"/", nil)
	if _, err := h.RoundTrip(req); err == nil {
		t.Fatal("POST on a dropped connection succeeded")
	}
	// GET: the pooled connection fails, a fresh one fails too (no answer), so the error surfaces,
	// after exactly one retry.
	if _, _, err := get(t, h, s.addr(), "/"); err != nil {
		// fine: it must just not loop
	}
	drop.Store(false)
	if _, body, err := get(t, h, s.addr(), "/"); err != nil || body != "ok\n" {
		t.Fatalf("after the drops: %q %v", body, err)
	}
}

func TestH1CancelAbortsAndClosesTheConnection(t *testing.T) {
	release := make(chan struct{})
	s := newScripted(t, func(_ int, head string, w net.Conn) bool {
		if strings.Contains(head, "/slowbody") {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			<-release
			return false
		}
		if strings.Contains(head, "/slow") {
			<-release
			return false
		}
		io.WriteString(w, okResp)
		return true
	})
	defer close(release)
	h := newTestH1()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr()+"/slow", nil)
	start := time.Now()
	_, err := h.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("slow upstream: %v after %s", err, time.Since(start))
	}
	// The body's turn: cancelled once the head is in (a deadline counted from the start would,
	// on a loaded machine, sometimes expire during the dial instead).
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	defer cancel2(nil)
	req, _ = http.NewRequestWithContext(ctx2, http.MethodGet, "http://"+s.addr()+"/slowbody", nil)
	resp, err := h.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(100*time.Millisecond, func() { cancel2(context.DeadlineExceeded) })
	defer stop.Stop()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("slow body: %v", err)
	}
	if _, body, err := get(t, h, s.addr(), "/"); err != nil || body != "ok\n" {
		t.Fatalf("after the cancellations: %q %v", body, err)
	}
}

// A body closed before its end closes the connection (no draining, no reuse).
func TestH1EarlyCloseDoesNotReuse(t *testing.T) {
	s := newScripted(t, func(_ int, head string, w net.Conn) bool {
		if strings.Contains(head, "/big") {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 1000))
			return true // pretends the rest follows later
		}
		io.WriteString(w, okResp)
		return true
	})
	h := newTestH1()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr()+"/big", nil)
	resp, err := h.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	if _, body, err := get(t, h, s.addr(), "/"); err != nil || body != "ok\n" || s.conns.Load() != 2 {
		t.Fatalf("after an early close: %q %v, %d connections", body, err, s.conns.Load())
	}
}

func TestH1RefusesWhatTransportRefuses(t *testing.T) {
	s := newScripted(t, func(_ int, _ string, w net.Conn) bool { io.WriteString(w, okResp); return true })
	h := newTestH1()
	for name, mod := range map[string]func(*http.Request){
		"field name":  func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} },
		"field value": func(r *http.Request) { r.Header["X-Bad"] = []string{"a\r\nInjected: 1"} },
		"method":      func(r *http.Request) { r.Method = "GE T" },
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr()+"/", nil)
		mod(req)
		if _, err := h.RoundTrip(req); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	// A response head over the limit is an error.
	big := newScripted(t, func(_ int, _ string, w net.Conn) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 100<<10)+"\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	req, _ := http.NewRequest(http.MethodGet, "http://"+big.addr()+"/", nil)
	if _, err := h.RoundTrip(req); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("oversized response head: %v", err)
	}
}

func TestH1Eligibility(t *testing.T) {
	h := newTestH1()
	mk := func(mod func(*http.Request)) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:80/", nil)
		mod(req)
		return req
	}
	if !h.Eligible(mk(func(*http.Request) {})) {
		t.Error("plain GET not eligible")
	}
	for name, mod := range map[string]func(*http.Request){
		"body":      func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), 1 },
		"unknown":   func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), -1 },
		"upgrade":   func(r *http.Request) { r.Header.Set("Upgrade", "websocket") },
		"conn":      func(r *http.Request) { r.Header.Set("Connection", "Upgrade") },
		"expect":    func(r *http.Request) { r.Header.Set("Expect", "100-continue") },
		"close":     func(r *http.Request) { r.Close = true },
		"https":     func(r *http.Request) { r.URL.Scheme = "https" },
		"unicode":   func(r *http.Request) { r.Host = "bücher.example" },
		"zone":      func(r *http.Request) { r.Host = "[fe80::1%eth0]:80" },
		"te":        func(r *http.Request) { r.TransferEncoding = []string{"chunked"} },
		"connect":   func(r *http.Request) { r.Method = http.MethodConnect },
		"trailer":   func(r *http.Request) { r.Trailer = http.Header{"X": nil} },
		"no scheme": func(r *http.Request) { r.URL.Scheme = "" },
	} {
		if h.Eligible(mk(mod)) {
			t.Errorf("%s: eligible", name)
		}
	}
}

func TestH1IdleConnectionsExpire(t *testing.T) {
	s := newScripted(t, func(_ int, _ string, w net.Conn) bool { io.WriteString(w, okResp); return true })
	var d net.Dialer
	h := NewH1(d.DialContext, 50*time.Millisecond, 4, 64<<10)
	if _, _, err := get(t, h, s.addr(), "/"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		p := h.pool(s.addr())
		p.mu.Lock()
		n := len(p.idle)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle connection not swept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := get(t, h, s.addr(), "/"); err != nil || s.conns.Load() != 2 {
		t.Fatalf("after the sweep: %v, %d connections", err, s.conns.Load())
	}
	h.CloseIdleConnections()
}

// BenchmarkH1 is one keep-alive GET through H1 against a minimal raw upstream (the upstream's
// work is included, so read the allocations more than the time); BenchmarkH1Transport is the
// same through http.Transport.
func BenchmarkH1(b *testing.B) {
	benchRoundTripper(b, func(d *Dialer) http.RoundTripper {
		return NewTransports(d, TransportOptions{}).For("")
	})
}

func BenchmarkH1Transport(b *testing.B) {
	benchRoundTripper(b, func(d *Dialer) http.RoundTripper {
		return NewTransports(d, TransportOptions{DisableLean: true}).For("")
	})
}

func benchRoundTripper(b *testing.B, mk func(*Dialer) http.RoundTripper) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := io.WriteString(c, okResp); err != nil {
						return
					}
				}
			}()
		}
	}()
	rt := mk(NewDialer(Guard{AllowLoopback: true}, time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/bench", nil)
	req.Host = "app.example"
	req.Header.Set("User-Agent", "")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req = req.WithContext(ctx)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}

// A request cancelled while its connection is being dialed fails with the context's error, not
// a DialError (which would eject a healthy endpoint).
func TestH1CancelledDialIsNotADialError(t *testing.T) {
	d := NewDialer(Guard{AllowLoopback: true}, time.Second)
	h := NewH1(func(ctx context.Context, network, addr string) (net.Conn, error) {
		<-ctx.Done()
		return d.DialContext(ctx, network, addr)
	}, time.Minute, 4, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9/", nil)
	_, err := h.RoundTrip(req)
	var de *DialError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &de) {
		t.Fatalf("cancelled dial: %v", err)
	}
}
