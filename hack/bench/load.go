package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one proxy under test.
type target struct {
	name      string
	pid       int
	httpAddr  string
	httpsAddr string
	only      map[string]bool // scenarios it serves; nil: all
}

// outcome is what a load generator reports of one run.
type outcome struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	p50, p99 time.Duration
}

// loadgen drives one scenario against a target for d.
type loadgen interface {
	name(scenario string) string
	run(ctx context.Context, scenario string, t target, d time.Duration) (outcome, error)
}

// benchRoots trusts the harness's self-signed certificate (the Go client verifies it).
var benchRoots = x509.NewCertPool()

func newClientTransport(h2 bool) *http.Transport {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
		TLSClientConfig:     &tls.Config{ServerName: benchHost, RootCAs: benchRoots},
		Protocols:           new(http.Protocols),
	}
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return tr
}

// pickLoadgen chooses wrk (HTTP/1.1 and TLS) and h2load (h2) when installed, the Go client
// otherwise. The same generator drives both proxies in a scenario.
func pickLoadgen(c config, tmp string) loadgen {
	g := &mixed{goGen: &goLoad{c: c}}
	if c.loadgen == "go" {
		return g
	}
	if _, err := exec.LookPath("wrk"); err == nil {
		g.wrk = &wrkLoad{c: c, tmp: tmp}
	} else if c.loadgen == "wrk" {
		fatalf("wrk is not installed (make bench-deps)")
	}
	if _, err := exec.LookPath("h2load"); err == nil {
		g.h2load = &h2Load{c: c, tmp: tmp}
	}
	return g
}

type mixed struct {
	wrk    *wrkLoad
	h2load *h2Load
	goGen  *goLoad
}

func (m *mixed) pick(scenario string) loadgen {
	switch {
	case scenario == "h2" && m.h2load != nil:
		return m.h2load
	case scenario != "h2" && m.wrk != nil:
		return m.wrk
	}
	return m.goGen
}

func (m *mixed) name(s string) string { return m.pick(s).name(s) }
func (m *mixed) run(ctx context.Context, s string, t target, d time.Duration) (outcome, error) {
	return m.pick(s).run(ctx, s, t, d)
}

// wrk: one thread, c.conns keep-alive connections. The Lua script connects to 127.0.0.1 while
// the URL (so Host and SNI) names benchHost, and prints the results in one line.
type wrkLoad struct {
	c   config
	tmp string
}

func (w *wrkLoad) name(string) string {
	return fmt.Sprintf("wrk -t1 -c%d", w.c.conns)
}

const wrkScript = `
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %.0f %.0f %.0f %.0f %.0f\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
`

