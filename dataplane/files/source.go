package files

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Sink receives what the directory says to serve (server.Dataplane implements it).
type Sink interface {
	SetRoutes(*routing.Table, tlsstore.Keypairs, proxy.Settings)
	SetEndpoints(upstream.Endpoints)
}

// Options of a Source.
type Options struct {
	Dir string
	// Settings are the defaults an EdgeProxy in the directory may override (trusted hops from a
	// flag, for instance).
	Settings proxy.Settings
	// Debounce coalesces bursts of file events (editors write several times); 150 ms.
	Debounce time.Duration
	Logger   *slog.Logger
	// Now is the clock for certificate validity; time.Now when nil.
	Now func() time.Time
	// OnReload, when set, is told the outcome of every reading of the directory.
	OnReload func(Reload)
	// Hooks translate Ingresses and admit routes as the operator does (see Hooks).
	Hooks Hooks
}

// Reload is the outcome of one reading of the directory.
type Reload struct {
	// Applied is false when errors kept the last good configuration serving.
	Applied bool
	// RoutesRebuilt is true when a new routing table went live.
	RoutesRebuilt bool
	// Took is the time to read, validate and build.
	Took time.Duration
}

// Source applies the directory to a Sink, now and whenever it changes.
//
// What it applies: with no errors, everything (endpoints first, so that a new route's backends
// exist when it goes live; the table only when something other than Services and EndpointSlices
// changed). With errors, the last good configuration keeps serving untouched and every problem is
// logged with its file, object and field. At startup, when there is no last good configuration,
// the valid part is served so that one typo does not leave the proxy empty.
type Source struct {
	opts    Options
	sink    Sink
	log     *slog.Logger
	mu      sync.Mutex // one Reload at a time
	applied bool
	digest  [32]byte
	// cache keeps the decoded objects of every file, so that a reload decodes only the files that
	// changed.
	cache fileCache
}

// NewSource prepares a Source; Start starts it.
func NewSource(o Options, sink Sink) *Source {
	if o.Debounce <= 0 {
		o.Debounce = 150 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Source{opts: o, sink: sink, log: o.Logger.With("dir", o.Dir)}
}

// Start loads the directory once, failing if it cannot be read or watched, then watches it in the
// background until ctx is done.
func (s *Source) Start(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	// Watch before the first read, so that no change between the two is missed.
	if err := w.Add(s.opts.Dir); err != nil {
		w.Close()
		return err
	}
	if err := s.Reload(); err != nil {
		w.Close()
		return err
	}
	go s.watch(ctx, w)
	return nil
}

func (s *Source) watch(ctx context.Context, w *fsnotify.Watcher) {
	defer w.Close()
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				s.log.Error("file watcher closed; changes are no longer applied")
				return
			}
			s.log.Debug("file event", "file", ev.Name, "op", ev.Op.String())
			if timer == nil {
				timer = time.NewTimer(s.opts.Debounce)
			} else {
				timer.Reset(s.opts.Debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				s.log.Error("file watcher closed; changes are no longer applied")
				return
			}
			s.log.Error("watching the directory failed; changes may be missed", "error", err)
		case <-fire:
			fire = nil
			if err := s.Reload(); err != nil {
				s.log.Error("reading the directory failed; the last good configuration keeps serving", "error", err)
			}
		}
	}
}

// Reload reads the directory and applies it under the rules above.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	c, err := loadWith(s.opts.Dir, s.opts.Settings, s.opts.Now(), s.opts.Hooks, &s.cache)
	if err != nil {
		return err
	}
	for _, p := range c.Problems {
		lvl := slog.LevelError
		if p.Warning {
			lvl = slog.LevelWarn
		}
		s.log.Log(context.Background(), lvl, "configuration problem",
			"file", p.File, "object", p.Object, "field", p.Field, "problem", p.Message)
	}
	if errs := c.Errors(); len(errs) > 0 && s.applied {
		s.log.Error("configuration not applied; the last good configuration keeps serving", "errors", len(errs))
		if s.opts.OnReload != nil {
			s.opts.OnReload(Reload{Took: time.Since(start)})
		}
		return nil
	}
	took := time.Since(start)
	s.sink.SetEndpoints(c.Endpoints)
	routesChanged := !s.applied || c.RoutesDigest != s.digest
	if routesChanged {
		s.sink.SetRoutes(c.Table, c.Keypairs, c.Settings)
		s.digest = c.RoutesDigest
	}
	s.applied = true
	if s.opts.OnReload != nil {
		s.opts.OnReload(Reload{Applied: true, RoutesRebuilt: routesChanged, Took: took})
	}
	s.log.Info("configuration applied", "version", c.Table.Version(), "routes_rebuilt", routesChanged,
		"backends", len(c.Endpoints), "problems", len(c.Problems), "took", took.String())
	return nil
}
