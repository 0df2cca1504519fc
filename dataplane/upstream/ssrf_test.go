package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// countingListener counts accepted connections on 127.0.0.1.
func countingListener(t *testing.T) (net.Listener, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln, &n
}

// rebindingDNS answers A queries for any name: the first answer is allowed (what a validator that
// resolves ahead of time sees), every later one is the rebinding: loopback and metadata.
type rebindingDNS struct{ queries atomic.Int64 }

func (d *rebindingDNS) answers() []netip.Addr {
	if d.queries.Add(1) == 1 {
		return []netip.Addr{netip.MustParseAddr("198.51.100.7")}
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("169.254.169.254")}
}

// dial gives the resolver a stream connection to an in-memory DNS server.
func (d *rebindingDNS) dial(context.Context, string, string) (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		for {
			var l [2]byte
			if _, err := io.ReadFull(server, l[:]); err != nil {
				return
			}
			q := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(server, q); err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(q)
			if err != nil {
				return
			}
			qs, _ := p.AllQuestions()
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			_ = b.StartQuestions()
			for _, qq := range qs {
				_ = b.Question(qq)
			}
			_ = b.StartAnswers()
			for _, qq := range qs {
				if qq.Type != dnsmessage.TypeA {
					continue
				}
				for _, a := range d.answers() {
					_ = b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: a.As4()})
				}
			}
			msg, _ := b.Finish()
			binary.BigEndian.PutUint16(l[:], uint16(len(msg)))
			if _, err := server.Write(append(l[:], msg...)); err != nil {
				return
			}
		}
	}()
	return client, nil
}

// A name validated while it pointed elsewhere and rebound to loopback and metadata by the time the
// proxy dials it: the guard checks the address actually dialed, so every attempt is refused and
// the loopback listener sees 0 connections.
func TestRebindingResolverRefused(t *testing.T) {
	ln, accepted := countingListener(t)
	port := ln.Addr().(*net.TCPAddr).Port
	dns := &rebindingDNS{}
	res := &net.Resolver{PreferGo: true, StrictErrors: true, Dial: dns.dial}
	d := NewDialer(Guard{}, time.Second)
	d.d.Resolver = res

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := res.LookupNetIP(ctx, "ip4", "rebind.portico.test.")
	if err != nil || len(first) != 1 || first[0] != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("validation-time lookup: %v %v", first, err)
	}
	for i := range 20 {
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("rebind.portico.test.", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			t.Fatalf("dial %d succeeded after the rebinding", i)
		}
		if !errors.Is(err, ErrEgressDenied) {
			t.Fatalf("dial %d: %v, want ErrEgressDenied", i, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}
	t.Logf("rebinding resolver: %d lookups, 20/20 dials refused, 0 connections", dns.queries.Load())
}

// EndpointSlice-style addresses of the proxy itself: loopback, link-local, metadata, unspecified,
// and the proxy's own ports on its own (interface or configured) address — refused with and
// without AllowLoopback, before connect(2): 0 connections reach a live listener.
func TestSelfAndMetadataEndpointsRefused(t *testing.T) {
	ln, accepted := countingListener(t)
	self := ln.Addr().(*net.TCPAddr).AddrPort()
	podIP := netip.MustParseAddr("10.20.30.40")
	var ifaceAddr netip.Addr
	for a := range interfaceAddrs() {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			ifaceAddr = a
		}
	}
	for _, g := range []Guard{
		{SelfPorts: []uint16{self.Port(), 9901}, SelfAddrs: []netip.Addr{podIP}},
		{AllowLoopback: true, SelfPorts: []uint16{self.Port(), 9901}, SelfAddrs: []netip.Addr{podIP}},
	} {
		targets := []string{self.String(), "[::1]:" + strconv.Itoa(int(self.Port())), "0.0.0.0:" + strconv.Itoa(int(self.Port())),
			"169.254.169.254:80", "[fe80::1]:80", "100.100.100.200:80", "[fd00:ec2::254]:80",
			"10.20.30.40:9901", "10.20.30.40:" + strconv.Itoa(int(self.Port()))}
		if ifaceAddr.IsValid() {
			targets = append(targets, netip.AddrPortFrom(ifaceAddr, 9901).String())
		}
		d := NewDialer(g, time.Second)
		for _, target := range targets {
			begin := time.Now()
			c, err := d.DialContext(context.Background(), "tcp", target)
			if err == nil {
				c.Close()
				t.Errorf("loopback=%v: %s dialed", g.AllowLoopback, target)
				continue
			}
			if !errors.Is(err, ErrEgressDenied) || time.Since(begin) > 500*time.Millisecond {
				t.Errorf("loopback=%v: %s: %v after %v, want an immediate ErrEgressDenied", g.AllowLoopback, target, err, time.Since(begin))
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the proxy's own listener accepted %d connections", n)
	}
	// Other ports on the pod's address stay reachable (a sidecar, say): only the proxy's own are a loop.
	if err := (Guard{SelfPorts: []uint16{9901}, SelfAddrs: []netip.Addr{podIP}}).Check(netip.AddrPortFrom(podIP, 8081)); err != nil {
		t.Errorf("pod address, another port: %v", err)
	}
}
