#!/usr/bin/env bash
# bench.sh (`make bench`): the figures of docs/performance.md, on the local cluster, measured the way the
# public sandbox benchmarks measure (computesdk/benchmarks): the scenarios sequential (100 executions, one at
# a time), staggered (100, one every 200 ms) and burst (100 at once), each in the modes cold, warm held
# ready, warm claimed on request and session, then as bare Pods (the floor) in the same run; p50/p95/p99
# and the time to the first streamed chunk of output. A warm pool of 4 is made for each run, at the
# lower PriorityClass the sandbox-namespace module and manifests give it. The table, with the machine it
# ran on, replaces the generated section of docs/performance.md (hack/bench-doc); the JSON reports stay
# in $GKEXEC_CACHE/bench/. The namespace is created for the run and deleted afterwards; the cluster is
# brought up if needed and left as found.
#
#   BENCH_N          executions per mode (default 100)
#   BENCH_SCENARIOS  scenarios to run (default "sequential staggered burst")
#   BENCH_MODES      modes (default cold,warm-ready,warm-claim,session)
#   BENCH_POOL       warm pool size (default 4; 0: no pool, cold only)
#   BENCH_DOC        the document to write (default docs/performance.md; empty: only print the table)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/bench
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}
out=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/bench
mkdir -p "$out"
n=${BENCH_N:-100}
pool=${BENCH_POOL:-4}
modes=${BENCH_MODES:-cold,warm-ready,warm-claim,session}
[ "$pool" -gt 0 ] || modes=cold
doc=${BENCH_DOC-docs/performance.md}

use_cluster "benchmark"
stage build go build -o bin/gkexec ./cmd/gkexec
use_namespace gkexec-bench
ns=$STAGES_NAMESPACE
# The pool's PriorityClass is cluster-wide: gkexec bench deletes it after each run; this catches a run
# cut short, then leaves the cluster as found.
trap 'rc=$?; "$KUBECTL" delete priorityclass "gkexec-warm-pool-$ns" --ignore-not-found >/dev/null 2>&1 || true; (exit $rc); stages_leave_cluster' EXIT

# The machine, as docs/performance.md gives it: the local cluster's one node is this host.
node_info() { "$KUBECTL" get nodes -o jsonpath="{.items[0].status.nodeInfo.$1}"; }
machine="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs,\
 $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r);\
 Kubernetes $(node_info kubeletVersion), $(node_info containerRuntimeVersion), gVisor (runsc), $("$KUBECTL" get nodes --no-headers | wc -l) node"
changes=""
[ -z "$(git status --porcelain -- . ':!docs/performance.md' 2>/dev/null)" ] || changes=" with uncommitted changes"
when="$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$changes"

reports=()
failed=0
for sc in ${BENCH_SCENARIOS:-sequential staggered burst}; do
	pool_flags=()
	[ "$pool" -gt 0 ] && pool_flags=(--pool-replicas "$pool")
	# The burst scenario ends with a burst as large as the pool, and times its refill.
	[ "$sc" = burst ] && [ "$pool" -gt 0 ] && pool_flags+=(--burst-run)
	note "bench: scenario $sc, $n executions per mode ($modes), then the floor"
	rc=0
	bin/gkexec bench -n "$ns" --scenario "$sc" -N "$n" --modes "$modes" "${pool_flags[@]}" --json \
		>"$out/bench-$sc.json" 2>"$STAGE_LOGS/bench-$sc.log" || rc=$?
	# Executions that failed still leave a report (the table names them); an error that stopped the
	# run leaves none.
	[ -s "$out/bench-$sc.json" ] || { note "bench failed; log: $STAGE_LOGS/bench-$sc.log"; exit 1; }
	[ "$rc" -eq 0 ] || { note "bench: some executions failed (exit $rc); log: $STAGE_LOGS/bench-$sc.log"; failed=1; }
	reports+=("$out/bench-$sc.json")
done
go run ./hack/bench-doc -doc "$doc" -machine "$machine" -run "$when" "${reports[@]}"
note "reports in $out${doc:+; table written to $doc}"
exit "$failed"
