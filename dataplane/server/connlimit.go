package server

import (
	"net"
	"net/netip"
	"sync"
)

// limitListener caps the open connections of one listener, in total and per client IP
// (security-defaults.md: 10,000 and 256). A connection over either cap is accepted and closed at
// once, before any byte is read or any TLS handshake is done, and onRefuse is told. The slots are
// released when a connection is closed, hijacked ones included (their Close reaches ours).
type limitListener struct {
	net.Listener
	total, perIP int
	onRefuse     func(remote net.Addr)

	mu   sync.Mutex
	open int
	byIP map[netip.Addr]int
}

func newLimitListener(l net.Listener, total, perIP int, onRefuse func(net.Addr)) net.Listener {
	if total <= 0 && perIP <= 0 {
		return l
	}
	return &limitListener{Listener: l, total: total, perIP: perIP, onRefuse: onRefuse, byIP: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.acquire(ip) {
			return &limitConn{Conn: c, l: l, ip: ip}, nil
		}
		if l.onRefuse != nil {
			l.onRefuse(c.RemoteAddr())
		}
		_ = c.Close()
	}
}

func (l *limitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.open >= l.total {
		return false
	}
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		return false
	}
	l.open++
	l.byIP[ip]++
	return true
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// Open returns the connections currently counted.
func (l *limitListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// CloseWrite keeps the half-close the request checks use before closing after a refusal.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
