package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/net/websocket"
)

// clientKind is how a load client talks to the proxy.
type clientKind int

const (
	keepAliveHTTP1 clientKind = iota // HTTP/1.1, connections kept alive
	newConnHTTP1                     // HTTP/1.1, a new connection per request
	http2TLS                         // HTTP/2 over TLS (ALPN h2), streams multiplexed on kept connections
)

func (k clientKind) String() string {
	return [...]string{"keep-alive", "new-connection", "h2"}[k]
}

// load is a request loop against one proxy address, as real clients make it. It is bounded (stop,
// or maxRequests per client) and records every failure (a transport error or a status other than
// 200) and every latency.
type load struct {
	ok        atomic.Int64
	mu        sync.Mutex
	failures  []string
	latencies []time.Duration
	stop      chan struct{}
	wg        sync.WaitGroup
	started   time.Time
}

const maxRequests = 200_000

// startLoad is a steady loop (~200 requests/s per client): one keep-alive and one new-connection
// HTTP/1.1 client.
func startLoad(addr, host, path string) *load {
	return startLoadWith(addr, host, path, 5*time.Millisecond, keepAliveHTTP1, newConnHTTP1)
}

// startLoadWith runs one client per kind, each pausing pace between requests (0: as fast as it can).
func startLoadWith(addr, host, path string, pace time.Duration, kinds ...clientKind) *load {
	l := &load{stop: make(chan struct{}), started: time.Now()}
	for _, kind := range kinds {
		dialer := &net.Dialer{Timeout: 3 * time.Second}
		port := "80"
		if kind == http2TLS {
			port = "443"
		}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort(addr, port))
			},
			DisableKeepAlives:   kind == newConnHTTP1,
			MaxIdleConnsPerHost: 4,
		}
		scheme := "http"
		if kind == http2TLS {
			scheme = "https"
			tr.ForceAttemptHTTP2 = true
			tr.TLSClientConfig = &tls.Config{ServerName: host, InsecureSkipVerify: true} //nolint:gosec // load, not trust
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
				start := time.Now()
				resp, err := c.Get(fmt.Sprintf("%s://%s%s", scheme, host, path))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode != http.StatusOK:
						err = fmt.Errorf("status %d", resp.StatusCode)
					case kind == http2TLS && resp.ProtoMajor != 2:
						err = fmt.Errorf("protocol %s, want HTTP/2", resp.Proto)
					}
				}
				if err != nil {
					l.fail(fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), kind, err))
					continue
				}
				l.record(time.Since(start))
				if pace > 0 {
					time.Sleep(pace) // a steady rate, not a flood
				}
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

func (l *load) record(d time.Duration) {
	l.ok.Add(1)
	l.mu.Lock()
	l.latencies = append(l.latencies, d)
	l.mu.Unlock()
}

// waitFor waits until n more requests have succeeded (the loop is really running across an event).
func (l *load) waitFor(n int64) {
	target := l.ok.Load() + n
	Eventually(func() int64 { return l.ok.Load() }).WithTimeout(timeout).WithPolling(poll).Should(BeNumerically(">=", target))
}

// failed returns the failures so far.
func (l *load) failed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failures)
}

// finish stops the loop and returns the failures.
func (l *load) finish() []string {
	close(l.stop)
	l.wg.Wait()
	return l.failed()
}

// stats are the figures of a finished loop.
type loadStats struct {
	requests int
	rps      float64
	p50, p99 time.Duration
}

func (l *load) stats() loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := loadStats{requests: len(l.latencies), rps: float64(len(l.latencies)) / time.Since(l.started).Seconds()}
	if len(l.latencies) == 0 {
		return s
	}
	sorted := slices.Clone(l.latencies)
	slices.Sort(sorted)
	s.p50, s.p99 = sorted[len(sorted)/2], sorted[len(sorted)*99/100]
	return s
}

func (s loadStats) String() string {
	return fmt.Sprintf("%d requests, %.0f/s, p50 %v, p99 %v", s.requests, s.rps, s.p50.Round(10*time.Microsecond), s.p99.Round(10*time.Microsecond))
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
