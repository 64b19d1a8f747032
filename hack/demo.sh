#!/usr/bin/env bash
# demo.sh (`make demo`): bring the local gVisor cluster up if needed, build gkexec and run a sample in
# the sandbox that shows where it runs. The cluster stays up afterwards (`make cluster-down` stops it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/demo
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}

stage cluster-up test/localcluster/cluster.sh up
stage build go build -o bin/gkexec ./cmd/gkexec
kubeconfig=$(test/localcluster/cluster.sh kubeconfig)
note "running examples/hello/hello.py in a gVisor sandbox: bin/gkexec run --kubeconfig $kubeconfig examples/hello/hello.py"
exec bin/gkexec run --kubeconfig "$kubeconfig" examples/hello/hello.py
