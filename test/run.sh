#!/usr/bin/env bash
# test/run.sh: the whole test suite, exactly as CI runs it (`make test`, called by .ci/run).
#
#   1. go vet and the unit tests (fake clientset, real python3 for the sandbox entrypoint)
#   2. Terraform offline: fmt, validate, terraform test of every module and example, manifests parity
#   3. the local gVisor cluster, brought up (built on first use, cached in ~/.cache/gkexec), and the optional
#      data-science image for the figures stage (built once, cached)
#   4. the end-to-end suites against it (go test -tags integration ./test/...)
#   5. the fault tier (test/chaos, `make chaos`): kube-apiserver, kubelet and containerd restarted under
#      cold, warm and session executions in flight and calls started during the outage; every result
#      right, the sessions' state kept, nothing left behind
#   6. the cluster brought down again, even on failure, unless it was already up before (or KEEP_CLUSTER=1)
#
# `test/run.sh e2e` runs only steps 3 and 4 (the cluster is left as it is found).
# Environment: GKEXEC_CACHE (default ~/.cache/gkexec), KEEP_CLUSTER=1, E2E_RUN (a go test -run pattern),
# GKEXEC_E2E_DATASCIENCE_IMAGE (set: use that image for stage 15; set and empty: skip the stage).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/test
# shellcheck source=../hack/stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}

cluster=test/localcluster/cluster.sh
was_up=false
if "$cluster" status >/dev/null 2>&1; then was_up=true; fi
cleanup() {
	local rc=$?
	# What the node looked like when a suite failed (taints, pressure), before it is brought down.
	[ "$rc" -eq 0 ] || "$cluster" status 2>&1 | sed 's/^/  cluster: /' || true
	if [ "$was_up" = false ] && [ "${KEEP_CLUSTER:-}" != 1 ]; then
		stage cluster-down "$cluster" down || rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		note "all tests passed"
	else
		stages_failure_digest
		note "tests FAILED (exit $rc); logs: $STAGE_LOGS"
	fi
	exit "$rc"
}
trap cleanup EXIT

stage prerequisites hack/install-prereqs.sh
if [ "${1:-all}" != e2e ]; then
	stage vet go vet ./...
	stage_tee unit go test -race -count=1 ./...
	stage_tee terraform test/terraform/test.sh
fi
stage cluster-up "$cluster" up
stage build go build -o bin/gkexec ./cmd/gkexec
# Figures from the real sandbox (e2e stage 15) need the optional data-science image: built once (about
# 2 minutes, cached in $GKEXEC_CACHE/image) and imported; GKEXEC_E2E_DATASCIENCE_IMAGE= (empty) skips the stage.
if [ -z "${GKEXEC_E2E_DATASCIENCE_IMAGE+set}" ]; then
	stage datascience-image "$cluster" image datascience
	export GKEXEC_E2E_DATASCIENCE_IMAGE=localhost/gkexec-datascience:local
fi
export GKEXEC_E2E_KUBECONFIG GKEXEC_BIN
GKEXEC_E2E_KUBECONFIG=$("$cluster" kubeconfig)
GKEXEC_BIN=$PWD/bin/gkexec
stage_tee e2e go test -tags integration -count=1 -timeout 50m ${E2E_RUN:+-run "$E2E_RUN"} $(go list -tags integration ./test/... | grep -v -e /test/parity -e /test/tfprovider)
if [ "${1:-all}" != e2e ]; then
	# The fault tier restarts the cluster's daemons, so it runs last, after every suite that needs them steady.
	KUBECONFIG=$GKEXEC_E2E_KUBECONFIG stage_tee faults go test -tags chaos -count=1 -v -timeout 20m ./test/chaos/
fi
