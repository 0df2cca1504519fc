# Portico Makefile. Every tool is built from the Go module proxy into bin/; nothing is downloaded
# from anywhere else. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Tool versions, pinned.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
K8S_VERSION ?= v1.37.1
ETCD_VERSION ?= v3.7.3
CERT_MANAGER_CONTROLLER_VERSION ?= v1.11.5

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
CONTROL_PLANE_DIR := $(LOCALBIN)/control-plane
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
	$(CONTROLLER_GEN) rbac:roleName=portico-operator crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: thirdparty-crds
thirdparty-crds: ## Copy the Gateway API standard and cert-manager CRDs from their Go modules (versions from go.mod).
	@hack/thirdparty-crds.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files are stale, code is unformatted or vet complains.
	@echo ">> checking generated files are up to date"
	@if [ -n "$$(git status --porcelain -- api config)" ]; then \
		echo "generated files are out of date; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config; git --no-pager diff --stat -- api config; exit 1; fi
	@echo ">> checking gofmt"
	@unformatted=$$(gofmt -s -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@echo ">> go vet"
	$(GO) vet ./...

.PHONY: test
test: verify control-plane ## Everything CI runs: generated files, gofmt, vet, unit and envtest suites with -race.
	@echo ">> go test (unit + envtest against $(KUBEBUILDER_ASSETS))"
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Unit tests only (no control plane).
	PORTICO_SKIP_ENVTEST=1 $(GO) test $(GOTEST_FLAGS) ./...

.PHONY: bench
bench: ## Routing benchmarks.
	$(GO) test -run='^$$' -bench=. -benchmem ./dataplane/...

##@ Build

.PHONY: build
build: ## Build bin/portico.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/portico ./cmd/portico

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
