// Package accesslog writes one line per request, JSON or common-log-style text, off the hot path:
// Observe copies what a line needs into a bounded queue and returns; one goroutine formats and
// writes. A request never waits for the sink: when the queue is full (a stalled stdout, a slow
// disk) the line is dropped and counted.
package accesslog

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
)

// Format of the lines.
type Format int32

const (
	// JSON: one object per line, every field always present (see README "Observability").
	JSON Format = iota
	// Text: the common log format, then key=value fields.
	Text
)

// ParseFormat reads "json" or "text" (any case; the EdgeProxy's "JSON" and "Text" included).
func ParseFormat(s string) (Format, bool) {
	switch strings.ToLower(s) {
	case "json", "":
		return JSON, true
	case "text":
		return Text, true
	}
	return JSON, false
}

func (f Format) String() string {
	if f == Text {
		return "text"
	}
	return "json"
}

// Options of a Logger.
type Options struct {
	// Writer receives whole lines from a single goroutine.
	Writer io.Writer
	Format Format
	// Disabled starts the logger switched off (SetEnabled switches it on).
	Disabled bool
	// Buffer is the number of lines the queue holds; 4096 when zero.
	Buffer int
}

// Logger is a proxy.Observer writing access log lines.
type Logger struct {
	w       io.Writer
	queue   chan record
	enabled atomic.Bool
	format  atomic.Int32
	dropped atomic.Uint64 // queue full
	failed  atomic.Uint64 // lines lost to write errors
	tenant  atomic.Pointer[string]

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// New starts a logger; Close stops it.
func New(o Options) *Logger {
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	l := &Logger{w: o.Writer, queue: make(chan record, o.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
	l.enabled.Store(!o.Disabled)
	l.format.Store(int32(o.Format))
	empty := ""
	l.tenant.Store(&empty)
	go l.run()
	return l
}

// SetEnabled switches logging on or off; lines already queued are still written.
func (l *Logger) SetEnabled(on bool) { l.enabled.Store(on) }

// Enabled reports whether lines are logged.
func (l *Logger) Enabled() bool { return l.enabled.Load() }

// SetFormat changes the format of the lines written from now on.
func (l *Logger) SetFormat(f Format) { l.format.Store(int32(f)) }

// SetTenant names the tenant of refused raw requests (an exchange carries its own).
func (l *Logger) SetTenant(t string) { l.tenant.Store(&t) }

// Dropped is the number of lines dropped because the queue was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// WriteFailures is the number of lines lost because the writer failed.
func (l *Logger) WriteFailures() uint64 { return l.failed.Load() }

// Observe queues the line of a finished exchange, unless logging is off or the route silenced it.
func (l *Logger) Observe(ex *proxy.Exchange) {
	if !l.enabled.Load() || (ex.Rule != nil && !ex.Rule.Route.Policy.AccessLog) {
		return
	}
	rec := record{
		start: ex.Start, duration: ex.Duration, method: ex.Method, host: ex.Host, path: ex.Path,
		proto: ex.Proto, status: ex.Status, bytesIn: ex.BytesRead, bytesOut: ex.BytesWritten,
		client: ex.ClientIP, requestID: ex.RequestID, traceID: ex.TraceID, spanID: ex.SpanID,
		tenant: ex.Tenant, rule: ex.Rule, backend: ex.Backend, endpoint: ex.Endpoint, attempts: ex.Attempts,
		upstreamStatus: ex.UpstreamStatus, upstreamLatency: ex.UpstreamLatency,
		reason: ex.Reason, detail: ex.Detail, scheme: "http",
	}
	if ex.TLS {
		rec.scheme = "https"
	}
	if r := ex.Request; r != nil {
		rec.peer = r.RemoteAddr
		rec.userAgent = r.Header.Get("User-Agent")
		rec.xff = joinValues(r.Header["X-Forwarded-For"])
		if r.TLS != nil {
			rec.tlsVersion, rec.sni = r.TLS.Version, r.TLS.ServerName
		}
	}
	l.enqueue(&rec)
}

// Rejected logs a request the raw checks refused before the handler saw it: there is no method,
// path or route, only the peer, the status and the detail. A refusal inside a body (InBody) is
// skipped: its request reached the handler, whose exchange is logged.
func (l *Logger) Rejected(rej *requestcheck.Rejection, remote net.Addr) {
	if !l.enabled.Load() || rej.InBody {
		return
	}
	rec := record{start: time.Now(), status: rej.Status, reason: proxy.ReasonRejectedRequest,
		detail: rej.Detail, tenant: *l.tenant.Load()}
	if remote != nil {
		rec.peer = remote.String()
		if ap, err := netip.ParseAddrPort(rec.peer); err == nil {
			rec.client = ap.Addr().Unmap()
		}
	}
	l.enqueue(&rec)
}

func (l *Logger) enqueue(rec *record) {
	select {
	case l.queue <- *rec:
	default:
		l.dropped.Add(1)
	}
}

func joinValues(v []string) string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	}
	return strings.Join(v, ", ")
}

// record is what a line needs, copied out of the exchange (strings are immutable, the rule is
// never mutated), so the exchange can be reused as soon as Observe returns.
type record struct {
	start           time.Time
	duration        time.Duration
	method, scheme  string
	host, path      string
	proto           string
	status          int
	bytesIn         int64
	bytesOut        int64
	client          netip.Addr
	peer            string
	xff, userAgent  string
	requestID       string
	traceID         [16]byte
	spanID          [8]byte
	tenant          string
	rule            *routing.Rule
	backend         routing.BackendKey
	endpoint        netip.AddrPort
	attempts        int
	upstreamStatus  int
	upstreamLatency time.Duration
	tlsVersion      uint16
	sni             string
	reason, detail  string
}

// run is the only writer. It flushes whenever the queue runs empty, so lines show up at once when
// traffic is light and in 64 KiB writes when it is heavy.
func (l *Logger) run() {
	defer close(l.done)
	bw := bufio.NewWriterSize(l.w, 64<<10)
	buf := make([]byte, 0, 1024)
	pending := 0 // lines in bw
	write := func(rec *record) {
		buf = l.appendLine(buf[:0], rec)
		if _, err := bw.Write(buf); err != nil {
			l.lost(bw, pending+1)
			pending = 0
			return
		}
		pending++
	}
	flush := func() {
		if err := bw.Flush(); err != nil {
			l.lost(bw, pending)
		}
		pending = 0
	}
	for {
		select {
		case rec := <-l.queue:
			write(&rec)
			if len(l.queue) == 0 {
				flush()
			}
		case <-l.stop:
			for {
				select {
				case rec := <-l.queue:
					write(&rec)
				default:
					flush()
					return
				}
			}
		}
	}
}

// lost counts lines a failed write took with it and makes the writer usable again.
func (l *Logger) lost(bw *bufio.Writer, lines int) {
	l.failed.Add(uint64(lines))
	bw.Reset(l.w)
}

func (l *Logger) appendLine(b []byte, rec *record) []byte {
	if Format(l.format.Load()) == Text {
		return appendText(b, rec)
	}
	return appendJSON(b, rec)
}

// Close writes the lines queued so far and stops, waiting at most until ctx ends. Lines observed
// after Close are not written.
func (l *Logger) Close(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tlsVersionName names a TLS version as logs usually do.
func tlsVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	case 0x0302:
		return "TLSv1.1"
	case 0x0301:
		return "TLSv1.0"
	}
	return "unknown"
}

var _ proxy.Observer = (*Logger)(nil)
