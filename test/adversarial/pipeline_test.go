package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/requestcheck/checktest"
)

// Replays per vector in the short tier: the representative ones below 1,000 times, the others
// fewer; PORTICO_ADVERSARIAL_LONG=1 replays every vector 1,000 times.
var fullReplay = map[string]bool{
	"CL and TE": true, "chunk size not hex": true, // refused: head and body framing
	"chunked with extension and trailer": true, // accepted
}

func replays(name string, forwarded bool) int {
	switch {
	case long() || fullReplay[name]:
		return 1000
	case forwarded:
		return 30
	}
	return 3
}

func canary(id string) string {
	return "GET /canary HTTP/1.1\r\nHost: app.example\r\nX-Test-Id: " + id + "\r\n\r\n"
}

// Every smuggling vector replayed pipelined behind and before a canary request: responses come
// back in order and each is attributed to its own request (the recorder echoes the X-Test-Id of
// the request it answered); a refused vector is answered by the proxy with its status, then the
// connection closes and the canary after it never reaches the upstream; an accepted vector reaches
// the upstream as exactly one request with one framing header.
func TestPipelinedReplay(t *testing.T) {
	rec := NewRecorder(t)
	h := start(t, dpt.Options{}, rec.URL(), appRoute, catchAll)
	var total, exchanges atomic.Int64
	begin := time.Now()
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for vi, v := range checktest.Vectors {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n := replays(v.Name, v.Forwarded)
			total.Add(int64(n))
			switch {
			case v.Forwarded && !strings.Contains(v.Raw, "HTTP/1.0"):
				exchanges.Add(replayKeepAlive(t, h.HTTP, vi, v, n))
			default:
				for k := range n {
					if !replayOnce(t, h.HTTP, fmt.Sprintf("v%d.%d", vi, k), v) {
						return
					}
					exchanges.Add(2)
				}
			}
		}()
	}
	wg.Wait()
	if bad := rec.Bad(); len(bad) > 0 {
		t.Errorf("upstream met %d ambiguously framed requests, first: %s", len(bad), bad[0])
	}
	for _, s := range rec.Seen() {
		if strings.HasSuffix(s.ID, ".after") {
			t.Errorf("the canary after a refused vector reached the upstream: %+v", s)
		}
	}
	t.Logf("%d vectors replayed %d times in all (%d responses checked) in %v", len(checktest.Vectors),
		total.Load(), exchanges.Load(), time.Since(begin).Round(time.Millisecond))
}

// replayOnce sends canary, vector, canary on one connection. The first canary must come back
// with its id; then the vector's answer (refusal: its status and a close, the second canary
// unanswered; HTTP/1.0 acceptance: one upstream answer without an id, then a close).
func replayOnce(t *testing.T, addr, id string, v checktest.Vector) bool {
	c := dialRaw(t, addr, 10*time.Second)
	defer c.Close()
	go func() { _, _ = io.WriteString(c, canary(id+".before")+v.Raw+canary(id+".after")) }()
	br := bufio.NewReader(c)
	resp, body, err := readResp(br)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Test-Id") != id+".before" ||
		!strings.HasPrefix(body, id+".before GET /canary") {
		t.Errorf("%s %s: first canary answered %v %v %q", v.Name, id, err, resp, body)
		return false
	}
	resp, body, err = readResp(br)
	if err != nil || resp.StatusCode != v.Status {
		t.Errorf("%s %s: vector answered %v %v %q, want %d", v.Name, id, err, resp, body, v.Status)
		return false
	}
	if v.Forwarded && (resp.Header.Get("X-Test-Id") != "" || !strings.HasPrefix(body, " ")) {
		t.Errorf("%s %s: vector's answer attributed to %q: %q", v.Name, id, resp.Header.Get("X-Test-Id"), body)
		return false
	}
	if !v.Forwarded && resp.Header.Get("X-Test-Id") != "" {
		t.Errorf("%s %s: refusal carries an upstream answer for %q", v.Name, id, resp.Header.Get("X-Test-Id"))
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if extra, err := br.ReadByte(); err == nil {
		t.Errorf("%s %s: bytes after the last expected answer: %q...", v.Name, id, extra)
		return false
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s %s: connection left open", v.Name, id)
		return false
	}
	return true
}

// replayKeepAlive pipelines (vector, canary) n times on one connection, writing while reading.
func replayKeepAlive(t *testing.T, addr string, vi int, v checktest.Vector, n int) int64 {
	c := dialRaw(t, addr, 60*time.Second)
	defer c.Close()
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		for k := range n {
			_, _ = io.WriteString(w, v.Raw)
			_, _ = io.WriteString(w, canary(fmt.Sprintf("k%d.%d", vi, k)))
		}
		_ = w.Flush()
	}()
	br := bufio.NewReaderSize(c, 64<<10)
	var checked int64
	for k := range n {
		resp, body, err := readResp(br)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Test-Id") != "" || !strings.HasPrefix(body, " ") {
			t.Errorf("%s #%d: vector answered %v %v %q", v.Name, k, err, resp, body)
			return checked
		}
		id := fmt.Sprintf("k%d.%d", vi, k)
		resp, body, err = readResp(br)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Test-Id") != id || !strings.HasPrefix(body, id+" GET /canary") {
			t.Errorf("%s #%d: canary %s answered %v %v %q", v.Name, k, id, err, resp, body)
			return checked
		}
		checked += 2
	}
	return checked
}

// A request that may be answered without its body being read (404: no route) whose chunked body
// is malformed: exactly one response (the 404, or the 400 when the refusal comes first), never a
// second one that a pipelining client would attribute to its next request.
func TestRefusedBodyAfterAnswerAddsNoResponse(t *testing.T) {
	rec := NewRecorder(t)
	h := start(t, dpt.Options{}, rec.URL(), appRoute)
	for _, lead := range []string{"", canary("lead")} {
		c := dialRaw(t, h.HTTP, 10*time.Second)
		go func() {
			_, _ = io.WriteString(c, lead+"POST / HTTP/1.1\r\nHost: other.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n0\r\n\r\n"+canary("after"))
		}()
		br := bufio.NewReader(c)
		if lead != "" {
			if resp, _, err := readResp(br); err != nil || resp.Header.Get("X-Test-Id") != "lead" {
				t.Fatalf("lead canary: %v %v", err, resp)
			}
		}
		resp, body, err := readResp(br)
		if err != nil || (resp.StatusCode != 404 && resp.StatusCode != 400) {
			t.Fatalf("lead=%v: %v %v %q, want 404 (or the 400 of the refusal)", lead != "", err, resp, body)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if b, err := br.Peek(1); err == nil {
			t.Errorf("lead=%v: a second response follows the %d: %q", lead != "", resp.StatusCode, b)
		}
		c.Close()
	}
	for _, s := range rec.Seen() {
		if s.ID == "after" {
			t.Error("the request after the malformed body reached the upstream")
		}
	}
}
