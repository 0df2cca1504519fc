package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
)

const smallRoute = `
metadata: {name: small}
spec:
  hostnames: [small.example]
  policy: {maxRequestBodySize: "1024"}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`

// Header block, field count, URI length, declared and chunked bodies over the limit → 431, 431,
// 414, 413, 413; nothing of any of them reaches the upstream, which sees 0 connections.
func TestLimits(t *testing.T) {
	rec := NewRecorder(t)
	h := start(t, dpt.Options{}, rec.URL(), appRoute, smallRoute)

	chunked := func(host string, size int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "POST /up HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", host)
		for size > 0 {
			n := min(size, 16<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, strings.Repeat("c", n))
			size -= n
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"header block 65 KiB", "GET / HTTP/1.1\r\nHost: app.example\r\n" +
			strings.Repeat("X-Filler: "+strings.Repeat("v", 1000)+"\r\n", 66) + "\r\n", 431},
		{"one huge field", "GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("v", 70<<10) + "\r\n\r\n", 431},
		{"101 fields", "GET / HTTP/1.1\r\nHost: app.example\r\n" + strings.Repeat("X-A: 1\r\n", 100) + "\r\n", 431},
		{"URI 8 KiB + 1", "GET /" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: app.example\r\n\r\n", 414},
		{"URI 64 KiB", "GET /?q=" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: app.example\r\n\r\n", 414},
		{"declared body 1025 on a 1 KiB route", "POST /up HTTP/1.1\r\nHost: small.example\r\nContent-Length: 1025\r\n\r\n", 413},
		{"declared body 1 MiB + 1 (default cap)", "POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1048577\r\n\r\n", 413},
		// 18 digits is the longest Content-Length the checks parse; 19 and more are a 400.
		{"declared body 10^17", "POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100000000000000000\r\n\r\n", 413},
		{"chunked body 1025 on a 1 KiB route", chunked("small.example", 1025), 413},
		{"chunked body 1 MiB + 1 (default cap)", chunked("app.example", 1<<20+1), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, h.HTTP, 10*time.Second)
			defer c.Close()
			go func() { _, _ = io.WriteString(c, tc.raw) }()
			br := bufio.NewReader(c)
			resp, body, err := readResp(br)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			// The connection is not reused after a refusal.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := br.ReadByte(); err == nil {
				t.Error("more bytes after the refusal")
			} else if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Error("connection left open after the refusal")
			}
		})
	}
	if n := rec.Conns(); n != 0 {
		t.Errorf("upstream saw %d connections, want 0 (seen: %+v)", n, rec.Seen())
	}
	// The same routes still serve within the limits.
	c := dialRaw(t, h.HTTP, 10*time.Second)
	defer c.Close()
	fmt.Fprintf(c, "POST /ok HTTP/1.1\r\nHost: small.example\r\nX-Test-Id: ok\r\nContent-Length: 1024\r\n\r\n%s", strings.Repeat("b", 1024))
	resp, body, err := readResp(bufio.NewReader(c))
	if err != nil || resp.StatusCode != 200 || body != "ok POST /ok 1024" {
		t.Fatalf("request at the limit: %v %v %q", err, resp, body)
	}
}
