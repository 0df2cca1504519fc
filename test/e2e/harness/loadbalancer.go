package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// loadBalancer plays a cloud load balancer for Services of type LoadBalancer (without a
// loadBalancerClass): it gives each one an address from the top of the pod subnet (added to the
// host's bridge), listens there on every TCP port of the Service and forwards each connection to a
// ready endpoint from the Service's EndpointSlices, and writes status.loadBalancer.ingress.
type loadBalancer struct {
	c      *Cluster
	client client.Client

	mu       sync.Mutex
	services map[types.NamespacedName]*lbService
}

type lbService struct {
	ip        netip.Addr
	listeners map[int32]net.Listener // by Service port
	next      atomic.Uint64
}

func (lb *loadBalancer) setup(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("harness-loadbalancer").For(&corev1.Service{}).Complete(lb)
}

func (lb *loadBalancer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	svc := &corev1.Service{}
	err := lb.client.Get(ctx, req.NamespacedName, svc)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	if apierrors.IsNotFound(err) || svc.DeletionTimestamp != nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
		lb.release(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	lb.mu.Lock()
	s := lb.services[req.NamespacedName]
	if s == nil {
		ip, err := lb.c.net.allocLBIP()
		if err != nil {
			lb.mu.Unlock()
			return reconcile.Result{}, err
		}
		s = &lbService{ip: ip, listeners: map[int32]net.Listener{}}
		lb.services[req.NamespacedName] = s
		lb.c.logf("service %s: load balancer address %s", req.NamespacedName, ip)
	}
	want := map[int32]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		if p.Protocol == corev1.ProtocolTCP || p.Protocol == "" {
			want[p.Port] = p
		}
	}
	for port, l := range s.listeners {
		if _, ok := want[port]; !ok {
			l.Close()
			delete(s.listeners, port)
		}
	}
	for port, sp := range want {
		if s.listeners[port] != nil {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(s.ip.String(), strconv.Itoa(int(port))))
		if err != nil {
			lb.mu.Unlock()
			return reconcile.Result{}, fmt.Errorf("service %s: listen: %w", req.NamespacedName, err)
		}
		s.listeners[port] = l
		go lb.serve(l, req.NamespacedName, sp.Name, s)
	}
	ip := s.ip.String()
	lb.mu.Unlock()

	if len(svc.Status.LoadBalancer.Ingress) == 1 && svc.Status.LoadBalancer.Ingress[0].IP == ip {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &corev1.Service{}
		if err := lb.c.Client.Get(ctx, req.NamespacedName, cur); err != nil {
			return client.IgnoreNotFound(err)
		}
		vip := corev1.LoadBalancerIPModeVIP
		cur.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}
		return lb.c.Client.Status().Update(ctx, cur)
	})
}

func (lb *loadBalancer) serve(l net.Listener, key types.NamespacedName, portName string, s *lbService) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go lb.forward(conn, key, portName, s)
	}
}

// forward connects a client to one ready endpoint (round robin), trying the others when a dial fails.
func (lb *loadBalancer) forward(conn net.Conn, key types.NamespacedName, portName string, s *lbService) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	eps := lb.endpoints(ctx, key, portName)
	cancel()
	if len(eps) == 0 {
		return // no ready endpoint: like a cloud LB with no healthy target, the connection is closed
	}
	start := s.next.Add(1)
	var up net.Conn
	for i := range eps {
		c, err := net.DialTimeout("tcp", eps[(int(start)+i)%len(eps)], 2*time.Second)
		if err == nil {
			up = c
			break
		}
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, conn)
	go pipe(conn, up)
	<-done
	<-done
}

// endpoints are the ready addresses of the Service's EndpointSlices for the named port.
func (lb *loadBalancer) endpoints(ctx context.Context, key types.NamespacedName, portName string) []string {
	var slices discoveryv1.EndpointSliceList
	if err := lb.client.List(ctx, &slices, client.InNamespace(key.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: key.Name}); err != nil {
		return nil
	}
	var out []string
	for _, sl := range slices.Items {
		port := int32(-1)
		for _, p := range sl.Ports {
			if p.Name != nil && *p.Name == portName && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	return out
}

func (lb *loadBalancer) release(key types.NamespacedName) {
	lb.mu.Lock()
	s := lb.services[key]
	delete(lb.services, key)
	lb.mu.Unlock()
	if s == nil {
		return
	}
	for _, l := range s.listeners {
		l.Close()
	}
	lb.c.net.releaseLBIP(s.ip)
}

func (lb *loadBalancer) closeAll() {
	lb.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(lb.services))
	for k := range lb.services {
		keys = append(keys, k)
	}
	lb.mu.Unlock()
	for _, k := range keys {
		lb.release(k)
	}
}

// LoadBalancerAddress returns the address the harness gave a LoadBalancer Service ("" if none yet).
func (c *Cluster) LoadBalancerAddress(ns, name string) string {
	c.lb.mu.Lock()
	defer c.lb.mu.Unlock()
	if s := c.lb.services[types.NamespacedName{Namespace: ns, Name: name}]; s != nil {
		return s.ip.String()
	}
	return ""
}
