// Package adversarial holds the short tier of the adversarial suite of issue 13. "Protocol and
// parser": the complete data plane started on 127.0.0.1 by dataplanetest, attacked with raw
// connections and HTTP/2 frames, with upstreams that record what reached them. "Tenancy"
// (tenancy_*_test.go): a real API server and the operator in-process, feeding cluster-mode proxies
// over gRPC. It runs in `make test`; PORTICO_ADVERSARIAL_LONG=1 selects the long-tier sizes
// (docs/reliability.md).
package adversarial
