package server_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// The per-client-IP cap: the connection over it is closed on accept, and a slot frees up when a
// connection closes; the per-listener cap works the same way.
func TestConnectionCaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.Config
	}{
		{"per IP", server.Config{MaxConnsPerIP: 3}},
		{"per listener", server.Config{MaxConnsPerListener: 3, MaxConnsPerIP: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refused atomic.Int64
			tc.cfg.OnConnLimit = func(string, net.Addr) { refused.Add(1) }
			h := dpt.Start(t, dpt.Options{Server: tc.cfg})
			app := dpt.NewEcho(t, "app")
			h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
			h.Apply(t, dpt.Routes(t, appRoute), nil, proxy.Settings{})
			open := func() net.Conn {
				c, err := net.DialTimeout("tcp", h.HTTP, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			// closedSoon reports whether the proxy closes c within 1 s without an answer.
			closedSoon := func(c net.Conn) bool {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(make([]byte, 1))
				ne, ok := err.(net.Error)
				return err != nil && !(ok && ne.Timeout())
			}
			var held []net.Conn
			for range 3 {
				c := open()
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\n") // an unfinished head keeps it open
				held = append(held, c)
			}
			over := open()
			if !closedSoon(over) {
				t.Fatal("the connection over the cap was not closed")
			}
			over.Close()
			held[0].Close()
			eventually(t, 2*time.Second, "a freed slot", func() bool {
				c := open()
				defer c.Close()
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 12)
				n, _ := io.ReadFull(c, b)
				return n == 12 && string(b) == "HTTP/1.1 200"
			})
			for _, c := range held[1:] {
				c.Close()
			}
			if refused.Load() == 0 {
				t.Error("OnConnLimit not called")
			}
		})
	}
}
