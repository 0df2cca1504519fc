package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/portico-dev/portico/dataplane/routing"
)

// Endpoint is one ready address of a backend.
type Endpoint struct {
	Addr netip.AddrPort
	// Weight for round robin; 0 counts as 1.
	Weight int32
	// AppProtocol of the Service / EndpointSlice port: "kubernetes.io/h2c", "http2", "grpc" and
	// "h2c" select cleartext HTTP/2 to the endpoint; anything else HTTP/1.1.
	AppProtocol string
}

// Endpoints maps each backend to its ready endpoints.
type Endpoints map[routing.BackendKey][]Endpoint

// Store holds the current endpoint sets. Set replaces them all at once; readers see either the
// old or the new map, never a mix. Round-robin positions and passive health live outside the
// sets, so they survive updates.
type Store struct {
	sets    atomic.Pointer[map[routing.BackendKey]*Set]
	cursors sync.Map // routing.BackendKey → *atomic.Uint64
	Health  *Health
}

// NewStore returns an empty store with its passive-health tracker.
func NewStore() *Store {
	s := &Store{Health: NewHealth()}
	empty := map[routing.BackendKey]*Set{}
	s.sets.Store(&empty)
	return s
}

// Set replaces every backend's endpoints.
func (s *Store) Set(eps Endpoints) {
	sets := make(map[routing.BackendKey]*Set, len(eps))
	live := make(map[netip.AddrPort]struct{})
	for key, list := range eps {
		if len(list) == 0 {
			continue
		}
		cur, _ := s.cursors.LoadOrStore(key, new(atomic.Uint64))
		sets[key] = newSet(key, list, cur.(*atomic.Uint64))
		for _, e := range list {
			live[e.Addr] = struct{}{}
		}
	}
	s.sets.Store(&sets)
	s.cursors.Range(func(k, _ any) bool {
		if _, ok := sets[k.(routing.BackendKey)]; !ok {
			s.cursors.Delete(k)
		}
		return true
	})
	s.Health.prune(live)
}

// Get returns the endpoints of a backend, or nil when it has none.
func (s *Store) Get(key routing.BackendKey) *Set {
	return (*s.sets.Load())[key]
}

// Set is the immutable endpoint list of one backend.
type Set struct {
	Key       routing.BackendKey
	Endpoints []Endpoint
	tokens    []string         // session-affinity cookie value per endpoint
	hostports []string         // "ip:port" per endpoint, formatted once
	schedule  []uint32         // smooth weighted round-robin order, indexes into Endpoints
	cursor    *atomic.Uint64   // shared across updates of the same backend
	byToken   map[string]int32 // token → index
}

func newSet(key routing.BackendKey, eps []Endpoint, cursor *atomic.Uint64) *Set {
	s := &Set{Key: key, Endpoints: eps, cursor: cursor, byToken: make(map[string]int32, len(eps))}
	weights := make([]int64, len(eps))
	s.tokens = make([]string, len(eps))
	s.hostports = make([]string, len(eps))
	for i, e := range eps {
		s.hostports[i] = e.Addr.String()
		weights[i] = int64(max(e.Weight, 1))
		s.tokens[i] = affinityToken(key, e.Addr)
		s.byToken[s.tokens[i]] = int32(i)
	}
	s.schedule = SmoothSchedule(weights, 4096)
	return s
}

// Token is the session-affinity cookie value of endpoint i: a digest, so that the cookie does not
// hand out internal addresses.
func (s *Set) Token(i int) string { return s.tokens[i] }

// HostPort is endpoint i's address as "ip:port".
func (s *Set) HostPort(i int) string { return s.hostports[i] }

// ByToken finds the endpoint an affinity cookie names.
func (s *Set) ByToken(tok string) (int, bool) {
	i, ok := s.byToken[tok]
	return int(i), ok
}

func affinityToken(key routing.BackendKey, addr netip.AddrPort) string {
	h := sha256.New()
	h.Write([]byte(key.Namespace + "/" + key.Name + "\x00" + addr.String()))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// SmoothSchedule expands weights into nginx's smooth weighted round-robin sequence, which spreads
// a heavy endpoint's turns instead of sending it a burst. Weights are scaled down so that the
// sequence stays at most limit long; a non-zero weight never scales to zero, a zero weight never
// appears.
func SmoothSchedule(weights []int64, limit int64) []uint32 {
	var sum int64
	for _, w := range weights {
		sum += max(w, 0)
	}
	if sum > limit {
		scaled := make([]int64, len(weights))
		var newSum int64
		for i, w := range weights {
			if w > 0 {
				scaled[i] = max(w*limit/sum, 1)
			}
			newSum += scaled[i]
		}
		weights, sum = scaled, newSum
	}
	if sum == 0 {
		return nil
	}
	current := make([]int64, len(weights))
	out := make([]uint32, 0, sum)
	for range sum {
		best := -1
		for i, w := range weights {
			if w <= 0 {
				continue
			}
			current[i] += w
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= sum
		out = append(out, uint32(best))
	}
	return out
}
