#!/usr/bin/env bash
# install-prereqs.sh: Debian packages the unit tests need on a fresh machine, and node and npm for the
# end-to-end suite's third-party MCP client (test/mcpclient); the cluster and Terraform scripts
# install their own. Idempotent and quiet when all is there.
set -euo pipefail
need=()
command -v python3 >/dev/null || need+=(python3)
command -v flock >/dev/null || need+=(util-linux)
# The languages' interpreters, npm for the third-party MCP client (test/mcpclient), and Debian's
# matplotlib for the figures test (the sandbox image's python3 is Debian's: the test runs the
# entrypoint with /usr/bin/python3).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ "${#need[@]}" -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "need root to install: ${need[*]}" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "prerequisites present: go $(go env GOVERSION), $(python3 --version)"
