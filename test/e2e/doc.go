// Package e2e is the end-to-end suite: the real control plane, kube-controller-manager and operator,
// proxies and backends as processes run by test/e2e/harness, real HTTP/HTTPS to the proxies'
// load-balancer addresses. Run it with `make test-e2e` (root; see docs/e2e.md).
package e2e
