# kubeplane: one way to do each thing. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export KUBECONFIG ?= $(CURDIR)/.kubeplane/kubeconfig

##@ Set-up
.PHONY: venv tools
venv: $(VENV)/.installed ## Create .venv with kubeplane and its dev tools
$(VENV)/.installed: pyproject.toml
	@echo "[venv] installing kubeplane and dev tools into $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

tools: ## Build the pinned toolchain (Kubernetes, etcd, kwok, helm, MinIO) into ~/.cache/kubeplane; bin/ links to it
	@hack/tools.sh

##@ Embedded cluster (kwok control plane + MinIO + operators, no Docker)
.PHONY: up down status restart
up: venv tools ## Start the embedded cluster and the operators (NODES=3)
	@hack/cluster.sh up

down: ## Stop everything `make up` started and delete the cluster
	@hack/cluster.sh down

status: ## What the embedded cluster runs
	@hack/cluster.sh status

restart: venv ## Restart the operators after a code change
	@hack/cluster.sh restart-operators

##@ Development
.PHONY: manifests manifests-check install uninstall run lint typecheck unit integration test demo soak bench bench-replicaset bench-deployment bench-daemonset bench-statefulset bench-job bench-scheduler bench-backup
manifests: venv ## Regenerate crds/ from hack/crd-src/ (pod schemas from the pinned OpenAPI snapshot), and the chart's copy
	@$(PY) hack/gen_crds.py
	@hack/sync-chart-crds.sh

manifests-check: venv ## Fail if crds/ (or the chart's copy) is out of date with hack/crd-src/
	@$(PY) hack/gen_crds.py --check
	@hack/sync-chart-crds.sh --check

install: ## Apply the CRDs to the cluster in KUBECONFIG (owned as the Helm release `kubeplane` would own them)
	@hack/crds.sh apply

uninstall: ## Delete the CRDs (and every kubeplane object) from the cluster in KUBECONFIG
	kubectl delete --ignore-not-found -f crds/

run: venv ## Run the controllers operator in the foreground against KUBECONFIG
	kubeplane run controllers --verbose

lint: venv ## ruff
	@ruff check operators tests bench hack

typecheck: venv ## mypy --strict on operators/
	@mypy

unit: venv ## Unit tests (no cluster)
	@pytest tests/unit -q

integration: venv tools ## Integration tests on the embedded cluster (started if needed)
	@pytest tests/integration -v

test: venv tools ## Everything CI runs: lint, types, unit, integration
	@hack/test.sh

demo: up ## Bring up the embedded cluster and watch a ReplicaSet at work
	@hack/demo.sh

soak: venv tools ## Random seeded faults for SOAK_SECONDS (600) while workloads scale, pods schedule, backups run; counts violations (SOAK_SEED repeats a run)
	@$(PY) -m tests.soak

# 500 replicas twice need more than 3 nodes' 110-pod capacity.
bench: export NODES ?= 12
bench: bench-replicaset bench-deployment bench-scheduler ## Benchmarks against the upstream components (ReplicaSet, Deployment, scheduler), same cluster
bench-replicaset: up ## kubeplane ReplicaSet vs kube-controller-manager: 0 -> 500 replicas
	@$(PY) -m bench.replicaset $(ARGS)
bench-deployment: export NODES ?= 12
bench-deployment: up ## kubeplane Deployment vs kube-controller-manager: a 500-replica rollout, 25%/25%
	@$(PY) -m bench.deployment $(ARGS)
bench-daemonset: up ## kubeplane DaemonSet vs kube-controller-manager: a pod on each of 200 extra KWOK nodes
	@$(PY) -m bench.daemonset $(ARGS)
bench-statefulset: up ## kubeplane StatefulSet vs kube-controller-manager: 0 -> 200 replicas, Parallel (ARGS: --policy OrderedReady, --claims)
	@$(PY) -m bench.statefulset $(ARGS)
bench-job: up ## kubeplane Job vs kube-controller-manager: 1000 completions at parallelism 100
	@$(PY) -m bench.job $(ARGS)
bench-scheduler: up ## kubeplane-scheduler vs kube-scheduler (default and lifted client limits): 2000 pods, 200 extra KWOK nodes
	@$(PY) -m bench.scheduler
bench-backup: up ## kubeplane backup/restore vs Velero 1.17 (builds Velero from Go modules): 10,000 objects
	@$(PY) -m bench.backup

##@ kind (real nodes: kubelet, containerd, flannel; needs Docker)
.PHONY: kind-images kind-up kind-deploy kind-down kind-status e2e conformance
kind-images: ## Build the kind node image and every image it preloads, offline (cached by content)
	@hack/kind/images.sh

kind-up: venv ## Create kind cluster `kubeplane` (1 control plane + 2 workers) with flannel; DROP_IN=1: kubeplane deployed in drop-in mode
	@hack/kind/cluster.sh up

kind-deploy: ## Build the operator image, kind-load it, helm install kubeplane with MinIO and a default BSL
	@hack/kind/cluster.sh deploy

kind-down: ## Delete the kind cluster
	@hack/kind/cluster.sh down

kind-status: ## Nodes and pods of the kind cluster
	@hack/kind/cluster.sh status

e2e: venv ## End-to-end tests on kind (cluster created and kubeplane deployed if needed)
	@hack/e2e.sh

conformance: venv ## Upstream's own tests ([sig-apps] [Conformance], [Feature:HPA]) for the controllers kubeplane replaces, on kind in drop-in mode
	@hack/conformance.sh

##@ Help
.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)}' $(MAKEFILE_LIST)

##@ Helm chart
.PHONY: chart-crds chart-lint
chart-crds: ## Copy crds/ into charts/kubeplane/files/crds/ (run after `make manifests`)
	@hack/sync-chart-crds.sh

chart-lint: tools ## helm lint --strict charts/kubeplane (defaults and everything on); fail if its CRDs drifted
	@hack/sync-chart-crds.sh --check
	@helm lint --strict charts/kubeplane
	@helm lint --strict charts/kubeplane --set operators.scheduler.enabled=true,operators.backup.enabled=true,minio.enabled=true,minio.persistence.enabled=true,backupStorageLocation.create=true,metrics.serviceMonitor.enabled=true,networkPolicy.enabled=true

##@ Image
.PHONY: image
image: ## Build the operator image kubeplane:<version> (base from debootstrap here; BASE_IMAGE=python:3.11-slim-bookworm with a registry)
	@hack/image.sh
