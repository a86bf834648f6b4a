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
	@# The bundle is made from the manifests, so after them (also under make -j).
	$(MAKE) --no-print-directory bundle
	@if [ -n "$$(git status --porcelain -- api config bundle bundle.Dockerfile)" ]; then \
		echo "Generated files are stale; run 'make generate manifests bundle' and commit:"; \
		git status --porcelain -- api config bundle bundle.Dockerfile; git --no-pager diff --stat -- api config bundle bundle.Dockerfile; exit 1; fi

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

##@ Demo

.PHONY: demo
demo: envtest-assets ## Run the main job in a lab of network namespaces: a stack, a Service, ARP/NDP from the elected node, failover on kill -9 (needs root).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) run ./hack/demo

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

##@ OLM bundle

OPERATOR_SDK_VERSION ?= v1.42.2
KUSTOMIZE_VERSION ?= v5.6.0
OPERATOR_SDK ?= $(BIN)/operator-sdk-$(OPERATOR_SDK_VERSION)
KUSTOMIZE ?= $(BIN)/kustomize-$(KUSTOMIZE_VERSION)
BUNDLE_VALIDATE ?= $(BIN)/bundle-validate
BUNDLE_VERSION ?= 0.1.0
BUNDLE_CHANNELS ?= alpha
BUNDLE_DEFAULT_CHANNEL ?= alpha
BUNDLE_CSV := bundle/manifests/lbstack.clusterserviceversion.yaml
BUNDLE_WORK := $(BIN)/.bundle
# Fail on any warning but this one: OLM's naming advice (stable, fast,
# candidate) for the alpha channel lbstack publishes while its API is v1alpha1.
BUNDLE_VALIDATE_FLAGS ?= -strict -dockerfile bundle.Dockerfile -ignore-warning 'channel(s) ["alpha"] are not following'
OPERATOR_SDK_LDFLAGS := $(foreach v,Version GitVersion ImageVersion,-X github.com/operator-framework/operator-sdk/internal/version.$(v)=$(OPERATOR_SDK_VERSION)) \
	-X github.com/operator-framework/operator-sdk/internal/version.KubernetesVersion=v1.33.1

.PHONY: bundle
bundle: $(OPERATOR_SDK) $(KUSTOMIZE) $(BUNDLE_VALIDATE) ## Generate the OLM bundle (bundle/, bundle.Dockerfile) from config/ (run `make manifests` first).
	@# operator-sdk $(OPERATOR_SDK_VERSION) cannot parse this PROJECT (written by a newer kubebuilder), so it
	@# runs in $(BUNDLE_WORK) with a PROJECT of only the fields it reads (project name and layout).
	rm -rf bundle bundle.Dockerfile $(BUNDLE_WORK)
	mkdir -p $(BUNDLE_WORK)
	awk '/^(domain|projectName|repo|version):/ {print; next} /^layout:/ {print; l=1; next} l && /^- / {print; next} {l=0}' \
		PROJECT > $(BUNDLE_WORK)/PROJECT
	$(KUSTOMIZE) build config/manifests | (cd $(BUNDLE_WORK) && $(OPERATOR_SDK) generate bundle -q --overwrite --package lbstack \
		--version $(BUNDLE_VERSION) --channels $(BUNDLE_CHANNELS) --default-channel $(BUNDLE_DEFAULT_CHANNEL))
	mv $(BUNDLE_WORK)/bundle $(BUNDLE_WORK)/bundle.Dockerfile .
	@# operator-sdk stamps the time of generation; drop it so the bundle changes only with its input.
	sed -i '/^    createdAt: /d' $(BUNDLE_CSV)
	@if grep -q createdAt $(BUNDLE_CSV); then echo "createdAt left in $(BUNDLE_CSV)"; exit 1; fi
	rm -rf $(BUNDLE_WORK)
	$(BUNDLE_VALIDATE) $(BUNDLE_VALIDATE_FLAGS) bundle

.PHONY: bundle-validate
bundle-validate: $(BUNDLE_VALIDATE) ## Validate bundle/ offline (operator-framework validators, bundle format), failing on warnings.
	$(BUNDLE_VALIDATE) $(BUNDLE_VALIDATE_FLAGS) bundle

$(OPERATOR_SDK): hack/tools/operator-sdk/go.mod hack/tools/operator-sdk/go.sum
	@echo "Building operator-sdk $(OPERATOR_SDK_VERSION) (first time takes ~7 minutes on 2 cores)"
	CGO_ENABLED=0 $(GO) -C hack/tools/operator-sdk build -tags=containers_image_openpgp \
		-ldflags "$(OPERATOR_SDK_LDFLAGS)" -o $@ github.com/operator-framework/operator-sdk/cmd/operator-sdk

$(KUSTOMIZE): hack/tools/operator-sdk/go.mod hack/tools/operator-sdk/go.sum
	CGO_ENABLED=0 $(GO) -C hack/tools/operator-sdk build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(BUNDLE_VALIDATE): hack/tools/bundle-validate/go.mod hack/tools/bundle-validate/go.sum hack/tools/bundle-validate/main.go
	$(GO) -C hack/tools/bundle-validate build -o $@ .
