#!/usr/bin/env bash
# load.sh (`make load`): the load run of docs/performance.md on the local cluster. LOAD_N executions
# (default 1000) at concurrency LOAD_CONCURRENCY (or LOAD_C; default 20), cold, through one runner whose
# queue admits sandboxes first come, first served. LOAD_QUOTA chooses its bound:
#   (unset)   at most LOAD_IN_FLIGHT (default 10: what the one node fits) in flight, set explicitly
#   project   the project's ResourceQuota (manifests/base/resourcequota.yaml) in the namespace; the runner
#             derives its bound from it
#   none      no ResourceQuota and no explicit bound: the runner learns the node's room itself
# e.g. LOAD_N=200 LOAD_CONCURRENCY=20 LOAD_QUOTA=none hack/load.sh. LOAD_VERBOSE=1 keeps the runner's debug
# log (the queue's bound as it changes) in the load log. Every execution must succeed, and nothing may be
# left in the namespace afterwards. The JSON report goes to $GKEXEC_CACHE/bench/load.json. Runs in a
# namespace of its own, deleted afterwards; brings the cluster up if needed and leaves it as found.
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

n=${LOAD_N:-1000} c=${LOAD_CONCURRENCY:-${LOAD_C:-20}} f=${LOAD_IN_FLIGHT:-10}
bound=(--max-in-flight "$f")
case ${LOAD_QUOTA:-} in
"") note "load: $n executions at concurrency $c, at most $f in flight" ;;
project)
	sed "s/namespace: gkexec$/namespace: $ns/" manifests/base/resourcequota.yaml | "$KUBECTL" apply -f - >/dev/null
	bound=()
	note "load: $n executions at concurrency $c, bounded by the project's ResourceQuota"
	;;
none)
	bound=()
	note "load: $n executions at concurrency $c, no ResourceQuota: the runner learns the room"
	;;
*) note "LOAD_QUOTA=$LOAD_QUOTA: want unset, project or none"; exit 2 ;;
esac
verbose=()
[ "${LOAD_VERBOSE:-}" = 1 ] && verbose=(--verbose)
rc=0
bin/gkexec bench "${verbose[@]}" -n "$ns" -N "$n" -C "$c" "${bound[@]}" --floor=false --no-warm-pool --json >"$out/load.json" 2>"$STAGE_LOGS/load.log" || rc=$?
[ -s "$out/load.json" ] || { note "load run failed; log: $STAGE_LOGS/load.log"; exit 1; }
# Nothing left: the runner deletes each Job and ConfigMap before Execute returns; the garbage collector
# takes the Pods after.
left=$("$KUBECTL" -n "$ns" get jobs,configmaps -o name | grep -v '^configmap/kube-root-ca.crt$' || true)
for _ in $(seq 60); do
	pods=$("$KUBECTL" -n "$ns" get pods -o name)
	[ -z "$pods" ] && break
	sleep 1
done
left=$(printf '%s\n%s' "$left" "$pods" | sed '/^$/d')
python3 - "$out/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["modes"]["cold"]
g = r["runner"]
print(f"  {r['executions']} executions, concurrency {r['concurrency']}: {r['failures']} failed")
print(f"  p50 {g['p50']:.2f}s p95 {g['p95']:.2f}s p99 {g['p99']:.2f}s max {g['max']:.2f}s, {g['throughput_per_second']:.2f}/s")
print("  phases: " + ", ".join(f"{p['name']} p50 {p['p50']:.2f}s p95 {p['p95']:.2f}s" for p in r["phases"]))
# What a FIFO queue gives (docs/performance.md): each execution waits for the ones ahead of it, so its
# latency is the concurrency over the throughput (Little's law); the spread over it is the queue's unfairness.
if g["throughput_per_second"] > 0:
    fifo = r["concurrency"] / g["throughput_per_second"]
    print(f"  FIFO bound {r['concurrency']}/{g['throughput_per_second']:.2f}/s = {fifo:.2f}s: p50 {g['p50'] / fifo:.2f}x, p99 {g['p99'] / fifo:.2f}x")
for e in r.get("first_errors") or []:
    print(f"  error: {e}")
PY
if [ -n "$left" ]; then
	note "left behind in $ns: $(echo "$left" | wc -l) objects:"
	echo "$left" | head -20 | sed 's/^/  /' >&2
	rc=1
else
	note "nothing left behind in $ns"
fi
if [ "$rc" -ne 0 ]; then
	note "load run failed (exit $rc); log: $STAGE_LOGS/load.log"
	exit 1
fi
note "report in $out/load.json"
