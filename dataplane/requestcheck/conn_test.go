package requestcheck_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/requestcheck/checktest"
)

// forwarder stands in for the proxy: it reads the whole body before contacting the upstream, as
// the proxy does for bodies of unknown length, so a refused chunk never reaches the upstream.
func forwarder(upstream string) http.Handler {
	client := &http.Client{Timeout: 5 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the connection answers a refused chunk itself
		}
		path := r.URL.Path
		if path == "" || path == "*" {
			path = "/"
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+path, bytes.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "upstream", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

type rejections struct{ n atomic.Int64 }

func (r *rejections) hook(*requestcheck.Rejection, net.Addr) { r.n.Add(1) }

func serve(t *testing.T, h http.Handler, opts requestcheck.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       requestcheck.ConnContext,
		ErrorLog:          nil,
	}
	if opts.AllowH2CPreface {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(requestcheck.NewListener(ln, opts)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func TestVectors(t *testing.T) {
	var refused, accepted int
	for _, v := range checktest.Vectors {
		if v.Forwarded {
			accepted++
		} else {
			refused++
		}
	}
	if refused < 30 {
		t.Fatalf("only %d refused vectors", refused)
	}
	for _, v := range checktest.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			up := checktest.NewUpstream(t)
			var rej rejections
			addr := serve(t, forwarder(up.URL), requestcheck.Options{OnReject: rej.hook})
			res := checktest.Send(t, addr, v.Raw)
			if res.Status != v.Status {
				t.Errorf("status = %d (%q), want %d", res.Status, res.Body, v.Status)
			}
			if v.Forwarded {
				if got := up.Requests(); got != 1 {
					t.Errorf("upstream saw %d requests, want 1", got)
				}
				if res.Closed && !strings.Contains(v.Raw, "HTTP/1.0") {
					t.Errorf("connection closed after an accepted request")
				}
				return
			}
			if !res.Closed {
				t.Errorf("connection left open after a refusal")
			}
			if got := up.Bytes(); got != 0 {
				t.Errorf("upstream received %d bytes of a refused request", got)
			}
			if !strings.Contains(res.Body, requestcheck.ReasonRejected) {
				t.Errorf("body %q does not name the reason", res.Body)
			}
			if rej.n.Load() != 1 {
				t.Errorf("OnReject called %d times, want 1", rej.n.Load())
			}
		})
	}
}

// readResponses reads n responses from one connection.
func readResponses(t *testing.T, c net.Conn, n int) ([]int, bool) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var codes []int
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(codes)+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := br.ReadByte()
	return codes, err == io.EOF
}

func TestPipelinedRefusalAfterGoodRequests(t *testing.T) {
	up := checktest.NewUpstream(t)
	addr := serve(t, forwarder(up.URL), requestcheck.Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"
	chunked := "POST /b HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	smuggle := "POST /c HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	fixed := "POST /d HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello"
	if _, err := io.WriteString(c, good+fixed+chunked+fixed+smuggle+good); err != nil {
		t.Fatal(err)
	}
	codes, closed := readResponses(t, c, 5)
	if want := []int{200, 200, 200, 200, 400}; !equalInts(codes, want) {
		t.Errorf("statuses = %v, want %v", codes, want)
	}
	if !closed {
		t.Error("connection not closed after the refusal")
	}
	if got := up.Requests(); got != 4 {
		t.Errorf("upstream saw %d requests, want 4", got)
	}
}

func TestKeepAliveRefusalAfterGoodRequest(t *testing.T) {
	up := checktest.NewUpstream(t)
	addr := serve(t, forwarder(up.URL), requestcheck.Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if codes, _ := readResponses(t, c, 1); codes[0] != 200 {
		t.Fatalf("first status %d", codes[0])
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\nX-A: 1\n\r\n")
	codes, closed := readResponses(t, c, 1)
	if codes[0] != 400 || !closed {
		t.Errorf("second: status %d, closed %v; want 400 and closed", codes[0], closed)
	}
	if got := up.Requests(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
}

// Bodies that arrive after their head (the direct-read path) keep the connection in sync.
func TestKeepAliveAcrossBodies(t *testing.T) {
	up := checktest.NewUpstream(t)
	addr := serve(t, forwarder(up.URL), requestcheck.Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, parts := range [][]string{
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", "01234", "56789"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r", "\n0\r\n", "\r\n"},
		{"GET / HTTP/1.1\r\n", "Host: a\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"},
	} {
		for _, p := range parts {
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if got := up.Requests(); got != 4 {
		t.Errorf("upstream saw %d requests, want 4", got)
	}
}

// A refusal found while a previous request is still being handled must not cancel it: net/http's
// background read is held rather than answered.
func TestPipelinedRefusalDoesNotCancelRequestInFlight(t *testing.T) {
	var canceled atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			canceled.Store(true)
		case <-time.After(300 * time.Millisecond):
		}
		_, _ = io.WriteString(w, "done")
	})
	addr := serve(t, h, requestcheck.Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	codes, closed := readResponses(t, c, 2)
	if !equalInts(codes, []int{200, 400}) || !closed {
		t.Errorf("statuses %v closed %v; want [200 400] and closed", codes, closed)
	}
	if canceled.Load() {
		t.Error("the request in flight was canceled by the refusal of the next one")
	}
}

// A bad chunk after a 100 Continue still gets a clean 400.
func TestExpectContinueThenBadChunk(t *testing.T) {
	up := checktest.NewUpstream(t)
	addr := serve(t, forwarder(up.URL), requestcheck.Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("want 100 Continue, got %v %v", resp, err)
	}
	_, _ = io.WriteString(c, "3\r\nabc\r\nZZ\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("want 400, got %v %v", resp, err)
	}
	if up.Bytes() != 0 {
		t.Errorf("upstream received %d bytes", up.Bytes())
	}
}

func TestH2CPrefacePassesWhenAllowed(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	addr := serve(t, h, requestcheck.Options{AllowH2CPreface: true})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("proto = %q, want HTTP/2.0", body)
	}
	// HTTP/1.1 still works on the same listener.
	if res := checktest.Send(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); res.Status != 200 || res.Body != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 on h2c listener: %+v", res)
	}
}

func TestH2CPrefaceRefusedByDefault(t *testing.T) {
	addr := serve(t, http.NotFoundHandler(), requestcheck.Options{})
	res := checktest.Send(t, addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if res.Status != 505 || !res.Closed {
		t.Errorf("got %+v, want 505 and closed", res)
	}
}

func TestTLSConnKeepsConnectionState(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	wrapped := requestcheck.NewConn(tls.Server(server, &tls.Config{}), requestcheck.Options{})
	if _, ok := wrapped.(interface{ ConnectionState() tls.ConnectionState }); !ok {
		t.Error("TLS connection lost ConnectionState")
	}
	plain := requestcheck.NewConn(server, requestcheck.Options{})
	if _, ok := plain.(interface{ ConnectionState() tls.ConnectionState }); ok {
		t.Error("plain connection claims a ConnectionState")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