func (w *wrkLoad) run(ctx context.Context, scenario string, t target, d time.Duration) (outcome, error) {
	script := filepath.Join(w.tmp, "wrk.lua")
	if _, err := os.Stat(script); err != nil {
		check(os.WriteFile(script, []byte(wrkScript), 0o644))
	}
	url := "http://" + benchHost + ":" + portOf(t.httpAddr) + "/"
	if scenario == "tls" {
		url = "https://" + benchHost + ":" + portOf(t.httpsAddr) + "/"
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(w.c.conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "5s", "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return outcome{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "BENCH" {
			n := make([]int64, 5)
			for i := range n {
				n[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
			return outcome{requests: n[0], elapsed: time.Duration(n[1]) * time.Microsecond, errors: n[2],
				p50: time.Duration(n[3]) * time.Microsecond, p99: time.Duration(n[4]) * time.Microsecond}, nil
		}
	}
	return outcome{}, fmt.Errorf("wrk printed no result: %s", out)
}

// h2load: one thread, c.h2Conns connections with c.h2Streams concurrent streams each; latency
// percentiles come from its per-request log.
type h2Load struct {
	c   config
	tmp string
}

func (h *h2Load) name(string) string {
	return fmt.Sprintf("h2load -t1 -c%d -m%d", h.c.h2Conns, h.c.h2Streams)
}

var (
	h2Finished = regexp.MustCompile(`finished in ([0-9.]+)(ms|s),`)
	h2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status   = regexp.MustCompile(`status codes: (\d+) 2xx`)
)

func (h *h2Load) run(ctx context.Context, _ string, t target, d time.Duration) (outcome, error) {
	log := filepath.Join(h.tmp, "h2load.log")
	_ = os.Remove(log)
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	port := portOf(t.httpsAddr)
	cmd := exec.CommandContext(ctx, "h2load", "-t1", "-c"+strconv.Itoa(h.c.h2Conns), "-m"+strconv.Itoa(h.c.h2Streams),
		"-D", strconv.Itoa(secs), "-T", "5", "--connect-to=127.0.0.1:"+port, "--log-file="+log,
		"https://"+benchHost+":"+port+"/")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(h.tmp, "h2load.out"), out, 0o644)
	if err != nil {
		return outcome{}, fmt.Errorf("h2load: %v: %s", err, out)
	}
	var o outcome
	m := h2Finished.FindSubmatch(out)
	r := h2Requests.FindSubmatch(out)
	s := h2Status.FindSubmatch(out)
	if m == nil || r == nil || s == nil {
		return outcome{}, fmt.Errorf("cannot read h2load output: %s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	if string(m[2]) == "ms" {
		v /= 1000
	}
	o.elapsed = time.Duration(v * float64(time.Second))
	done, _ := strconv.ParseInt(string(r[3]), 10, 64)
	succeeded, _ := strconv.ParseInt(string(r[4]), 10, 64)
	ok2xx, _ := strconv.ParseInt(string(s[1]), 10, 64)
	o.requests, o.errors = done, max(succeeded-ok2xx, 0)
	for _, i := range []int{5, 6, 7} {
		n, _ := strconv.ParseInt(string(r[i]), 10, 64)
		o.errors += n
	}
	lat, err := readH2Log(log)
	if err != nil {
		return outcome{}, err
	}
	o.p50, o.p99 = percentile(lat, 50), percentile(lat, 99)
	_ = os.Remove(log)
	return o, nil
}

// readH2Log reads the third column (µs until the end of the response) of h2load's log.
func readH2Log(path string) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := bytes.Fields(sc.Bytes())
		if len(fs) < 3 {
			continue
		}
		us, err := strconv.ParseInt(string(fs[2]), 10, 64)
		if err == nil {
			out = append(out, time.Duration(us)*time.Microsecond)
		}
	}
	return out, sc.Err()
}

// goLoad is the fallback generator: keep-alive connections (one Transport each), or h2
// connections with several concurrent streams; bounded by time and by c.maxRequests.
type goLoad struct{ c config }

func (g *goLoad) name(s string) string {
	if s == "h2" {
		return fmt.Sprintf("Go client, %d h2 connections x %d streams", g.c.h2Conns, g.c.h2Streams)
	}
	return fmt.Sprintf("Go client, %d keep-alive connections", g.c.conns)
}

func (g *goLoad) run(ctx context.Context, scenario string, t target, d time.Duration) (outcome, error) {
	addr, scheme := t.httpAddr, "http"
	if scenario != "h1" {
		addr, scheme = t.httpsAddr, "https"
	}
	url := scheme + "://" + benchHost + ":" + portOf(addr) + "/"
	conns, perConn := g.c.conns, 1
	if scenario == "h2" {
		conns, perConn = g.c.h2Conns, g.c.h2Streams
	}
	workers := conns * perConn
	perWorkerCap := int(g.c.maxRequests/int64(workers)) + 1
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		issued   atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
		lats     = make([][]time.Duration, workers)
	)
	start := time.Now()
	for ci := range conns {
		tr := newClientTransport(scenario == "h2")
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for si := range perConn {
			w := ci*perConn + si
			lats[w] = make([]time.Duration, 0, min(perWorkerCap, 1<<20))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && issued.Add(1) <= g.c.maxRequests {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						if ctx.Err() == nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, resp.Status)
					}
					lats[w] = append(lats[w], time.Since(t0))
				}
			}()
		}
	}
	wg.Wait()
	o := outcome{elapsed: time.Since(start), errors: errs.Load()}
	all := slices.Concat(lats...)
	o.requests = int64(len(all))
	o.p50, o.p99 = percentile(all, 50), percentile(all, 99)
	if o.requests == 0 {
		return o, fmt.Errorf("no request succeeded: %v", firstErr.Load())
	}
	return o, nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	check(err)
	return p
}

var errNoRequests = errors.New("the run completed no request")
