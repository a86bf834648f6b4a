# lbstack — make targets. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
GO ?= go
export GOFLAGS ?= -buildvcs=false

# Pinned tool and control-plane versions.
CONTROLLER_GEN_VERSION ?= v0.23.0
KUBERNETES_VERSION ?= v1.36.3
ETCD_VERSION ?= v3.6.8

CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
ENVTEST_ASSETS ?= $(BIN)/envtest/k8s-$(KUBERNETES_VERSION)-etcd-$(ETCD_VERSION)
KUBE_APISERVER := $(ENVTEST_ASSETS)/kube-apiserver
ETCD := $(ENVTEST_ASSETS)/etcd

IMG ?= ghcr.io/lbstack/lbstack:dev
TEST_FLAGS ?=

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook manifests.
	rm -f config/crd/bases/*.yaml
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=operator webhook paths=./... \
		output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when a generated file is stale.
	@if [ -n "$$(git status --porcelain -- api config bundle)" ]; then \
		echo "Generated files are stale; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config bundle; git --no-pager diff --stat -- api config bundle; exit 1; fi

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## go vet and gofmt checks.
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

##@ Build

.PHONY: build
build: ## Build the lbstack binary into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/lbstack ./cmd/lbstack

##@ Test

.PHONY: envtest-assets
envtest-assets: $(KUBE_APISERVER) $(ETCD) ## Build kube-apiserver and etcd for envtest (cached in bin/).

.PHONY: test
test: lint envtest-assets ## Run every test against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test $(TEST_FLAGS) ./...

.PHONY: bench
bench: envtest-assets ## Run the benchmarks.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -run '^$$' -bench . -benchmem ./...

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/.controller-gen $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.controller-gen/controller-gen $@ && rmdir $(BIN)/.controller-gen

$(KUBE_APISERVER): hack/tools/kube-apiserver/go.mod hack/tools/kube-apiserver/go.sum
	@echo "Building kube-apiserver $(KUBERNETES_VERSION) (first time takes ~5 minutes on 2 cores)"
	mkdir -p $(ENVTEST_ASSETS)
	$(GO) -C hack/tools/kube-apiserver build -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(ETCD): hack/tools/etcd/go.mod hack/tools/etcd/go.sum hack/tools/etcd/main.go
	@echo "Building etcd $(ETCD_VERSION)"
	mkdir -p $(ENVTEST_ASSETS)
	$(GO) -C hack/tools/etcd build -o $@ .
