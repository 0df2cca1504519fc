// Package harness runs a Kubernetes platform on one machine without a kubelet, container runtime or
// cloud: a real kube-apiserver, etcd and kube-controller-manager (internal/testenv,
// bin/control-plane), while the harness plays scheduler and kubelet for one Node (pods of known
// images run as local processes, each in its own network namespace with an address on a host
// bridge, with their env, volumes and projected ServiceAccount tokens) and a cloud load balancer
// for Services of type LoadBalancer. Portico's operator runs as a host process next to it
// (Cluster.StartOperator).
//
// The end-to-end suite (test/e2e) and `make dev` (test/e2e/cmd/dev) use it; docs/e2e.md describes
// what is played and what is not. It needs root (ip netns, veth, bind mounts).
//
// Programs using it must call RunRoleIfRequested first in main or TestMain: pods of the echo image
// are the program's own executable.
package harness
