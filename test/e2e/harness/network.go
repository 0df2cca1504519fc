package harness

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// network is the harness's pod network: one Linux bridge on the host holding the gateway address
// (the first address of the subnet), one network namespace per pod with a veth pair to the bridge,
// and load-balancer addresses from the top of the subnet added to the bridge. Every name starts with
// the instance name, so a crashed run's leftovers are found and removed at the next start.
type network struct {
	name   string // instance name, at most 5 characters (Linux interface names are short)
	subnet netip.Prefix
	gw     netip.Addr

	mu      sync.Mutex
	podIPs  map[netip.Addr]bool
	lbIPs   map[netip.Addr]bool
	nextIdx int
}

const (
	lbPoolSize = 16 // addresses at the top of the subnet reserved for LoadBalancer Services
	firstPod   = 10 // pod addresses start at subnet base + firstPod
)

func newNetwork(name string, subnet netip.Prefix) (*network, error) {
	if len(name) == 0 || len(name) > 5 {
		return nil, fmt.Errorf("instance name %q: 1 to 5 characters", name)
	}
	if !subnet.Addr().Is4() || subnet.Bits() > 26 {
		return nil, fmt.Errorf("subnet %s: need an IPv4 prefix of /26 or larger", subnet)
	}
	subnet = subnet.Masked()
	return &network{name: name, subnet: subnet, gw: subnet.Addr().Next(),
		podIPs: map[netip.Addr]bool{}, lbIPs: map[netip.Addr]bool{}}, nil
}

func (n *network) bridge() string { return n.name + "br" }

// cleanStale removes every namespace, link and hosts directory of a previous run of this instance
// name, killing the processes still inside those namespaces.
func (n *network) cleanStale() {
	if out, err := output("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], n.name+"-") {
				n.deleteNetns(f[0])
			}
		}
	}
	if out, err := output("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			link := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasPrefix(link, n.name+"h") || link == n.bridge() {
				_ = run("ip", "link", "del", link)
			}
		}
	}
	matches, _ := filepath.Glob("/etc/netns/" + n.name + "-*")
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

func (n *network) setup() error {
	n.cleanStale()
	for _, argv := range [][]string{
		{"ip", "link", "add", n.bridge(), "type", "bridge"},
		{"ip", "addr", "add", n.gw.String() + "/" + strconv.Itoa(n.subnet.Bits()), "dev", n.bridge()},
		{"ip", "link", "set", n.bridge(), "up"},
	} {
		if err := run(argv...); err != nil {
			return fmt.Errorf("pod network (needs root and iproute2): %w", err)
		}
	}
	return nil
}

func (n *network) teardown() { n.cleanStale() }

// lastAddr is the subnet's broadcast address.
func (n *network) lastAddr() netip.Addr {
	a := n.subnet.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << (32 - n.subnet.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (n *network) allocPodIP() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.subnet.Addr()
	for range firstPod {
		a = a.Next()
	}
	limit := n.lastAddr()
	for range lbPoolSize + 1 {
		limit = limit.Prev()
	}
	for ; a.Compare(limit) <= 0; a = a.Next() {
		if !n.podIPs[a] {
			n.podIPs[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod network %s is full", n.subnet)
}

func (n *network) allocLBIP() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.lastAddr().Prev()
	for range lbPoolSize {
		if !n.lbIPs[a] {
			if err := run("ip", "addr", "add", a.String()+"/32", "dev", n.bridge()); err != nil {
				return netip.Addr{}, err
			}
			n.lbIPs[a] = true
			return a, nil
		}
		a = a.Prev()
	}
	return netip.Addr{}, fmt.Errorf("no load-balancer address left in %s", n.subnet)
}

func (n *network) releaseLBIP(a netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lbIPs[a] {
		_ = run("ip", "addr", "del", a.String()+"/32", "dev", n.bridge())
		delete(n.lbIPs, a)
	}
}

// podNet is one pod's network namespace.
type podNet struct {
	netns, hostLink string
	ip              netip.Addr
}

// addPod creates a namespace with eth0 (ip/prefix, default route via the bridge) and lo, and writes
// /etc/netns/NS/hosts, which `ip netns exec` bind-mounts over /etc/hosts.
func (n *network) addPod(hosts string) (*podNet, error) {
	ip, err := n.allocPodIP()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.nextIdx++
	idx := n.nextIdx
	n.mu.Unlock()
	pn := &podNet{netns: fmt.Sprintf("%s-%d", n.name, idx), hostLink: fmt.Sprintf("%sh%d", n.name, idx), ip: ip}
	steps := [][]string{
		{"ip", "netns", "add", pn.netns},
		{"ip", "link", "add", pn.hostLink, "type", "veth", "peer", "name", "eth0", "netns", pn.netns},
		{"ip", "link", "set", pn.hostLink, "master", n.bridge(), "up"},
		{"ip", "-n", pn.netns, "addr", "add", ip.String() + "/" + strconv.Itoa(n.subnet.Bits()), "dev", "eth0"},
		{"ip", "-n", pn.netns, "link", "set", "eth0", "up"},
		{"ip", "-n", pn.netns, "link", "set", "lo", "up"},
		{"ip", "-n", pn.netns, "route", "add", "default", "via", n.gw.String()},
	}
	for _, argv := range steps {
		if err := run(argv...); err != nil {
			n.removePod(pn)
			return nil, err
		}
	}
	dir := filepath.Join("/etc/netns", pn.netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.removePod(pn)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		n.removePod(pn)
		return nil, err
	}
	return pn, nil
}

func (n *network) removePod(pn *podNet) {
	n.deleteNetns(pn.netns)
	_ = run("ip", "link", "del", pn.hostLink)
	n.mu.Lock()
	delete(n.podIPs, pn.ip)
	n.mu.Unlock()
}

func (n *network) deleteNetns(ns string) {
	if out, err := output("ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = run("ip", "netns", "del", ns)
	_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
}
