package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/portico-dev/portico/dataplane/requestcheck"
)

// tlsListener completes TLS handshakes itself, off the accept loop, and then hands net/http either
// the *tls.Conn (ALPN h2: net/http's HTTP/2 server, whose framing is strict, takes it) or, for
// HTTP/1.1, the connection wrapped in the raw request checks, which must see decrypted bytes
// before net/http does. net/http cannot do the handshake itself here: it only runs HTTP/1 checks
// through our wrapper if the wrapper is what it accepts.
type tlsListener struct {
	raw     net.Listener
	config  *tls.Config
	timeout time.Duration
	check   requestcheck.Options
	log     *slog.Logger
	// onHandshake, when set, is told every handshake's version or error.
	onHandshake func(version uint16, err error)

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
}

func newTLSListener(raw net.Listener, cfg *tls.Config, timeout time.Duration, check requestcheck.Options,
	onHandshake func(uint16, error), log *slog.Logger) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{raw: raw, config: cfg, timeout: timeout, check: check, log: log, onHandshake: onHandshake,
		conns: make(chan net.Conn), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.raw.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.Close()
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "listener", "https", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if l.onHandshake != nil {
		var v uint16
		if err == nil {
			v = tc.ConnectionState().Version
		}
		l.onHandshake(v, err)
	}
	if err != nil {
		l.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	var out net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		out = requestcheck.NewConn(tc, l.check)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		_ = out.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		err = l.raw.Close()
	})
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.raw.Addr() }
