package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// long reports whether the long-tier sizes were asked for.
func long() bool { return os.Getenv("PORTICO_ADVERSARIAL_LONG") != "" }

// Seen is one request as the recorder parsed it from the raw bytes.
type Seen struct {
	Method, Target string
	ID             string // X-Test-Id, if any
	CL, TE         int    // Content-Length and Transfer-Encoding field lines
	Body           string
}

// Recorder is an HTTP/1.1 upstream written against the raw bytes: it counts connections and
// framing field lines exactly as sent (net/http would merge or drop them), records every request
// and answers each with "<id> <method> <target> <len(body)>" and an X-Test-Id header.
type Recorder struct {
	Addr  string
	ln    net.Listener
	conns atomic.Int64
	bytes atomic.Int64

	mu   sync.Mutex
	seen []Seen
	bad  []string // framing the recorder refused
	wg   sync.WaitGroup
}

// NewRecorder starts a recorder on 127.0.0.1.
func NewRecorder(t testing.TB) *Recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Addr: ln.Addr().String(), ln: ln}
	go r.accept()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

// URL is the recorder's base URL.
func (r *Recorder) URL() string { return "http://" + r.Addr }

// Conns, Bytes and Requests so far.
func (r *Recorder) Conns() int64 { return r.conns.Load() }
func (r *Recorder) Bytes() int64 { return r.bytes.Load() }

// Seen returns a copy of the requests so far.
func (r *Recorder) Seen() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Seen(nil), r.seen...)
}

// Bad returns the framing errors the recorder met.
func (r *Recorder) Bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *Recorder) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.conns.Add(1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			r.serve(c)
		}()
	}
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (r *Recorder) fail(format string, args ...any) {
	r.mu.Lock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *Recorder) serve(c net.Conn) {
	br := bufio.NewReader(countReader{c, &r.bytes})
	tp := textproto.NewReader(br)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		parts := strings.SplitN(line, " ", 3)
		if len(parts) != 3 {
			r.fail("request line %q", line)
			return
		}
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			r.fail("head: %v", err)
			return
		}
		s := Seen{Method: parts[0], Target: parts[1], ID: hdr.Get("X-Test-Id"),
			CL: len(hdr["Content-Length"]), TE: len(hdr["Transfer-Encoding"])}
		if s.CL+s.TE > 1 {
			r.fail("%s %s: %d Content-Length and %d Transfer-Encoding lines", s.Method, s.Target, s.CL, s.TE)
			return
		}
		var body []byte
		switch {
		case s.TE == 1:
			if !strings.EqualFold(hdr.Get("Transfer-Encoding"), "chunked") {
				r.fail("Transfer-Encoding %q", hdr.Get("Transfer-Encoding"))
				return
			}
			if body, err = io.ReadAll(httputil.NewChunkedReader(br)); err != nil {
				r.fail("chunked body: %v", err)
				return
			}
			if _, err := tp.ReadMIMEHeader(); err != nil { // trailer section
				r.fail("trailer: %v", err)
				return
			}
		case s.CL == 1:
			n, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
			if err != nil || n < 0 || n > 8<<20 {
				r.fail("Content-Length %q", hdr.Get("Content-Length"))
				return
			}
			body = make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
		}
		s.Body = string(body)
		r.mu.Lock()
		r.seen = append(r.seen, s)
		r.mu.Unlock()
		msg := fmt.Sprintf("%s %s %s %d", s.ID, s.Method, s.Target, len(body))
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Test-Id: %s\r\nContent-Length: %d\r\n\r\n%s", s.ID, len(msg), msg); err != nil {
			return
		}
	}
}

// start runs a data plane whose backend "app" (port 80, namespace team) is at backendURL, with
// the routes given as TenantRoute YAML.
func start(t testing.TB, o dpt.Options, backendURL string, routes ...string) *dpt.Harness {
	t.Helper()
	h := dpt.Start(t, o)
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, backendURL)}})
	h.Apply(t, dpt.Routes(t, routes...), nil, proxy.Settings{})
	return h
}

const appRoute = `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`

// catchAll serves every other Host (the smuggling vectors use app.example and a few others).
const catchAll = `
metadata: {name: any}
spec:
  rules: [{backendRefs: [{name: app, port: 80}]}]
`

// dialRaw opens a TCP connection with an overall deadline.
func dialRaw(t testing.TB, addr string, d time.Duration) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(d))
	return c
}

// readResp reads one response and its body.
func readResp(br *bufio.Reader) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// waitGoroutines polls until the goroutine count is at most limit, or the deadline passes; it
// returns the last count seen.
func waitGoroutines(limit int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// traffic sends GETs to app.example on the HTTP listener at about rps until stop is closed, and
// returns the number of requests sent and the failures (non-200 or transport errors).
type traffic struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	firstErr     string
	done         chan struct{}
}

func startTraffic(t testing.TB, do func() error, rps int, stop <-chan struct{}) *traffic {
	tr := &traffic{done: make(chan struct{})}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	go func() {
		defer close(tr.done)
		defer tick.Stop()
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr.sent.Add(1)
				if err := do(); err != nil {
					tr.failed.Add(1)
					tr.mu.Lock()
					if tr.firstErr == "" {
						tr.firstErr = err.Error()
					}
					tr.mu.Unlock()
				}
			}()
		}
	}()
	return tr
}

func (tr *traffic) wait() { <-tr.done }

// httpGetter returns a do func for startTraffic: GET url with Host host, expecting 200.
func httpGetter(c *http.Client, url, host string) func() error {
	return func() error {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}
