#!/usr/bin/env bash
# install-prereqs.sh: Debian packages the unit tests need on a fresh machine, and node and npm for the
# end-to-end suite's third-party MCP client (test/mcpclient); the cluster and Terraform scripts
# install their own. Idempotent and quiet when all is there.
set -euo pipefail
need=()
command -v python3 >/dev/null || need+=(python3)
command -v flock >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "need root to install: ${need[*]}" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "prerequisites present: go $(go env GOVERSION), $(python3 --version)"
