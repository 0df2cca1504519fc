package adversarial

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memoryWatch samples the test process's memory while an attack runs: the Go heap in use (what
// the proxy, and the attacking clients in the same process, hold) and the resident set. The proxy
// runs in this process, so its RSS is bounded when the process's is; the attackers' own
// connections count too, which makes the bound a loose one, never a flattering one.
type memoryWatch struct {
	baseHeap, baseRSS uint64
	mu                sync.Mutex
	peakHeap, peakRSS uint64
	stop, done        chan struct{}
}

// watchMemory takes the baseline (after a collection) and samples every 100 ms until finish.
func watchMemory(t testing.TB) *memoryWatch {
	t.Helper()
	runtime.GC()
	m := &memoryWatch{baseHeap: heapInuse(), baseRSS: residentSet(t), stop: make(chan struct{}), done: make(chan struct{})}
	m.peakHeap, m.peakRSS = m.baseHeap, m.baseRSS
	go func() {
		defer close(m.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			h, r := heapInuse(), residentSet(nil)
			m.mu.Lock()
			m.peakHeap, m.peakRSS = max(m.peakHeap, h), max(m.peakRSS, r)
			m.mu.Unlock()
		}
	}()
	return m
}

// memoryFigures of one attack, in MiB: baseline, peak while it ran, and after it (after a GC).
type memoryFigures struct {
	BaseHeap, PeakHeap, AfterHeap, BaseRSS, PeakRSS, AfterRSS float64
}

func (f memoryFigures) String() string {
	return fmt.Sprintf("Go heap in use %.1f → peak %.1f → %.1f MiB after; RSS %.1f → peak %.1f → %.1f MiB after",
		f.BaseHeap, f.PeakHeap, f.AfterHeap, f.BaseRSS, f.PeakRSS, f.AfterRSS)
}

// finish stops sampling, collects, and checks the bounds: the peak heap may grow by at most
// peakMiB over the baseline while the attack runs, and must come back to within 16 MiB of it.
func (m *memoryWatch) finish(t testing.TB, peakMiB float64) memoryFigures {
	t.Helper()
	close(m.stop)
	<-m.done
	// Two cycles empty sync.Pools (victim cache); FreeOSMemory also hands freed pages back, so
	// that "after" says what is still held.
	runtime.GC()
	debug.FreeOSMemory()
	const mib = 1 << 20
	f := memoryFigures{
		BaseHeap: float64(m.baseHeap) / mib, PeakHeap: float64(m.peakHeap) / mib, AfterHeap: float64(heapInuse()) / mib,
		BaseRSS: float64(m.baseRSS) / mib, PeakRSS: float64(m.peakRSS) / mib, AfterRSS: float64(residentSet(t)) / mib,
	}
	t.Logf("memory: %s (bounds: peak heap ≤ +%.0f MiB, back within 16 MiB)", f, peakMiB)
	if f.PeakHeap-f.BaseHeap > peakMiB {
		t.Errorf("heap grew by %.1f MiB during the attack, bound %.0f MiB", f.PeakHeap-f.BaseHeap, peakMiB)
	}
	if f.AfterHeap-f.BaseHeap > 16 {
		t.Errorf("heap %.1f MiB after the attack, %.1f before: not released", f.AfterHeap, f.BaseHeap)
	}
	// RSS may stay up after the attack (the runtime returns freed pages to the OS gradually), but
	// its peak cannot exceed the heap's by much: bound it by the heap bound plus the runtime's own
	// stacks and buffers (64 MiB); under -race, the detector's shadow memory (several times the
	// application's) comes on top, so the bound is 8 times that.
	rssBound := peakMiB + 64
	if raceEnabled {
		rssBound *= 8
	}
	if f.PeakRSS-f.BaseRSS > rssBound {
		t.Errorf("RSS grew by %.1f MiB during the attack, bound %.0f MiB", f.PeakRSS-f.BaseRSS, rssBound)
	}
	return f
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// residentSet is VmRSS of this process, in bytes (t may be nil inside the sampler).
func residentSet(t testing.TB) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		if t != nil {
			t.Fatalf("read RSS: %v", err)
		}
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	if t != nil {
		t.Fatal("no VmRSS in /proc/self/status")
	}
	return 0
}
