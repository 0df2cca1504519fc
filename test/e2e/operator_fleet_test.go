package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/test/e2e/harness"
)

// operatorFleet runs the operator as its chart's Deployment does with several replicas: each
// replica a process with leader election, serving snapshots on a loopback port of its own, all of
// them behind the one snapshot Service address the proxies dial (a TCP forwarder on the pod
// network's gateway, standing in for the Service), and each restarted when it exits, as a kubelet
// does with restartPolicy Always.
type operatorFleet struct {
	listener net.Listener
	ports    []int
	// metricsPorts: each replica serves its Prometheus metrics on 127.0.0.1:metricsPorts[i].
	metricsPorts []int
	started      time.Time
	stop         chan struct{}
	wg           sync.WaitGroup
	restarts     atomic.Int32

	mu       sync.Mutex
	replicas []*harness.Process
}

const leaseName = "operator.edge.portico.dev"

// fleetUserPrefix: replica i talks to the API server as the user fleetUserPrefix+i (its own client
// certificate), so the audit log tells the replicas apart.
const fleetUserPrefix = "portico-operator-"

// startOperatorFleet replaces the suite's single operator with n replicas. stop puts it back.
func startOperatorFleet(ctx context.Context, n int) *operatorFleet {
	operator.Stop(30 * time.Second)
	f := &operatorFleet{stop: make(chan struct{}), replicas: make([]*harness.Process, n), started: time.Now()}
	var err error
	f.listener, err = net.Listen("tcp", net.JoinHostPort(cluster.Gateway.String(), fmt.Sprint(harness.SnapshotPort)))
	Expect(err).NotTo(HaveOccurred())
	freePort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	for i := 0; i < n; i++ {
		f.ports = append(f.ports, freePort())
		f.metricsPorts = append(f.metricsPorts, freePort())
	}
	f.wg.Add(1)
	go f.forward()
	for i := 0; i < n; i++ {
		f.wg.Add(1)
		go f.supervise(context.WithoutCancel(ctx), i) // outlives the node that starts it
	}
	Eventually(func() int {
		up := 0
		for i := 0; i < n; i++ {
			if p := f.replica(i); p != nil {
				up++
			}
		}
		return up
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal(n))
	return f
}

// forward passes each snapshot connection to a replica, trying the next when one does not accept
// (a Service's endpoints are only the ready replicas).
func (f *operatorFleet) forward() {
	defer f.wg.Done()
	next := 0
	for {
		conn, err := f.listener.Accept()
		if err != nil {
			return
		}
		next++
		go func(start int) {
			defer conn.Close()
			for i := range f.ports {
				up, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", f.ports[(start+i)%len(f.ports)]), time.Second)
				if err != nil {
					continue
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
				go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
				select {
				case <-done:
				case <-f.stop:
				}
				return
			}
		}(next)
	}
}

func (f *operatorFleet) supervise(ctx context.Context, i int) {
	defer f.wg.Done()
	for attempt := 0; ; attempt++ {
		p, err := cluster.StartOperator(ctx, harness.OperatorOptions{Binary: operatorBinary, Namespace: operatorNamespace,
			ProxyImage: harness.PorticoImageRepository + ":e2e", Name: fmt.Sprintf("operator-%d", i), User: fmt.Sprintf("%s%d", fleetUserPrefix, i),
			ExtraArgs: []string{fmt.Sprintf("--snapshot-bind-address=127.0.0.1:%d", f.ports[i]),
				fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", f.metricsPorts[i])}})
		if err == nil {
			f.mu.Lock()
			f.replicas[i] = p
			f.mu.Unlock()
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.Done()
		} else {
			ch := make(chan struct{})
			close(ch)
			exited = ch
		}
		select {
		case <-f.stop:
			if p != nil {
				p.Stop(30 * time.Second)
			}
			return
		case <-exited:
			f.restarts.Add(1)
		}
		select { // a kubelet's restart back-off, short
		case <-f.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

func (f *operatorFleet) replica(i int) *harness.Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replicas[i]
}

// leader returns the index of the live replica that holds the lease, or -1: the one whose log's
// last leader-election line says it acquired the lease (a restarted replica logs that it is
// attempting to acquire it first; a replica that loses the lease exits).
func (f *operatorFleet) leader() int {
	for i := range f.replicas {
		p := f.replica(i)
		if p == nil {
			continue
		}
		select {
		case <-p.Done():
			continue
		default:
		}
		data, _ := os.ReadFile(p.LogPath)
		lines := strings.Split(strings.ToLower(string(data)), "\n")
		for j := len(lines) - 1; j >= 0; j-- {
			if strings.Contains(lines[j], "attempting to acquire leader lease") {
				break
			}
			if strings.Contains(lines[j], "successfully acquired lease") {
				return i
			}
		}
	}
	return -1
}

// holder is the lease's current holder identity ("" when released or missing).
func holder(ctx context.Context) string {
	l := &coordinationv1.Lease{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: leaseName}, l); err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// stopFleet stops every replica and the forwarder and starts the suite's single operator again.
func (f *operatorFleet) stopFleet(ctx context.Context) {
	close(f.stop)
	f.listener.Close()
	f.wg.Wait()
	var err error
	operator, err = cluster.StartOperator(ctx, harness.OperatorOptions{Binary: operatorBinary, Namespace: operatorNamespace,
		ProxyImage: harness.PorticoImageRepository + ":e2e"})
	Expect(err).NotTo(HaveOccurred())
}
