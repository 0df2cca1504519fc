package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/requestcheck"
)

// leanOnly serves h with the lean loop behind requestcheck on 127.0.0.1 (lean false: net/http
// alone, for comparison).
func leanOnly(t *testing.T, h http.Handler, lean bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 3 * time.Second, IdleTimeout: 5 * time.Second}
	var l net.Listener = requestcheck.NewListener(ln, requestcheck.Options{})
	if lean {
		l = newLeanServer("http", l, srv)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// One client-gone watcher at a time: a late timer callback of request N must not start a second
// watcher once N+1 is armed (two reads raced inside requestcheck and the first byte of the next
// pipelined head was lost: "GET /c" served as "ET /c"). Found by review; failed 27 of 30 runs at
// GOMAXPROCS=1 before the fix.
func TestLeanOneWatcherAtATime(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a":
			time.Sleep(watchAfter)
		case "/b":
			time.Sleep(3 * watchAfter)
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+"\n")
	})
	addr := leanOnly(t, h, true)
	for i := 0; i < 10; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(250 * time.Millisecond) // /b is running and watched when /c arrives
		_, _ = io.WriteString(c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		var got []string
		for j := 0; j < 3; j++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				got = append(got, "error: "+err.Error())
				break
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = append(got, strings.TrimSpace(string(b)))
		}
		c.Close()
		if strings.Join(got, ",") != "GET /a,GET /b,GET /c" {
			t.Fatalf("run %d: responses %q, want GET /a, GET /b, GET /c", i, got)
		}
	}
}

// A handler that panics after WriteHeader (the proxy does, with http.ErrAbortHandler, when an
// upstream body breaks after its head) sends nothing, as with net/http: no head of a response
// that will never be complete, so the client sees a closed connection it may retry.
func TestLeanPanicAfterHeaderSendsNothing(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})
	for _, lean := range []bool{false, true} {
		c, err := net.Dial("tcp", leanOnly(t, h, lean))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		out, _ := io.ReadAll(c)
		c.Close()
		if len(out) != 0 {
			t.Errorf("lean=%v: %q on the wire, want nothing", lean, out)
		}
	}
}
