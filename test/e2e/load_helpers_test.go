package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/net/websocket"
)

// load is a steady request loop against one proxy address, as real clients make it: one client
// keeping connections alive and one opening a new connection per request. It is bounded (stop, or
// maxRequests per client) and records every failure: a transport error or a status other than 200.
type load struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

const maxRequests = 200_000

func startLoad(addr, host, path string) *load {
	l := &load{stop: make(chan struct{})}
	for _, keepAlive := range []bool{true, false} {
		dialer := &net.Dialer{Timeout: 3 * time.Second}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort(addr, "80"))
			},
			DisableKeepAlives:   !keepAlive,
			MaxIdleConnsPerHost: 4,
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for i := 0; i < maxRequests; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(fmt.Sprintf("http://%s%s", host, path))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.fail(fmt.Sprintf("%s keep-alive=%v: %v", time.Now().Format("15:04:05.000"), keepAlive, err))
					continue
				}
				l.ok.Add(1)
				time.Sleep(5 * time.Millisecond) // a steady rate, not a flood: ~200 rps per client
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, msg)
}

// waitFor waits until n more requests have succeeded (the loop is really running across an event).
func (l *load) waitFor(n int64) {
	target := l.ok.Load() + n
	Eventually(func() int64 { return l.ok.Load() }).WithTimeout(timeout).WithPolling(poll).Should(BeNumerically(">=", target))
}

// finish stops the loop and returns the failures.
func (l *load) finish() []string {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures
}

// openWebSocket opens a WebSocket to the echo backend's /ws through the proxy's plain listener.
func openWebSocket(addr, host string) (*websocket.Conn, error) {
	cfg, err := websocket.NewConfig("ws://"+host+"/ws", "http://"+host)
	if err != nil {
		return nil, err
	}
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), 3*time.Second)
	if err != nil {
		return nil, err
	}
	ws, err := websocket.NewClient(cfg, raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return ws, nil
}

// echoOnce sends msg on the WebSocket and expects it back.
func echoOnce(ws *websocket.Conn, msg string) error {
	_ = ws.SetDeadline(time.Now().Add(10 * time.Second))
	if err := websocket.Message.Send(ws, msg); err != nil {
		return err
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("websocket echoed %q, sent %q", got, msg)
	}
	return nil
}
