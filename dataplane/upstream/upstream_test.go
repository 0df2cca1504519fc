package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/routing"
)

func TestGuard(t *testing.T) {
	strict := Guard{}
	local := Guard{AllowLoopback: true, SelfPorts: []uint16{9901, 8080}}
	for _, tc := range []struct {
		addr          string
		strict, local bool // allowed?
	}{
		{"10.0.0.5:8080", true, true},
		{"192.0.2.10:80", true, true},
		{"[2001:db8::1]:80", true, true},
		{"127.0.0.1:3000", false, true},
		{"127.8.9.10:3000", false, true},
		{"[::1]:3000", false, true},
		{"[::ffff:127.0.0.1]:3000", false, true},
		{"127.0.0.1:9901", false, false}, // the proxy's own admin port
		{"127.0.0.1:8080", false, false},
		{"169.254.169.254:80", false, false},
		{"[::ffff:169.254.169.254]:80", false, false},
		{"[fe80::1]:80", false, false},
		{"0.0.0.0:80", false, false},
		{"[::]:80", false, false},
		{"100.100.100.200:80", false, false},
		{"[fd00:ec2::254]:80", false, false},
		{"224.0.0.1:80", false, false},
		{"255.255.255.255:80", false, false},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := strict.Check(ap) == nil; got != tc.strict {
			t.Errorf("strict.Check(%s) allowed=%v, want %v", tc.addr, got, tc.strict)
		}
		if got := local.Check(ap) == nil; got != tc.local {
			t.Errorf("local.Check(%s) allowed=%v, want %v", tc.addr, got, tc.local)
		}
	}
}

func TestDialerRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := NewDialer(Guard{}, time.Second)
	_, err = d.DialContext(context.Background(), "tcp", ln.Addr().String())
	var de *DialError
	if !errors.As(err, &de) || !errors.Is(err, ErrEgressDenied) {
		t.Fatalf("dial loopback with strict guard: %v; want DialError wrapping ErrEgressDenied", err)
	}
	c, err := NewDialer(Guard{AllowLoopback: true}, time.Second).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback when allowed: %v", err)
	}
	c.Close()
}

func TestSmoothSchedule(t *testing.T) {
	s := SmoothSchedule([]int64{5, 1, 1}, 4096)
	want := []uint32{0, 0, 1, 0, 2, 0, 0}
	if len(s) != len(want) {
		t.Fatalf("schedule %v, want %v", s, want)
	}
	for i := range want {
		if s[i] != want[i] {
			t.Fatalf("schedule %v, want %v", s, want)
		}
	}
	big := SmoothSchedule([]int64{1_000_000, 1, 0}, 1000)
	counts := map[uint32]int{}
	for _, i := range big {
		counts[i]++
	}
	if counts[1] != 1 || counts[2] != 0 || counts[0] < 900 {
		t.Errorf("scaled schedule counts %v", counts)
	}
	if SmoothSchedule([]int64{0, 0}, 10) != nil {
		t.Error("all-zero weights should give no schedule")
	}
}

func key(name string) routing.BackendKey {
	return routing.BackendKey{Namespace: "ns", Name: name, Port: 80}
}

func eps(addrs ...string) []Endpoint {
	var out []Endpoint
	for _, a := range addrs {
		out = append(out, Endpoint{Addr: netip.MustParseAddrPort(a)})
	}
	return out
}

func TestPickRoundRobinSkipsEjectedAndTried(t *testing.T) {
	s := NewStore()
	s.Set(Endpoints{key("a"): eps("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")})
	set := s.Get(key("a"))
	seen := map[int]int{}
	for range 9 {
		i, ok := set.Pick(s.Health, RoundRobin, nil)
		if !ok {
			t.Fatal("no pick")
		}
		seen[i]++
	}
	if seen[0] != 3 || seen[1] != 3 || seen[2] != 3 {
		t.Errorf("round robin spread %v", seen)
	}
	s.Health.ConnectFailed(set.Endpoints[1].Addr)
	for range 6 {
		if i, _ := set.Pick(s.Health, RoundRobin, nil); i == 1 {
			t.Fatal("picked an ejected endpoint while others are healthy")
		}
	}
	tried := []netip.AddrPort{set.Endpoints[0].Addr, set.Endpoints[2].Addr}
	if i, ok := set.Pick(s.Health, RoundRobin, tried); !ok || i != 1 {
		t.Errorf("with all others tried, want the ejected one as a last resort; got %d %v", i, ok)
	}
	tried = append(tried, set.Endpoints[1].Addr)
	if _, ok := set.Pick(s.Health, RoundRobin, tried); ok {
		t.Error("picked although every endpoint was tried")
	}
}

