# Portico Makefile. Every tool is built from the Go module proxy into bin/; nothing is downloaded
# from anywhere else. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Tool versions, pinned.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
K8S_VERSION ?= v1.37.1
ETCD_VERSION ?= v3.7.3
CERT_MANAGER_CONTROLLER_VERSION ?= v1.11.5
HELM_VERSION ?= v3.22.0
KUSTOMIZE_VERSION ?= v5.8.2
# protoc-gen-go matches google.golang.org/protobuf in go.mod; protoc itself is Debian's protobuf-compiler.
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.1
# hack/tools.sh (called by the Makefile and by test/packaging) builds these versions.
export HELM_VERSION KUSTOMIZE_VERSION

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
CONTROL_PLANE_DIR := $(LOCALBIN)/control-plane
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
PROTOC_GEN_GO ?= $(LOCALBIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC ?= $(LOCALBIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
export KUBEBUILDER_ASSETS := $(CONTROL_PLANE_DIR)

GO ?= go
GOTEST_FLAGS ?= -race -count=1
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/portico-dev/portico/internal/version.Version=$(VERSION)
IMG ?= ghcr.io/portico-dev/portico:$(VERSION)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen thirdparty-crds ## Generate CRDs and RBAC from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=operator crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@$(MAKE) --no-print-directory chart-sync

.PHONY: chart-sync
chart-sync: ## Copy the CRDs and the operator's ClusterRole rules from config/ into charts/portico; regenerate the Argo CD health ConfigMap.
	@hack/chart-sync.sh
	@hack/argocd-health-cm.sh

.PHONY: thirdparty-crds
thirdparty-crds: ## Copy the Gateway API standard and cert-manager CRDs from their Go modules (versions from go.mod).
	@hack/thirdparty-crds.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: proto
proto: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Generate api/snapshot/v1 from proto/ (needs protoc: apt-get install protobuf-compiler). The output is committed.
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler"; exit 1; }
	protoc -I proto --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) \
		--go_out=. --go_opt=module=github.com/portico-dev/portico \
		--go-grpc_out=. --go-grpc_opt=module=github.com/portico-dev/portico \
		proto/portico/snapshot/v1/snapshot.proto

$(PROTOC_GEN_GO):
	@mkdir -p $(LOCALBIN)/.proto-tools
	GOBIN=$(LOCALBIN)/.proto-tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(LOCALBIN)/.proto-tools/protoc-gen-go $@

$(PROTOC_GEN_GO_GRPC):
	@mkdir -p $(LOCALBIN)/.proto-tools
	GOBIN=$(LOCALBIN)/.proto-tools $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(LOCALBIN)/.proto-tools/protoc-gen-go-grpc $@

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files are stale, code is unformatted or vet complains.
	@echo ">> checking generated files are up to date"
	@if [ -n "$$(git status --porcelain -- api config charts docs/gitops)" ]; then \
		echo "generated files are out of date; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config charts docs/gitops; git --no-pager diff --stat -- api config charts docs/gitops; exit 1; fi
	@echo ">> checking gofmt"
	@unformatted=$$(gofmt -s -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@echo ">> go vet"
	$(GO) vet ./...

.PHONY: test
test: verify control-plane helm kustomize ## Everything CI runs: generated files, gofmt, vet, unit and envtest suites with -race, the end-to-end suite and Gateway API conformance core (root).
	@echo ">> go test (unit + envtest against $(KUBEBUILDER_ASSETS))"
	$(GO) test $(GOTEST_FLAGS) ./...
	@echo ">> end-to-end suite (test/e2e: real control plane, cert-manager, operator and proxies; needs root)"
	@$(MAKE) --no-print-directory test-e2e
	@echo ">> Gateway API conformance, GATEWAY-HTTP core (test/conformance; needs root)"
	@$(MAKE) --no-print-directory test-conformance-core $(if $(CONFORMANCE_DEVIATIONS),CONFORMANCE_FLAGS=--skip-tests=$(CONFORMANCE_DEVIATIONS))

.PHONY: test-unit
test-unit: ## Unit tests only (no control plane).
	PORTICO_SKIP_ENVTEST=1 $(GO) test $(GOTEST_FLAGS) ./...

BENCH_FLAGS ?=

FUZZTIME ?= 10s
FUZZ_TARGETS ?= ./dataplane/requestcheck:FuzzConn ./dataplane/urlpath:FuzzNormalize ./dataplane/routing:FuzzLookup ./dataplane/routing:FuzzCompile

.PHONY: fuzz
fuzz: ## Run every Go fuzz target for FUZZTIME each (default 10s); make test already runs their seed corpora.
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo ">> $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; done

.PHONY: test-adversarial-long
test-adversarial-long: ## Long tier of test/adversarial: 2,000 slowloris connections, every smuggling vector replayed 1,000 times.
	PORTICO_ADVERSARIAL_LONG=1 $(GO) test $(GOTEST_FLAGS) -timeout 20m -v ./test/adversarial/

GOVULNCHECK_VERSION ?= v1.1.4
GOVULNDB ?= https://vuln.go.dev

.PHONY: vulncheck
vulncheck: ## govulncheck ./... (needs the Go module proxy and $(GOVULNDB); fails with a clear message when offline).
	@curl -sS -o /dev/null --max-time 10 $(GOVULNDB)/index/db.json 2>/dev/null || { \
		echo "vulncheck: the vulnerability database $(GOVULNDB) is unreachable (offline?)."; \
		echo "vulncheck: NOT checked. Run 'make vulncheck' where it is reachable, or set GOVULNDB to a mirror (file:// works)."; \
		exit 1; }
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db $(GOVULNDB) ./...

.PHONY: bench
bench: ## Go benchmarks (routing lookup/build, proxy) and the loopback load test against nginx (docs/performance.md).
	$(GO) test -run='^$$' -bench='^(BenchmarkLookup|BenchmarkBuild)$$' -benchmem -count=1 ./dataplane/routing
	$(GO) test -run='^$$' -bench='^BenchmarkProxyHTTP1$$' -benchmem -count=1 ./dataplane/proxy
	$(GO) run ./hack/bench $(BENCH_FLAGS)

.PHONY: bench-deps
bench-deps: ## Install nginx, wrk and h2load (Debian packages) for make bench's comparison.
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light wrk nghttp2-client

.PHONY: bench-profile
bench-profile: ## CPU and allocation profiles of Portico under load, per scenario, into bin/bench-profile.
	$(GO) run ./hack/bench -profile-dir $(LOCALBIN)/bench-profile -repeat 1 $(BENCH_FLAGS)

##@ End to end and local platform (need root: the harness creates network namespaces)

E2E_FLAGS ?= -count=1 -timeout 30m -v

.PHONY: e2e-binaries
e2e-binaries: ## Build kube-apiserver, etcd, kube-controller-manager and the cert-manager controller into bin/control-plane when missing.
	@K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) CERT_MANAGER_CONTROLLER_VERSION=$(CERT_MANAGER_CONTROLLER_VERSION) hack/control-plane.sh etcd kube-apiserver kube-controller-manager cert-manager

.PHONY: test-e2e
test-e2e: e2e-binaries ## End-to-end suite (test/e2e): real control plane, operator and proxy processes, real HTTP (docs/e2e.md).
	PORTICO_E2E=1 $(GO) test ./test/e2e/... $(E2E_FLAGS)

# PORTICO_SOAK_CHURN (a Go duration, default 30m) sets the length of the churn soak; one package, so
# that -v streams the progress (the soak's samples, FIGURE lines) while it runs.
.PHONY: test-soak
test-soak: e2e-binaries ## Long tier of the reliability suite: issue 13's full figures (30 min churn soak, 3,000 routes, 60 s API outage, 5 min full outage; ~90 min, root).
	PORTICO_E2E=1 PORTICO_SOAK=1 $(GO) test ./test/e2e/ -count=1 -timeout 180m -v -ginkgo.v -ginkgo.label-filter=reliability

.PHONY: dev
dev: build e2e-binaries ## The whole platform locally in the foreground, examples/quickstart applied; Ctrl-C stops it.
	$(GO) build -o $(LOCALBIN)/portico-dev ./test/e2e/cmd/dev
	$(LOCALBIN)/portico-dev --portico $(LOCALBIN)/portico

.PHONY: deploy
deploy: kustomize ## Install Portico (config/default) into the cluster of $$KUBECONFIG with kubectl server-side apply.
	@test -n "$$KUBECONFIG" || { echo "deploy: set KUBECONFIG to the cluster to install into"; exit 1; }
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

##@ Build

.PHONY: build
build: ## Build bin/portico.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/portico ./cmd/portico

##@ Packaging (helm and kustomize built from their Go modules, cached by version)

.PHONY: helm
helm: $(HELM) ## Build helm (HELM_VERSION) into bin/ (cold: about a minute; cached in ~/.cache/portico/bin).
$(HELM):
	@hack/tools.sh helm >/dev/null

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize (KUSTOMIZE_VERSION) into bin/ (cold: about 30 s; cached in ~/.cache/portico/bin).
$(KUSTOMIZE):
	@hack/tools.sh kustomize >/dev/null

.PHONY: helm-lint
helm-lint: helm ## helm lint the chart with the default and the all-features values.
	$(HELM) lint --strict charts/portico
	$(HELM) lint --strict charts/portico -f charts/portico/ci/all-features-values.yaml

.PHONY: helm-template
helm-template: helm ## Render the chart (default values) to stdout, CRDs included.
	@$(HELM) template portico charts/portico --namespace portico-system --include-crds --kube-version $(K8S_VERSION)

.PHONY: test-packaging
test-packaging: control-plane helm kustomize ## Chart, kustomize, Dockerfile and GitOps tests only.
	$(GO) test -count=1 ./test/packaging/... ./test/gitops/...

.PHONY: docker-build
docker-build: ## Build the image (needs a container engine, absent on the development machines).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

##@ Local control plane (built from Go modules, cached by version)

.PHONY: control-plane
control-plane: ## Build kube-apiserver and etcd into bin/control-plane (cold: 10-16 min; cached after).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/control-plane.sh etcd kube-apiserver

.PHONY: control-plane-full
control-plane-full: ## Also build kube-controller-manager and the cert-manager controller (for e2e).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) CERT_MANAGER_CONTROLLER_VERSION=$(CERT_MANAGER_CONTROLLER_VERSION) \
		hack/control-plane.sh etcd kube-apiserver kube-controller-manager cert-manager

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	@echo ">> installing controller-gen $(CONTROLLER_TOOLS_VERSION)"
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

##@ Gateway API conformance (needs root; docs/conformance/README.md)

# The official suite (sigs.k8s.io/gateway-api/conformance), its echo-basic backend and coredns are built
# by hack/conformance.sh into ~/.cache/portico/bin (cached by version) and run on the e2e harness
# (instance pconf, 198.51.100.128/25). CONFORMANCE_FLAGS: e.g. --run-test=HTTPRouteSimpleSameNamespace, --keep.
CONFORMANCE_FLAGS ?=

# Core tests skipped by name in make test (docs/conformance/README.md, "Deviations"): none. The core
# passes in full; a name here would be a deliberate, documented deviation.
CONFORMANCE_DEVIATIONS ?=

.PHONY: test-conformance
test-conformance: e2e-binaries ## Gateway API conformance v1.6.3, GATEWAY-HTTP with every extended feature the GatewayClass status lists; report in docs/conformance/.
	@mkdir -p $(LOCALBIN)/conformance
	$(GO) build -o $(LOCALBIN)/conformance/portico-conformance ./test/conformance
	$(LOCALBIN)/conformance/portico-conformance --mode=extended --version=$(VERSION) $(CONFORMANCE_FLAGS)

.PHONY: test-conformance-core
test-conformance-core: e2e-binaries ## Gateway API conformance v1.6.3, GATEWAY-HTTP core tests only (report in bin/conformance/core-report.yaml).
	@mkdir -p $(LOCALBIN)/conformance
	$(GO) build -o $(LOCALBIN)/conformance/portico-conformance ./test/conformance
	$(LOCALBIN)/conformance/portico-conformance --mode=core --version=$(VERSION) $(CONFORMANCE_FLAGS)
