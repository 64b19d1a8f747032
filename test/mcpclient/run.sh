#!/usr/bin/env bash
# test/mcpclient/run.sh: installs the TypeScript MCP SDK (@modelcontextprotocol/sdk, from the npm
# registry, pinned) into the cache outside the repository on first use, and runs client.mjs with
# the arguments: `run.sh stdio COMMAND [ARGS...]` or `run.sh http URL` (token in GKEXEC_MCP_TOKEN).
# Needs node (18 or later) and npm.
set -euo pipefail
sdk_version=1.32.2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${GKEXEC_CACHE:-$HOME/.cache/gkexec}/node/mcp-ts-client-$sdk_version
if [ ! -f "$dir/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
	mkdir -p "$dir"
	echo '{"name": "gkexec-mcp-ts-client", "private": true, "type": "module"}' >"$dir/package.json"
	npm install --prefix "$dir" --no-audit --no-fund --silent "@modelcontextprotocol/sdk@$sdk_version" >&2
fi
# Node resolves imports next to the script: run a copy beside its node_modules.
cp "$here/client.mjs" "$dir/client.mjs"
exec node "$dir/client.mjs" "$@"
