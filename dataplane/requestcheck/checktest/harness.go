package checktest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Upstream is a backend that counts every byte it receives and every request it serves.
type Upstream struct {
	*httptest.Server
	bytes    atomic.Int64
	requests atomic.Int64
}

// NewUpstream starts a recording backend on 127.0.0.1. It answers 200 "ok" after reading the body.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.requests.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	u.Listener = &countingListener{Listener: u.Listener, n: &u.bytes}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// Bytes received so far.
func (u *Upstream) Bytes() int64 { return u.bytes.Load() }

// Requests served so far.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Result is what a raw exchange observed.
type Result struct {
	Status int
	Body   string
	// Closed is true when the server closed the connection after the response.
	Closed bool
}

// Send writes raw on a fresh connection to addr and reads one response, then checks whether the
// connection is closed. Everything is bounded by deadlines.
func Send(t testing.TB, addr, raw string) Result {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// Write concurrently: the server may answer and stop reading before a large request is sent.
	go func() { _, _ = io.WriteString(c, raw) }()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := Result{Status: resp.StatusCode, Body: string(body)}
	// A closed connection reads EOF (or a reset) promptly; an open one times out.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	var ne net.Error
	res.Closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return res
}
