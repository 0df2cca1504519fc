package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The churn soak of issue 13's long tier: routes change at a steady rate while traffic flows, and
// every operator replica and proxy is sampled (RSS and goroutines) every soakSampleEvery.

const soakSampleEvery = 30 * time.Second

// soakDuration is the length of the churn soak: PORTICO_SOAK_CHURN (a Go duration) when set, else
// 30 minutes in the long tier and none (skipped) in the short one.
func soakDuration(long bool) time.Duration {
	if v := os.Getenv("PORTICO_SOAK_CHURN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(fmt.Sprintf("PORTICO_SOAK_CHURN=%q: %v", v, err))
		}
		return d
	}
	if long {
		return 30 * time.Minute
	}
	return 0
}

// soakProcess is one sampled process: an operator replica (RSS from /proc/PID/status, goroutines
// from its metrics endpoint) or a proxy (both from its admin port's /metrics).
type soakProcess struct {
	name       string
	pid        int    // 0: RSS from metricsURL
	metricsURL string // Prometheus text format with go_goroutines and process_resident_memory_bytes
}

type soakSample struct {
	at         time.Duration
	rss        int64 // bytes
	goroutines int64
}

// sample reads the process's RSS and goroutine count.
func (p soakProcess) sample() (rss, goroutines int64, err error) {
	metrics, err := scrape(p.metricsURL)
	if err != nil {
		return 0, 0, err
	}
	g, ok := metrics["go_goroutines"]
	if !ok {
		return 0, 0, fmt.Errorf("%s: no go_goroutines", p.metricsURL)
	}
	if p.pid == 0 {
		r, ok := metrics["process_resident_memory_bytes"]
		if !ok {
			return 0, 0, fmt.Errorf("%s: no process_resident_memory_bytes", p.metricsURL)
		}
		return int64(r), int64(g), nil
	}
	rss, err = vmRSS(p.pid)
	return rss, int64(g), err
}

// vmRSS is VmRSS of /proc/PID/status in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// scrape reads the unlabelled samples of a Prometheus text endpoint.
func scrape(url string) (map[string]float64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// median3 is the median of the samples i-1, i, i+1 (those that exist): one sample taken while a
// burst of connections or a snapshot build is in flight does not decide the comparison.
func median3(s []soakSample, i int, field func(soakSample) int64) int64 {
	var vs []int64
	for j := max(i-1, 0); j <= min(i+1, len(s)-1); j++ {
		vs = append(vs, field(s[j]))
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// slopePer10Min is the least-squares slope of field over the samples from index from on, per 10 minutes.
func slopePer10Min(s []soakSample, from int, field func(soakSample) int64) float64 {
	var n, sx, sy, sxx, sxy float64
	for _, x := range s[from:] {
		t, v := x.at.Minutes()/10, float64(field(x))
		n++
		sx += t
		sy += v
		sxx += t * t
		sxy += t * v
	}
	if n < 2 || n*sxx-sx*sx == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// soakVerdict compares each process's end (median of its last three samples) with its reference
// (median of the three around refAt): RSS within +10 %, goroutines within +max(10, 5 %).
func soakVerdict(procs []soakProcess, samples map[string][]soakSample, refAt time.Duration) (failures []string) {
	GinkgoHelper()
	for _, p := range procs {
		s := samples[p.name]
		Expect(len(s)).To(BeNumerically(">=", 3), "%s: too few samples", p.name)
		ref := 0 // the sample nearest to refAt
		for i := range s {
			if (s[i].at - refAt).Abs() < (s[ref].at - refAt).Abs() {
				ref = i
			}
		}
		last := len(s) - 1
		rss := func(x soakSample) int64 { return x.rss }
		gor := func(x soakSample) int64 { return x.goroutines }
		rssRef, rssEnd := median3(s, ref, rss), median3(s, last, rss)
		gRef, gEnd := median3(s, ref, gor), median3(s, last, gor)
		gSlack := max(10, gRef/20)
		figure("soak "+p.name, "RSS %s at %v → %s at %v (%+.1f %%; bar ≤ +10 %%), trend %+.1f MiB/10 min; goroutines %d → %d (bar ≤ %d), trend %+.1f/10 min; RSS min %s max %s, goroutines min %d max %d over %d samples",
			mib(rssRef), s[ref].at.Round(time.Second), mib(rssEnd), s[last].at.Round(time.Second), 100*(float64(rssEnd)/float64(rssRef)-1),
			slopePer10Min(s, ref, rss)/(1<<20), gRef, gEnd, gRef+gSlack, slopePer10Min(s, ref, gor),
			mib(slices.MinFunc(s, func(a, b soakSample) int { return int(a.rss - b.rss) }).rss),
			mib(slices.MaxFunc(s, func(a, b soakSample) int { return int(a.rss - b.rss) }).rss),
			slices.MinFunc(s, func(a, b soakSample) int { return int(a.goroutines - b.goroutines) }).goroutines,
			slices.MaxFunc(s, func(a, b soakSample) int { return int(a.goroutines - b.goroutines) }).goroutines, len(s))
		if float64(rssEnd) > 1.10*float64(rssRef) {
			failures = append(failures, fmt.Sprintf("%s: RSS %s at the end > +10 %% of %s at %v", p.name, mib(rssEnd), mib(rssRef), s[ref].at.Round(time.Second)))
		}
		if gEnd > gRef+gSlack {
			failures = append(failures, fmt.Sprintf("%s: %d goroutines at the end > %d at %v + %d", p.name, gEnd, gRef, s[ref].at.Round(time.Second), gSlack))
		}
	}
	return failures
}
