# shellcheck shell=bash
# Stage runner for the project's long scripts (test/run.sh, hack/*.sh): every stage prints one line
# with its elapsed time, keeps its full output in a log file, and on failure names that log and shows
# its tail; use_cluster and use_namespace set up the local cluster and a namespace for a run and
# leave them as found. Source it; set STAGE_LOGS first.

STAGES_T0=$(date +%s.%N)
: "${STAGE_LOGS:=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/logs}"

stages_elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
note() { printf '[%7s] %s\n' "$(stages_elapsed "$STAGES_T0")" "$*" >&2; }

# stage NAME CMD...: runs CMD with output to $STAGE_LOGS/NAME.log.
stage() {
	local name=$1 log t0 rc=0
	shift
	mkdir -p "$STAGE_LOGS"
	log=$STAGE_LOGS/$name.log
	t0=$(date +%s.%N)
	note "$name ..."
	"$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" | sed 's/^/          | /' >&2
		note "$name FAILED after $(stages_elapsed "$t0") (exit $rc); full log: $log"
		return "$rc"
	fi
	note "$name done in $(stages_elapsed "$t0")"
}

# stage_tee NAME CMD...: like stage, but also shows the output as it comes (test runners, whose
# summary lines belong in the console). On failure its log is kept in STAGES_FAILED_LOG for
# stages_failure_digest.
stage_tee() {
	local name=$1 log t0 rc=0
	shift
	mkdir -p "$STAGE_LOGS"
	log=$STAGE_LOGS/$name.log
	t0=$(date +%s.%N)
	note "$name ..."
	# The command's own status, not tee's, whatever the caller's pipefail and errexit settings: in
	# an && || list a failure does not end the shell (under set -e a bare "$@" did, before the
	# status was written or the failure reported).
	{
		"$@" 2>&1 && echo 0 >"$log.rc" || echo $? >"$log.rc"
	} | tee "$log"
	rc=$(cat "$log.rc")
	if [ "$rc" -ne 0 ]; then
		STAGES_FAILED_LOG=$log
		note "$name FAILED after $(stages_elapsed "$t0") (exit $rc); full log: $log"
		return "$rc"
	fi
	note "$name done in $(stages_elapsed "$t0")"
}

# stages_failure_digest: what the failed stage_tee's go test log says failed — the lines around each
# "--- FAIL" (before it, what a -v run printed as the test failed; after it, the messages a run without
# -v prints under it, leaving out the slog lines at Info or Debug a test relays from the code it runs,
# which can bury the one message that says what failed) and any panic. The scripts print it last, just
# before their final line, because the end of a long run's console is often all a CI page keeps, and a
# suite's cleanup can print hundreds of lines after the failure itself.
stages_failure_digest() {
	[ -n "${STAGES_FAILED_LOG:-}" ] && [ -f "$STAGES_FAILED_LOG" ] || return 0
	local digest
	digest=$(awk '
		{ line[NR] = $0 }
		/^panic: |^FAIL\t|\[build failed\]/ { for (i = NR - 3; i <= NR + 4; i++) if (i > 0) want[i] = 1 }
		/--- FAIL/ { for (i = NR - 3; i <= NR; i++) if (i > 0) want[i] = 1; block = 12; next }
		block > 0 && /^[ \t]/ && !/ level=(INFO|DEBUG) / { want[NR] = 1; block-- }
		!/^[ \t]/ { block = 0 }
		END {
			for (i = 1; i <= NR; i++) {
				if (!(i in want)) continue
				if (last && i > last + 1) print "  ..."
				print "  | " substr(line[i], 1, 300); last = i
			}
		}' "$STAGES_FAILED_LOG" | tail -n 30)
	[ -n "$digest" ] || return 0
	printf 'what failed (the end of it; all in %s):\n%s\n' "$STAGES_FAILED_LOG" "$digest" >&2
}

# use_cluster WHAT: brings the local cluster up for a run (its environment exported: KUBECONFIG,
# KUBECTL) and leaves it as found — brought down again at exit, even on failure, unless it was up
# before. WHAT names the run in the last line.
use_cluster() {
	STAGES_CLUSTER_WAS_UP=0
	test/localcluster/cluster.sh status >/dev/null 2>&1 && STAGES_CLUSTER_WAS_UP=1
	STAGES_RUN=$1
	trap stages_leave_cluster EXIT
	stage cluster-up test/localcluster/cluster.sh up
	eval "$(test/localcluster/cluster.sh env)"
}

# use_namespace PREFIX: after use_cluster, a fresh namespace PREFIX-<this shell's pid> for the run,
# its name in STAGES_NAMESPACE, ready for Pods; deleted at exit (not waited for), before the cluster
# is left as found.
use_namespace() {
	STAGES_NAMESPACE=$1-$$
	"$KUBECTL" create namespace "$STAGES_NAMESPACE" >/dev/null
	# A new namespace gets its default ServiceAccount asynchronously; Pods cannot be created before it exists.
	for _ in $(seq 100); do "$KUBECTL" -n "$STAGES_NAMESPACE" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.1; done
}

stages_leave_cluster() {
	local rc=$?
	if [ -n "${STAGES_NAMESPACE:-}" ]; then "$KUBECTL" delete namespace "$STAGES_NAMESPACE" --wait=false >/dev/null 2>&1 || true; fi
	if [ "$STAGES_CLUSTER_WAS_UP" -eq 0 ]; then stage cluster-down test/localcluster/cluster.sh down || rc=1; fi
	if [ "$rc" -eq 0 ]; then
		note "$STAGES_RUN passed"
	else
		stages_failure_digest
		note "$STAGES_RUN FAILED (exit $rc); logs: $STAGE_LOGS"
	fi
	exit "$rc"
}
