#!/usr/bin/env bash
# load.sh (`make load`): the load run of docs/performance.md on the local cluster. LOAD_N executions
# (default 1000) at concurrency LOAD_C (default 20), cold, through one runner whose queue admits at most
# LOAD_IN_FLIGHT (default 10: what the one node fits) sandboxes at once, first come first served. Every
# execution must succeed. The JSON report goes to $GKEXEC_CACHE/bench/load.json. Runs in a namespace of
# its own, deleted afterwards; brings the cluster up if needed and leaves it as found.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/load
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}
out=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/bench
mkdir -p "$out"

use_cluster "load run"
stage build go build -o bin/gkexec ./cmd/gkexec
use_namespace gkexec-load
ns=$STAGES_NAMESPACE

n=${LOAD_N:-1000} c=${LOAD_C:-20} f=${LOAD_IN_FLIGHT:-10}
note "load: $n executions at concurrency $c, at most $f in flight"
bin/gkexec bench -n "$ns" -N "$n" -C "$c" --max-in-flight "$f" --floor=false --no-warm-pool --json >"$out/load.json" 2>"$STAGE_LOGS/load.log" ||
	{ note "load run failed; log: $STAGE_LOGS/load.log"; exit 1; }
python3 - "$out/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["modes"]["cold"]
g = r["runner"]
print(f"  {r['executions']} executions, concurrency {r['concurrency']}: {r['failures']} failed")
print(f"  p50 {g['p50']:.2f}s p95 {g['p95']:.2f}s p99 {g['p99']:.2f}s max {g['max']:.2f}s, {g['throughput_per_second']:.2f}/s")
print("  phases: " + ", ".join(f"{p['name']} p50 {p['p50']:.2f}s p95 {p['p95']:.2f}s" for p in r["phases"]))
PY
note "report in $out/load.json"
