// Package upstream is everything between a chosen backend and a connected socket: the endpoint
// store (swapped on its own, so endpoint churn never rebuilds routes), load balancing, passive
// health, the egress-guarded dialer and the pooled transports.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Guard refuses destinations a tenant must never reach through the proxy: the proxy's own host,
// link-local and cloud metadata addresses. Endpoints come from EndpointSlices a tenant can
// influence, so without it "my backend is 169.254.169.254" reads the node's cloud credentials.
type Guard struct {
	// AllowLoopback permits 127.0.0.0/8 and ::1 (files mode, local platforms). Link-local,
	// metadata and unspecified addresses stay refused, and so do the proxy's own ports.
	AllowLoopback bool
	// SelfPorts are the proxy's own listener ports (admin, HTTP, HTTPS); refused on any local
	// address even when loopback is allowed, so a route cannot loop into the proxy or its admin API.
	// Local addresses are loopback, SelfAddrs, and the addresses of the host's (the pod's)
	// network interfaces: an EndpointSlice naming the proxy's own pod IP is a loop too.
	SelfPorts []uint16
	// SelfAddrs are more addresses of the proxy itself (tests; a node IP with hostNetwork).
	SelfAddrs []netip.Addr
}

// interfaceAddrs are the addresses of the host's network interfaces, read once: a pod's
// addresses do not change during its life.
var interfaceAddrs = sync.OnceValue(func() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
})

func (g Guard) isSelf(a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(g.SelfAddrs, a) || interfaceAddrs()[a]
}

var (
	metadataV4 = netip.MustParseAddr("100.100.100.200") // Alibaba Cloud metadata
	metadataV6 = netip.MustParseAddr("fd00:ec2::254")   // AWS IMDS over IPv6
)

// ErrEgressDenied is returned (wrapped) for a destination the Guard refuses.
var ErrEgressDenied = errors.New("destination not allowed")

// Check reports whether the proxy may connect to ap.
func (g Guard) Check(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return ErrEgressDenied
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(): // 169.254/16 (AWS, GCP, Azure metadata), fe80::/10
		return ErrEgressDenied
	case a == metadataV4, a == metadataV6:
		return ErrEgressDenied
	case a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}:
		return ErrEgressDenied
	case a.IsLoopback() && !g.AllowLoopback:
		return ErrEgressDenied
	case slices.Contains(g.SelfPorts, ap.Port()) && g.isSelf(a):
		return ErrEgressDenied
	}
	return nil
}

// DialError is any failure to establish a connection to an endpoint: nothing of the request was
// sent, so retrying elsewhere is safe.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Addr, e.Err) }
func (e *DialError) Unwrap() error { return e.Err }

// Dialer connects to endpoints after the Guard approved the address actually dialed.
type Dialer struct {
	d net.Dialer
}

// NewDialer returns a dialer with the given connect timeout (5 s when zero).
func NewDialer(g Guard, connectTimeout time.Duration) *Dialer {
	if connectTimeout <= 0 {
		connectTimeout = 5 * time.Second
	}
	return &Dialer{d: net.Dialer{
		Timeout:   connectTimeout,
		KeepAlive: 30 * time.Second,
		// The check runs on the resolved address just before connect(2), so no name resolution
		// or redirection trick gets around it.
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return ErrEgressDenied
			}
			return g.Check(ap)
		},
	}}
}

// DialContext dials and wraps failures in *DialError.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	return c, nil
}
