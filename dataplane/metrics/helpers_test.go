package metrics_test

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

// These helpers play the part of client_golang's testutil (ToFloat64, CollectAndCompare,
// CollectAndLint) on a registry; testutil itself needs a go.sum entry this module lacks.

// value returns the value of one series: a counter's or gauge's value, a histogram's count.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, err := find(g, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func find(g prometheus.Gatherer, name string, labels ...string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), nil
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), nil
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), nil
			}
		}
	}
	return 0, fmt.Errorf("no series %s%v", name, labels)
}

// exposition renders the named families as Prometheus text, series sorted (CollectAndCompare's view).
func exposition(t *testing.T, g prometheus.Gatherer, names ...string) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// lint runs promlint (what testutil.CollectAndLint runs) over everything gathered.
func lint(t *testing.T, g prometheus.Gatherer) []promlint.Problem {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

// eventually retries check until it passes or 5 s have gone by.
func eventually(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a Registerer that remembers what was registered, so a test can list every metric
// name a collector describes (including vectors without series yet).
type recorder struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var (
	fqName    = regexp.MustCompile(`fqName: "([^"]+)"`)
	varLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// series maps every described metric name to its label names; a histogram's _bucket (with "le"),
// _sum and _count series are listed for each histogram named.
func (r *recorder) series(histograms ...string) map[string][]string {
	out := map[string][]string{}
	for _, c := range r.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			s := d.String()
			m := fqName.FindStringSubmatch(s)
			if m == nil {
				continue
			}
			var labels []string
			if l := varLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
				labels = strings.Split(l[1], ",")
			}
			out[m[1]] = labels
		}
	}
	for _, h := range histograms {
		if l, ok := out[h]; ok {
			out[h+"_bucket"] = append(slices.Clone(l), "le")
			out[h+"_sum"], out[h+"_count"] = l, l
		}
	}
	return out
}

// names lists the described metric names.
func (r *recorder) names() []string {
	var out []string
	for n := range r.series() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
