package accesslog

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
)

// gate is a writer whose writes wait until it is opened.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	mu      sync.Mutex
	buf     strings.Builder
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func exchange(path string) *proxy.Exchange {
	r := httptest.NewRequest(http.MethodGet, "http://app.example"+path, nil)
	return &proxy.Exchange{Start: time.Now(), Method: "GET", Host: "app.example", Path: path, Proto: "HTTP/1.1",
		Status: 200, Request: r}
}

func closeLogger(t *testing.T, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// A stalled sink never blocks Observe: the queue fills, further lines are dropped and counted,
// and what was queued is written once the sink moves again.
func TestSlowSinkDropsAndCounts(t *testing.T) {
	g := newGate()
	l := New(Options{Writer: g, Buffer: 4})
	l.Observe(exchange("/first"))
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first line was never written")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 7 { // 4 fill the queue, 3 are dropped
			l.Observe(exchange("/n" + string(rune('0'+i))))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Observe blocked on a stalled sink")
	}
	if d := l.Dropped(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
	close(g.open)
	closeLogger(t, l)
	if n := strings.Count(g.String(), "\n"); n != 5 {
		t.Errorf("%d lines written, want 5:\n%s", n, g.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteFailuresAreCounted(t *testing.T) {
	l := New(Options{Writer: failingWriter{}})
	for range 3 {
		l.Observe(exchange("/x"))
	}
	closeLogger(t, l)
	if n := l.WriteFailures(); n != 3 {
		t.Errorf("write failures %d, want 3", n)
	}
}

func TestSwitchesAndSilencedRoutes(t *testing.T) {
	g := newGate()
	close(g.open)
	l := New(Options{Writer: g, Disabled: true})
	l.Observe(exchange("/off"))
	l.Rejected(&requestcheck.Rejection{Status: 400, Detail: "x"}, nil)
	l.SetEnabled(true)
	quiet := exchange("/healthz")
	quiet.Rule = &routing.Rule{Route: &routing.Route{Name: "health", Policy: routing.Policy{AccessLog: false}}}
	l.Observe(quiet)
	l.Rejected(&requestcheck.Rejection{Status: 400, Detail: "bad chunk", InBody: true}, nil) // its exchange is logged
	l.SetFormat(Text)
	l.Observe(exchange("/on"))
	closeLogger(t, l)
	out := g.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"GET /on HTTP/1.1" 200`) {
		t.Errorf("want only the text line of /on, got:\n%s", out)
	}
}

// Observe copies into the queue: no allocation per request, enabled or not.
func TestObserveDoesNotAllocate(t *testing.T) {
	l := New(Options{Writer: failingWriter{}, Buffer: 1 << 16})
	defer closeLogger(t, l)
	ex := exchange("/x")
	ex.Request.Header.Set("User-Agent", "bench")
	ex.Request.Header.Set("X-Forwarded-For", "192.0.2.1")
	if n := testing.AllocsPerRun(1000, func() { l.Observe(ex) }); n != 0 {
		t.Errorf("Observe allocates %v times per call", n)
	}
	l.SetEnabled(false)
	if n := testing.AllocsPerRun(1000, func() { l.Observe(ex) }); n != 0 {
		t.Errorf("disabled Observe allocates %v times per call", n)
	}
}
