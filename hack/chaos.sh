#!/usr/bin/env bash
# chaos.sh (`make chaos`): the fault tier on the local cluster (test/chaos). For each of kube-apiserver,
# kubelet and containerd, the daemon restarted (test/localcluster/cluster.sh restart) under what users run:
# cold and warm one-shot executions (one through a sandbox held ready) and an execution in a warm and in a
# cold session, all in flight, and calls started while it is down. Every execution in flight must return
# its real result, a call started during the outage its result or a clean retryable error, the sessions
# their state, and nothing may be left once the runners close, without `gkexec gc`. About 1.5 minutes.
# Brings the cluster up if needed and leaves it as found.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/chaos
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}

use_cluster "fault tier"
stage_tee faults go test -tags chaos -count=1 -v -timeout 20m ./test/chaos/
