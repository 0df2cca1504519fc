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
	SelfPorts []uint16
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
	case a.IsLoopback():
		if !g.AllowLoopback {
			return ErrEgressDenied
		}
		for _, p := range g.SelfPorts {
			if ap.Port() == p {
				return ErrEgressDenied
			}
		}
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
