#!/usr/bin/env bash
# bench-session.sh (`make bench-session`): sessions on the local cluster (test/e2e BenchmarkSession): print(1)
# in an open session (p50, p95), the time from Execute to the first streamed chunk, the interpreter's RSS and
# the runner's heap per open session. Makes its own namespace with a warm pool of 2 and deletes it. Brings the
# cluster up if needed and leaves it as found. BENCH_N executions (default 200).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/bench-session
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}

use_cluster "session benchmark"
stage_tee bench-session go test -tags integration -run '^$' -bench BenchmarkSession -benchtime "${BENCH_N:-200}x" -count 1 ./test/e2e/
