#!/usr/bin/env bash
# bench-pool.sh (`make bench-pool`): the warm pool under sustained load, on the local cluster — the runs
# whose figures docs/performance.md gives under "The warm pool under sustained load" (issue 21):
#
#   1. back to back, one at a time, a pool of 4: cold, warm held ready, warm claimed on request, then the
#      floor; and where the attach's time goes (--attach-profile) — warm p95 against the cold p95 of the run;
#   2. back to back, four at a time, a pool of 4: the same modes;
#   3. paced below the node's refill rate (one every BENCH_PACE), the pool sized by demand from a minimum
#      of 1 (--pool-autoscale): the share that runs warm.
#
# Each report (JSON) and its text go to $GKEXEC_CACHE/bench/pool-*.{json,txt}, with the load average before
# and after each run (the machine is shared: read the figures with it). The namespace is created for the
# run and deleted afterwards; the cluster is brought up if needed and left as found.
#
#   BENCH_N      executions per mode (default 100)
#   BENCH_PACE   the arrivals of run 3 (default 3s)
#   BENCH_RUNS   which runs (default "1 2 3")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/bench-pool
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}
out=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/bench
mkdir -p "$out"
n=${BENCH_N:-100}
pace=${BENCH_PACE:-3s}

use_cluster "pool benchmark"
stage build go build -o bin/gkexec ./cmd/gkexec
use_namespace gkexec-bench-pool
ns=$STAGES_NAMESPACE
trap 'rc=$?; "$KUBECTL" delete priorityclass "gkexec-warm-pool-$ns" --ignore-not-found >/dev/null 2>&1 || true; (exit $rc); stages_leave_cluster' EXIT

# run NAME ARGS...: one gkexec bench run, its JSON and text kept, the load average around it.
run() {
	local name=$1 rc=0
	shift
	note "bench-pool $name: $*; load $(cut -d' ' -f1-3 /proc/loadavg)"
	{
		echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
		bin/gkexec bench -n "$ns" "$@" --json >"$out/pool-$name.json" 2>"$STAGE_LOGS/pool-$name.log" || rc=$?
		echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$out/pool-$name.txt"
	[ -s "$out/pool-$name.json" ] || { note "bench-pool $name failed; log: $STAGE_LOGS/pool-$name.log"; return 1; }
	[ "$rc" -eq 0 ] || note "bench-pool $name: some executions failed (exit $rc); log: $STAGE_LOGS/pool-$name.log"
	note "bench-pool $name done; load $(cut -d' ' -f1-3 /proc/loadavg)"
}

for r in ${BENCH_RUNS:-1 2 3}; do
	case $r in
	1) run back-to-back-c1 -N "$n" -C 1 --pool-replicas 4 --modes cold,warm-ready,warm-claim --attach-profile 20 ;;
	2) run back-to-back-c4 -N "$n" -C 4 --pool-replicas 4 --modes cold,warm-ready,warm-claim ;;
	3) run paced-min1 -N "$n" --pace "$pace" --pool-replicas 4 --pool-autoscale --pool-min 1 --modes warm-ready,warm-claim --floor=false ;;
	*) note "bench-pool: no run $r"; exit 2 ;;
	esac
done
note "reports in $out/pool-*"
