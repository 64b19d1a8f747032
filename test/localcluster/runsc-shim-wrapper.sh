#!/bin/bash
# Installed as $GKEXEC_CACHE/bin/containerd-shim-runsc-v1, next to the real shim (containerd-shim-runsc-v1.real).
#
# Why: gVisor's current shim answers the "start" action with containerd 2's bootstrap JSON
#   {"version":2,"address":"unix:///run/containerd/s/...","protocol":"ttrpc"}
# but Debian's containerd 1.6 dials whatever "start" prints as a bare socket address. For "start" we print only
# the address; every other action (and the task API itself, which is still v2) goes to the real shim unchanged.
set -u
self=$0
case $self in */*) ;; *) self=$(command -v "$self") ;; esac
real=$(dirname "$self")/containerd-shim-runsc-v1.real

if [ "${*: -1}" != start ]; then
	exec "$real" "$@"
fi
out=$("$real" "$@")
rc=$?
if [ $rc -ne 0 ]; then
	printf '%s' "$out"
	exit $rc
fi
case $out in
\{*) printf '%s' "$out" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' ;;
*) printf '%s' "$out" ;;
esac
