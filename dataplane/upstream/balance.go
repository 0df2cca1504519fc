package upstream

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Policy is a load-balancing policy.
type Policy uint8

const (
	// RoundRobin follows the smooth weighted round-robin schedule.
	RoundRobin Policy = iota
	// LeastRequest picks the less loaded (in-flight requests / weight) of two random endpoints.
	LeastRequest
)

// Health is passive health checking: an endpoint that fails to connect is ejected for a back-off
// that doubles with each consecutive failure, up to Max; one success clears it. State is keyed by
// address, so it survives endpoint and route updates.
type Health struct {
	Base, Max time.Duration
	now       func() time.Time
	m         sync.Map // netip.AddrPort → *endpointState
}

type endpointState struct {
	inflight     atomic.Int64
	failures     atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds
}

// NewHealth returns a tracker with a 1 s base and 30 s maximum back-off.
func NewHealth() *Health {
	return &Health{Base: time.Second, Max: 30 * time.Second, now: time.Now}
}

func (h *Health) peek(a netip.AddrPort) *endpointState {
	if v, ok := h.m.Load(a); ok {
		return v.(*endpointState)
	}
	return nil
}

func (h *Health) get(a netip.AddrPort) *endpointState {
	if st := h.peek(a); st != nil {
		return st
	}
	v, _ := h.m.LoadOrStore(a, new(endpointState))
	return v.(*endpointState)
}

// ConnectFailed ejects a after a failed connection attempt.
func (h *Health) ConnectFailed(a netip.AddrPort) {
	st := h.get(a)
	n := st.failures.Add(1)
	backoff := h.Base << min(n-1, 16)
	if backoff > h.Max || backoff <= 0 {
		backoff = h.Max
	}
	st.ejectedUntil.Store(h.now().Add(backoff).UnixNano())
}

// Succeeded clears a's failures.
func (h *Health) Succeeded(a netip.AddrPort) {
	if st := h.peek(a); st != nil && st.failures.Load() != 0 {
		st.failures.Store(0)
		st.ejectedUntil.Store(0)
	}
}

// Ejected reports whether a is in its back-off period.
func (h *Health) Ejected(a netip.AddrPort) bool {
	st := h.peek(a)
	return st != nil && st.ejectedUntil.Load() > h.now().UnixNano()
}

// EjectedCount is the number of endpoints in their back-off period (for metrics; it walks every
// known endpoint).
func (h *Health) EjectedCount() int {
	now := h.now().UnixNano()
	n := 0
	h.m.Range(func(_, v any) bool {
		if v.(*endpointState).ejectedUntil.Load() > now {
			n++
		}
		return true
	})
	return n
}

// Acquire and Release count requests in flight to a (for LeastRequest).
func (h *Health) Acquire(a netip.AddrPort) { h.get(a).inflight.Add(1) }

// Release undoes Acquire.
func (h *Health) Release(a netip.AddrPort) { h.get(a).inflight.Add(-1) }

func (h *Health) inflight(a netip.AddrPort) int64 {
	if st := h.peek(a); st != nil {
		return st.inflight.Load()
	}
	return 0
}

// prune forgets addresses that no backend has any more.
func (h *Health) prune(live map[netip.AddrPort]struct{}) {
	h.m.Range(func(k, v any) bool {
		if _, ok := live[k.(netip.AddrPort)]; !ok && v.(*endpointState).inflight.Load() == 0 {
			h.m.Delete(k)
		}
		return true
	})
}

// Pick chooses an endpoint index that is neither ejected nor in tried. When every untried
// endpoint is ejected it picks one of them anyway: trying an endpoint that may have recovered
// beats refusing the request. ok is false when every endpoint was tried.
func (s *Set) Pick(h *Health, p Policy, tried []netip.AddrPort) (int, bool) {
	if p == LeastRequest && len(s.Endpoints) > 1 {
		if i, ok := s.pickLeast(h, tried); ok {
			return i, true
		}
	}
	n := len(s.schedule)
	start := int(s.cursor.Add(1) - 1)
	fallback := -1
	for k := range n {
		i := int(s.schedule[(start+k)%n])
		a := s.Endpoints[i].Addr
		if len(tried) > 0 && slices.Contains(tried, a) {
			continue
		}
		if h.Ejected(a) {
			if fallback < 0 {
				fallback = i
			}
			continue
		}
		return i, true
	}
	return fallback, fallback >= 0
}

// pickLeast is "power of two choices": two endpoints drawn by weight, the one with fewer requests
// in flight per unit of weight wins.
func (s *Set) pickLeast(h *Health, tried []netip.AddrPort) (int, bool) {
	n := len(s.schedule)
	usable := func(i int) bool {
		a := s.Endpoints[i].Addr
		return !slices.Contains(tried, a) && !h.Ejected(a)
	}
	a, b := -1, -1
	for range 4 {
		i := int(s.schedule[rand.IntN(n)])
		if !usable(i) {
			continue
		}
		if a < 0 {
			a = i
		} else if i != a {
			b = i
			break
		}
	}
	switch {
	case a < 0:
		return 0, false
	case b < 0:
		return a, true
	}
	la := h.inflight(s.Endpoints[a].Addr) * int64(max(s.Endpoints[b].Weight, 1))
	lb := h.inflight(s.Endpoints[b].Addr) * int64(max(s.Endpoints[a].Weight, 1))
	if lb < la {
		return b, true
	}
	return a, true
}
