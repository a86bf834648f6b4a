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
HELM_VERSION ?= v3.22.0

CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
HELM ?= $(BIN)/helm-$(HELM_VERSION)
ENVTEST_ASSETS ?= $(BIN)/envtest/k8s-$(KUBERNETES_VERSION)-etcd-$(ETCD_VERSION)
KUBE_APISERVER := $(ENVTEST_ASSETS)/kube-apiserver
ETCD := $(ENVTEST_ASSETS)/etcd
# The real-node cluster's components (hack/cluster), from the same pinned module.
KUBE_BIN ?= $(BIN)/k8s-$(KUBERNETES_VERSION)
KUBE_NODE_COMPONENTS := kubelet kube-proxy kube-controller-manager kube-scheduler kubectl
KUBE_NODE_BINS := $(addprefix $(KUBE_BIN)/,$(KUBE_NODE_COMPONENTS))
KUBE_MINOR := $(word 2,$(subst ., ,$(KUBERNETES_VERSION)))
KUBE_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(KUBERNETES_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBERNETES_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$(KUBE_MINOR)

IMG ?= ghcr.io/lbstack/lbstack:dev
# -count=1: the end-to-end tests depend on the machine, not only on their inputs; never cache them.
TEST_FLAGS ?= -count=1
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 5m
# How long `make chaos` churns and injects faults.
CHAOS_DURATION ?= 10m

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
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook manifests, and the API reference docs/reference/api.md.
	rm -f config/crd/bases/*.yaml
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	@# Not paths=./...: controller-gen also loads the nested tool modules under hack/tools.
	$(CONTROLLER_GEN) rbac:roleName=operator webhook paths="./api/...;./cmd/...;./controllers/...;./internal/...;./speaker/...;./webhooks/..." \
		output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	$(GO) run ./hack/crdref -crds config/crd/bases -out docs/reference/api.md

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when a generated file is stale.
	@# The bundle is made from the manifests, so after them (also under make -j).
	$(MAKE) --no-print-directory bundle
	$(MAKE) --no-print-directory chart
	@if [ -n "$$(git status --porcelain -- api config bundle bundle.Dockerfile catalog catalog.Dockerfile charts docs/reference)" ]; then \
		echo "Generated files are stale; run 'make generate manifests bundle chart' and commit:"; \
		git status --porcelain -- api config bundle bundle.Dockerfile catalog catalog.Dockerfile charts docs/reference; git --no-pager diff --stat -- api config bundle bundle.Dockerfile catalog catalog.Dockerfile charts docs/reference; exit 1; fi

.PHONY: chart
chart: ## Generate the Helm chart's CRDs and files/generated.yaml (RBAC, webhooks, operator pod) from config/ (run `make manifests` first).
	$(GO) run ./hack/chartgen

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
build: ## Build the lbstack binary and the kubectl plugin (kubectl-lbstack) into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/lbstack ./cmd/lbstack
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kubectl-lbstack ./cmd/kubectl-lbstack

.PHONY: krew
krew: ## Cross-build kubectl-lbstack release archives into bin/krew/ and write their krew manifest (bin/krew/lbstack.yaml; copy it to plugins/ for a release).
	$(GO) run ./hack/krew -go $(GO) -version $(BUNDLE_VERSION) -out $(BIN)/krew

# OCI image archives, written without a registry or a Docker daemon and byte
# for byte reproducible (SOURCE_DATE_EPOCH moves the timestamps from Unix 0).
# Load one with `ctr -n k8s.io images import FILE` (--all-platforms keeps the
# other architectures' blobs too).
IMAGES ?= $(BIN)/images

.PHONY: image
image: ## Build the lbstack image (IMG, default ghcr.io/lbstack/lbstack:dev) for linux/amd64 and linux/arm64 into bin/images/lbstack.tar.
	$(GO) run ./hack/image -go $(GO) -image lbstack -ref $(IMG) -arch amd64,arm64 -bin-dir $(BIN)/image -out $(IMAGES)/lbstack.tar

.PHONY: test-images
test-images: ## Build the real-cluster tests' images lbstack.test/echo:v1 and lbstack.test/pause:v1 for this machine into bin/images/.
	$(GO) run ./hack/image -go $(GO) -image echo -arch host -bin-dir $(BIN)/image -out $(IMAGES)/echo.tar
	$(GO) run ./hack/image -go $(GO) -image pause -arch host -bin-dir $(BIN)/image -out $(IMAGES)/pause.tar

##@ Demo

.PHONY: prerequisites
prerequisites: ## Install the Debian packages the tests and the demo use (as root), or list what is missing.
	hack/prerequisites.sh

.PHONY: require-prerequisites
require-prerequisites:
	hack/prerequisites.sh --require

.PHONY: demo
demo: require-prerequisites kube-assets image test-images ## The main job on real kubelet nodes: install with kubectl, layer 2 and BGP, failover as the client sees it (needs root).
	$(GO) run ./hack/demo

.PHONY: cluster
cluster: require-prerequisites kube-assets image test-images ## Bring up the real-node test cluster and keep it until Ctrl-C (needs root).
	$(GO) run ./hack/cluster

##@ Test

.PHONY: envtest-assets
envtest-assets: $(KUBE_APISERVER) $(ETCD) ## Build kube-apiserver and etcd for envtest (cached in bin/).

# The real-node cluster test runs after the other packages, alone: it needs
# both cores, and the labs take turns on the host's 198.51.100.0/24 leg.
REALCLUSTER_PKG := ./test/realcluster
TEST_TIMEOUT ?= 40m

.PHONY: test
test: prerequisites lint envtest-assets kube-assets image test-images $(HELM) ## Run every test (real kube-apiserver and etcd, real kubelet nodes), then list what was skipped for a missing prerequisite.
	@rm -f $(BIN)/.test-rc
	{ KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) HELM=$(HELM) $(GO) test -json -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) \
		$$($(GO) list ./... | grep -v '/test/realcluster$$') || echo $$? >> $(BIN)/.test-rc; \
	  KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) HELM=$(HELM) $(GO) test -json -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(REALCLUSTER_PKG) || echo $$? >> $(BIN)/.test-rc; \
	} | $(GO) run ./hack/testsummary
	@if [ -s $(BIN)/.test-rc ]; then echo "go test failed"; exit 1; fi

.PHONY: chaos
chaos: envtest-assets kube-assets image test-images ## Chaos on the real nodes: 10 min of Service churn and every fault (CHAOS_DURATION); prints the table, fails on any violation.
	CI=true KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) LBSTACK_CHAOS_DURATION=$(CHAOS_DURATION) LBSTACK_CHAOS_FULL=1 \
		$(GO) test -count=1 -v -timeout 60m -run '^TestChaos$$' $(REALCLUSTER_PKG)

.PHONY: fuzz
fuzz: ## Fuzz every parser of untrusted input, FUZZTIME (default 5m) per target; crashers land in testdata/fuzz/.
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: bench
bench: envtest-assets kube-assets image test-images $(HELM) ## Run the benchmarks.
	@# One package at a time: benchmarks measure the machine, and the labs take turns.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) HELM=$(HELM) $(GO) test -p 1 -timeout $(TEST_TIMEOUT) -run '^$$' -bench . -benchmem ./...

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/.controller-gen $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.controller-gen/controller-gen $@ && rmdir $(BIN)/.controller-gen

$(KUBE_APISERVER): hack/tools/kubernetes/go.mod hack/tools/kubernetes/go.sum
	@echo "Building kube-apiserver $(KUBERNETES_VERSION) (first time: part of the ≈ 13 minutes all Kubernetes binaries take on 2 cores)"
	mkdir -p $(ENVTEST_ASSETS)
	CGO_ENABLED=0 $(GO) -C hack/tools/kubernetes build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

.PHONY: kube-assets
kube-assets: envtest-assets $(KUBE_NODE_BINS) ## Build kubelet, kube-proxy, kube-controller-manager, kube-scheduler and kubectl for the real-node cluster (cached in bin/).

$(KUBE_BIN)/%: hack/tools/kubernetes/go.mod hack/tools/kubernetes/go.sum
	@echo "Building $* $(KUBERNETES_VERSION)"
	mkdir -p $(KUBE_BIN)
	CGO_ENABLED=0 $(GO) -C hack/tools/kubernetes build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/$*

$(ETCD): hack/tools/etcd/go.mod hack/tools/etcd/go.sum hack/tools/etcd/main.go
	@echo "Building etcd $(ETCD_VERSION)"
	mkdir -p $(ENVTEST_ASSETS)
	$(GO) -C hack/tools/etcd build -o $@ .

# helm's release build stamps its version and the Kubernetes version of its
# client-go, which `helm template` and `helm lint` assume (1.20 otherwise,
# below the chart's kubeVersion).
HELM_K8S_MINOR = $(word 2,$(subst ., ,$(shell $(GO) -C hack/tools/helm list -m -f '{{.Version}}' k8s.io/client-go)))
HELM_LDFLAGS = -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,lint/rules chartutil,-X helm.sh/helm/v3/pkg/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$(p).k8sVersionMinor=$(HELM_K8S_MINOR))

.PHONY: helm
helm: $(HELM) ## Build the pinned helm into bin/ (for the chart and its tests).

$(HELM): hack/tools/helm/go.mod hack/tools/helm/go.sum
	@echo "Building helm $(HELM_VERSION)"
	CGO_ENABLED=0 $(GO) -C hack/tools/helm build -trimpath -ldflags "$(HELM_LDFLAGS)" -o $@ helm.sh/helm/v3/cmd/helm

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
# The file-based catalog (catalog/, catalog.Dockerfile) refers to the bundle by
# this image; `make catalog BUNDLE_IMG=...` for another registry (not to commit).
BUNDLE_IMG ?= ghcr.io/lbstack/lbstack-bundle:v$(BUNDLE_VERSION)
CATALOG ?= $(BIN)/catalog
CATALOG_FLAGS ?= -image $(BUNDLE_IMG)
OPERATOR_SDK_LDFLAGS := $(foreach v,Version GitVersion ImageVersion,-X github.com/operator-framework/operator-sdk/internal/version.$(v)=$(OPERATOR_SDK_VERSION)) \
	-X github.com/operator-framework/operator-sdk/internal/version.KubernetesVersion=v1.33.1

.PHONY: bundle
bundle: $(OPERATOR_SDK) $(KUSTOMIZE) $(BUNDLE_VALIDATE) $(CATALOG) ## Generate the OLM bundle (bundle/, bundle.Dockerfile) and its catalog (catalog/, catalog.Dockerfile) from config/ (run `make manifests` first).
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
	@# operator-sdk drops spec.relatedImages (it writes them only with --use-image-digests, which
	@# pulls). One image runs the operator, the controller and the speakers: list it, so
	@# disconnected installs mirror it.
	img=$$(awk '$$1 == "image:" {print $$2; exit}' $(BUNDLE_CSV)); test -n "$$img"; \
		printf '  relatedImages:\n  - image: %s\n    name: lbstack\n' "$$img" >> $(BUNDLE_CSV)
	rm -rf $(BUNDLE_WORK)
	$(BUNDLE_VALIDATE) $(BUNDLE_VALIDATE_FLAGS) bundle
	$(CATALOG) $(CATALOG_FLAGS)

.PHONY: bundle-validate
bundle-validate: $(BUNDLE_VALIDATE) ## Validate bundle/ offline (operator-framework validators, bundle format), failing on warnings.
	$(BUNDLE_VALIDATE) $(BUNDLE_VALIDATE_FLAGS) bundle

# The file-based catalog of the bundle, rendered and validated offline with
# operator-registry's own code (what `opm render` and `opm validate` run).
.PHONY: catalog
catalog: $(CATALOG) ## Generate the file-based catalog (catalog/lbstack/catalog.yaml, catalog.Dockerfile) from bundle/ offline, then validate it.
	$(CATALOG) $(CATALOG_FLAGS)

.PHONY: catalog-validate
catalog-validate: $(CATALOG) ## Validate catalog/ offline as `opm validate` does, and fail when it is stale with bundle/.
	$(CATALOG) $(CATALOG_FLAGS) -validate

$(OPERATOR_SDK): hack/tools/operator-sdk/go.mod hack/tools/operator-sdk/go.sum
	@echo "Building operator-sdk $(OPERATOR_SDK_VERSION) (first time takes ~7 minutes on 2 cores)"
	CGO_ENABLED=0 $(GO) -C hack/tools/operator-sdk build -tags=containers_image_openpgp \
		-ldflags "$(OPERATOR_SDK_LDFLAGS)" -o $@ github.com/operator-framework/operator-sdk/cmd/operator-sdk

$(KUSTOMIZE): hack/tools/operator-sdk/go.mod hack/tools/operator-sdk/go.sum
	CGO_ENABLED=0 $(GO) -C hack/tools/operator-sdk build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(BUNDLE_VALIDATE): hack/tools/bundle-validate/go.mod hack/tools/bundle-validate/go.sum hack/tools/bundle-validate/main.go
	$(GO) -C hack/tools/bundle-validate build -o $@ .

# operator-registry's render pulls in go-sqlite3 (cgo) and containers/image
# (gpgme, cgo, unless containers_image_openpgp): build without cgo, as operator-sdk.
$(CATALOG): hack/tools/catalog/go.mod hack/tools/catalog/go.sum $(filter-out %_test.go,$(wildcard hack/tools/catalog/*.go))
	CGO_ENABLED=0 $(GO) -C hack/tools/catalog build -tags=containers_image_openpgp -o $@ .
