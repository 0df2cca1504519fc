package snapshot

import (
	"sync"

	"github.com/portico-dev/portico/dataplane/routing"
)

// Hub holds the latest snapshot of every EdgeProxy and wakes the streams serving it when it
// changes. Streams never queue messages: each one compares what it last sent with the latest
// state and sends a full snapshot (new version) or an endpoints delta, so a slow proxy skips
// intermediate states instead of building a backlog.
type Hub struct {
	mu  sync.Mutex
	eps map[string]*hubEntry
	// OnPublish, when set, is told about every new version (the Tracker), under no lock of the hub.
	OnPublish func(*Snapshot)
}

type hubEntry struct {
	snap *Snapshot
	// revision grows with every change of the snapshot or its endpoints.
	revision uint64
	changed  chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{eps: map[string]*hubEntry{}} }

func (h *Hub) entry(ep string) *hubEntry {
	e := h.eps[ep]
	if e == nil {
		e = &hubEntry{changed: make(chan struct{})}
		h.eps[ep] = e
	}
	return e
}

// Publish makes s the latest snapshot of its EdgeProxy. Publishing an equal snapshot is a no-op.
// One EdgeProxy's snapshots are published one at a time (its builds are).
func (h *Hub) Publish(s *Snapshot) {
	h.mu.Lock()
	e := h.entry(s.EdgeProxy)
	newVersion := e.snap == nil || e.snap.Version != s.Version
	if !newVersion {
		if up, rm := DiffEndpoints(e.snap.Endpoints, s.Endpoints); len(up) == 0 && len(rm) == 0 {
			h.mu.Unlock()
			return
		}
	}
	h.mu.Unlock()
	if newVersion && h.OnPublish != nil {
		// Before any stream can send it: an ACK must never name a version the tracker does not know.
		h.OnPublish(s)
	}
	h.mu.Lock()
	e = h.entry(s.EdgeProxy)
	e.snap = s
	e.revision++
	close(e.changed)
	e.changed = make(chan struct{})
	h.mu.Unlock()
}

// Remove forgets an EdgeProxy (deleted): its streams keep their proxies' last configuration.
func (h *Hub) Remove(ep string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.eps[ep]; e != nil && e.snap != nil {
		e.snap = nil
		e.revision++
		close(e.changed)
		e.changed = make(chan struct{})
	}
}

// Current returns the latest snapshot of an EdgeProxy (nil when none yet), its revision, and a
// channel closed at the next change.
func (h *Hub) Current(ep string) (*Snapshot, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(ep)
	return e.snap, e.revision, e.changed
}

// Endpoints returns the latest endpoints of an EdgeProxy (tests and debugging).
func (h *Hub) Endpoints(ep string) map[routing.BackendKey]int {
	s, _, _ := h.Current(ep)
	out := map[routing.BackendKey]int{}
	if s != nil {
		for k, be := range s.Endpoints {
			out[k] = len(be.Endpoints)
		}
	}
	return out
}