func TestHealthBackoffAndRecovery(t *testing.T) {
	h := NewHealth()
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	a := netip.MustParseAddrPort("10.0.0.1:80")
	h.ConnectFailed(a)
	if !h.Ejected(a) {
		t.Fatal("not ejected after a failure")
	}
	now = now.Add(1500 * time.Millisecond)
	if h.Ejected(a) {
		t.Fatal("still ejected after the 1 s back-off")
	}
	h.ConnectFailed(a) // second failure: 2 s
	now = now.Add(1500 * time.Millisecond)
	if !h.Ejected(a) {
		t.Fatal("second back-off should be 2 s")
	}
	h.Succeeded(a)
	if h.Ejected(a) {
		t.Fatal("success should clear ejection")
	}
	for range 40 {
		h.ConnectFailed(a)
	}
	now = now.Add(31 * time.Second)
	if h.Ejected(a) {
		t.Fatal("back-off must be capped at 30 s")
	}
}

func TestStoreUpdateKeepsCursorAndPrunes(t *testing.T) {
	s := NewStore()
	s.Set(Endpoints{key("a"): eps("10.0.0.1:80", "10.0.0.2:80")})
	first, _ := s.Get(key("a")).Pick(s.Health, RoundRobin, nil)
	s.Set(Endpoints{key("a"): eps("10.0.0.1:80", "10.0.0.2:80")})
	second, _ := s.Get(key("a")).Pick(s.Health, RoundRobin, nil)
	if first == second {
		t.Error("round-robin position reset by an endpoint update")
	}
	s.Health.ConnectFailed(netip.MustParseAddrPort("10.0.0.2:80"))
	s.Set(Endpoints{key("b"): eps("10.0.0.9:80")})
	if s.Get(key("a")) != nil {
		t.Error("backend a still has endpoints")
	}
	if s.Health.peek(netip.MustParseAddrPort("10.0.0.2:80")) != nil {
		t.Error("health state of a removed endpoint kept")
	}
}

func TestAffinityTokens(t *testing.T) {
	s := NewStore()
	s.Set(Endpoints{key("a"): eps("10.0.0.1:80", "10.0.0.2:80")})
	set := s.Get(key("a"))
	tok := set.Token(1)
	if len(tok) != 24 || tok == set.Token(0) {
		t.Fatalf("tokens %q %q", set.Token(0), tok)
	}
	if i, ok := set.ByToken(tok); !ok || i != 1 {
		t.Errorf("ByToken = %d %v", i, ok)
	}
	s.Set(Endpoints{key("a"): eps("10.0.0.2:80", "10.0.0.3:80")})
	if i, ok := s.Get(key("a")).ByToken(tok); !ok || i != 0 {
		t.Errorf("token must follow the address across updates: %d %v", i, ok)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	s := NewStore()
	s.Set(Endpoints{key("a"): eps("10.0.0.1:80", "10.0.0.2:80")})
	set := s.Get(key("a"))
	for range 50 {
		s.Health.Acquire(set.Endpoints[0].Addr)
	}
	busy := 0
	for range 200 {
		if i, _ := set.Pick(s.Health, LeastRequest, nil); i == 0 {
			busy++
		}
	}
	// When both draws hit the same endpoint the busy one can still win; it must be rare.
	if busy > 100 {
		t.Errorf("busy endpoint picked %d/200 times", busy)
	}
}
