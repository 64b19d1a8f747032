#!/usr/bin/env bash
# chaos.sh (`make chaos`): the fault tier on the local cluster (test/chaos). For each of kube-apiserver,
# kubelet and containerd: 5 executions in flight, the daemon restarted under them
# (test/localcluster/cluster.sh restart), then every result must be right and nothing left behind by the
# runner's own retries, without `gkexec gc`. Brings the cluster up if needed and leaves it as found.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/chaos
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}

use_cluster "fault tier"
stage_tee faults go test -tags chaos -count=1 -v -timeout 20m ./test/chaos/
