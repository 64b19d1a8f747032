# gkexec: targets are thin; each delegates to a script under test/ or hack/. `make help` lists them.

SHELL := /bin/bash
LOCALCLUSTER := test/localcluster/cluster.sh

.DEFAULT_GOAL := help
.PHONY: help demo test build unit e2e test-figures bench bench-pool bench-session chaos load clean cluster-up cluster-down cluster-status cluster-smoke tf-test tf-fmt tf-providers

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^##@/ { printf "\n%s\n", substr($$0, 5) } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Main

demo: ## Bring the local gVisor cluster up if needed and run a sample in the sandbox
	hack/demo.sh

test: ## Every test: unit, Terraform offline, local cluster up, end-to-end, cluster down
	test/run.sh

##@ Development

build: ## Build bin/gkexec
	go build -o bin/gkexec ./cmd/gkexec

unit: ## Unit tests only (no cluster)
	go vet ./... && go test -race ./...

e2e: ## End-to-end tests only (brings the local cluster up if needed and leaves it as found)
	test/run.sh e2e

bench: ## Scenarios sequential, staggered, burst in every mode against the local cluster's floor; writes docs/performance.md
	hack/bench.sh

bench-pool: ## The warm pool under sustained load: back to back at 1 and 4, paced with the pool sized by demand (docs/performance.md)
	hack/bench-pool.sh

bench-session: ## Benchmark sessions: print(1) in an open session, first streamed chunk, memory (docs/performance.md)
	hack/bench-session.sh

load: ## Load run: 1000 cold executions at concurrency 20 through the runner's queue (docs/performance.md)
	hack/load.sh

test-figures: ## Only e2e stage 15: figures come back from the real sandbox (test/run.sh builds the data-science image)
	E2E_RUN='TestLocalCluster/15_figures' test/run.sh e2e

chaos: ## Fault tier: restart kube-apiserver, kubelet, containerd under executions in flight; nothing may be left
	hack/chaos.sh

clean: ## Remove build outputs (not the cache in ~/.cache/gkexec)
	rm -rf bin

##@ Local cluster (single-node Kubernetes + gVisor; see test/localcluster/README.md)

cluster-up: ## Build what is missing and start the local GKE-Sandbox stand-in (idempotent)
	$(LOCALCLUSTER) up

cluster-down: ## Stop the local cluster and undo its host changes
	$(LOCALCLUSTER) down

cluster-status: ## Show what the local cluster runs
	$(LOCALCLUSTER) status

cluster-smoke: ## Run one pod under gVisor on the local cluster and print what it sees
	$(LOCALCLUSTER) smoke

##@ Terraform and manifests (offline; see test/terraform/ and terraform/README.md)

tf-test: ## fmt check, validate and terraform test of every module and example, and the manifests parity test
	test/terraform/test.sh

tf-fmt: ## Format the .tf and .tftest.hcl files of terraform/ and examples/
	test/terraform/fmt.sh

tf-providers: ## Build the offline providers (kubectl, schema replay) and print the CLI config path
	test/terraform/providers.sh
