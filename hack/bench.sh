#!/usr/bin/env bash
# bench.sh (`make bench`): the performance figures of docs/performance.md, on the local cluster.
# Runs gkexec bench sequentially (N=20, C=1), at C=20 (N=40) and at C=50 (N=50), each against the bare-Pod
# floor, and keeps the JSON reports in $GKEXEC_CACHE/bench/. The namespace is created for the run and
# deleted afterwards; the cluster is brought up if needed and left as found. BENCH_SCENARIOS="N:C ..."
# overrides the scenarios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export STAGE_LOGS=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs/bench
# shellcheck source=stages.sh
source hack/stages.sh
export GOFLAGS=${GOFLAGS:--buildvcs=false}
out=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/bench
mkdir -p "$out"

use_cluster "benchmark"
stage build go build -o bin/gkexec ./cmd/gkexec
use_namespace gkexec-bench
ns=$STAGES_NAMESPACE

for sc in ${BENCH_SCENARIOS:-20:1 40:20 50:50}; do
	n=${sc%%:*} c=${sc##*:}
	note "bench: $n executions at concurrency $c (then the floor)"
	bin/gkexec bench -n "$ns" -N "$n" -C "$c" --json >"$out/bench-n$n-c$c.json" 2>"$STAGE_LOGS/bench-n$n-c$c.log" ||
		{ note "bench failed; log: $STAGE_LOGS/bench-n$n-c$c.log"; exit 1; }
	python3 - "$out/bench-n$n-c$c.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
g, f = r["runner"], r.get("floor") or {}
print(f"  gkexec p50 {g['p50']:.2f}s p95 {g['p95']:.2f}s max {g['max']:.2f}s  {g['throughput_per_second']:.2f}/s"
      f"   floor p50 {f.get('p50', 0):.2f}s p95 {f.get('p95', 0):.2f}s  {f.get('throughput_per_second', 0):.2f}/s"
      f"   ratio p50 {r.get('ratio_p50', 0):.2f}x throughput {r.get('ratio_throughput', 0):.2f}x")
print(f"  phases: " + ", ".join(f"{p['name']} {p['mean']:.2f}s" for p in r["phases"]))
print(f"  {r['api_requests_per_execution']:.1f} API requests/execution, watches opened {r['watches_opened']},"
      f" CPU {r['runner_cpu_seconds']:.2f}s, peak RSS {r['peak_rss_mib']:.1f} MiB, failures {r['failures']}")
PY
done
# The warm pool: cold, held-ready and claim-on-request one at a time, paced so that the pool refills
# between executions (and back to back), then a burst as large as the pool and its refill.
# BENCH_WARM="N:PACE ..." overrides the warm scenarios; BENCH_WARM= skips them.
for sc in ${BENCH_WARM-30:3s 40:0s}; do
	n=${sc%%:*} pace=${sc##*:}
	note "bench: warm pool of 4, $n executions per mode, one at a time, arrivals every $pace"
	bin/gkexec bench -n "$ns" -N "$n" --pace "$pace" --floor=false --pool-replicas 4 --modes cold,warm-ready,warm-claim --burst-run \
		--json >"$out/bench-warm-n$n-pace$pace.json" 2>"$STAGE_LOGS/bench-warm-n$n-pace$pace.log" ||
		{ note "bench failed; log: $STAGE_LOGS/bench-warm-n$n-pace$pace.log"; exit 1; }
	python3 - "$out/bench-warm-n$n-pace$pace.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for m in r["order"]:
    x = r["modes"][m]
    g = x["runner"]
    print(f"  {m:<10} {x['warm']:>3}/{x['executions']} warm  p50 {g['p50']*1000:7.1f} ms  p95 {g['p95']*1000:7.1f} ms"
          f"  {x['api_requests_per_execution']:.1f} API requests/execution, failures {x['failures']}")
    print("             phases: " + ", ".join(f"{p['name']} {p['p50']*1000:.1f} ms" for p in x["phases"]))
b = r.get("burst")
if b:
    print(f"  burst of {b['size']}: {b['warm']} warm, p50 {b['p50']*1000:.0f} ms; pool full again {b['refill_seconds']:.2f} s after it started")
PY
done
note "reports in $out"
