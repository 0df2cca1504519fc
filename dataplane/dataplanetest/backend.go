package dataplanetest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// Echo is what an echo backend saw of a request.
type Echo struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	URI     string              `json:"uri"` // the request target as received
	Host    string              `json:"host"`
	Proto   string              `json:"proto"`
	Header  map[string][]string `json:"header"`
	Body    string              `json:"body"`
	Length  int64               `json:"contentLength"`
	TE      []string            `json:"transferEncoding"`
}

// Backend is a test upstream.
type Backend struct {
	*httptest.Server
	Name     string
	Requests atomic.Int64
}

// NewEcho starts a backend answering every request with its Echo as JSON, except:
// a path ending in /sleep?d=500ms waits (or until the client goes away) before answering; /ws is a WebSocket echo.
func NewEcho(t testing.TB, name string) *Backend {
	return newBackend(t, name, false)
}

// NewH2CEcho is NewEcho speaking prior-knowledge cleartext HTTP/2 (and HTTP/1.1).
func NewH2CEcho(t testing.TB, name string) *Backend {
	return newBackend(t, name, true)
}

func newBackend(t testing.TB, name string, h2c bool) *Backend {
	t.Helper()
	b := &Backend{Name: name}
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Server{Handler: func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.Requests.Add(1)
		if strings.HasSuffix(r.URL.Path, "/sleep") {
			d, _ := time.ParseDuration(r.URL.Query().Get("d"))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		e := Echo{Backend: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto,
			Header: r.Header, Body: string(body), Length: r.ContentLength, TE: r.TransferEncoding}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(e)
	})
	b.Server = httptest.NewUnstartedServer(mux)
	if h2c {
		b.Config.Protocols = new(http.Protocols)
		b.Config.Protocols.SetHTTP1(true)
		b.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// ClosedPort returns a loopback address nothing listens on (connections are refused).
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// DecodeEcho reads an Echo response body.
func DecodeEcho(t testing.TB, r io.Reader) Echo {
	t.Helper()
	var e Echo
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		t.Fatalf("decoding echo: %v", err)
	}
	return e
}
