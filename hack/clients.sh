#!/usr/bin/env bash
# Prepares the three real xDS client programs that integration tests drive
# (integration/clients): installs the grpc-js-xds client's locked npm
# dependencies and Debian's python3-grpcio (gRPC C-core) when missing. The
# grpc-go client needs nothing here: the tests build it with the go command.
#
# Idempotent and quick when nothing changed; safe to call from make on every
# run. Needs node/npm (20+) on PATH and, for apt-get, root or sudo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_dir="$root/integration/clients/node"
# npm ci rewrites node_modules from scratch, so a stamp inside it records
# which lockfile it was installed from.
stamp="$node_dir/node_modules/.switchboard-lock.sha256"

command -v node >/dev/null || { echo "clients.sh: node (20+) is required on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "clients.sh: npm is required on PATH" >&2; exit 1; }

want="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
	echo "clients.sh: npm ci in integration/clients/node" >&2
	# No install scripts: the only one (protobufjs's postinstall) is a
	# version check the client does not need.
	(cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	echo "$want" >"$stamp"
fi

if ! /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
	sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null || { echo "clients.sh: installing python3-grpcio needs root or sudo" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "clients.sh: apt-get install python3-grpcio" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Try the cached package lists first; refresh them only if that fails.
	"${sudo[@]}" apt-get install -y --no-install-recommends python3-grpcio ||
		{ "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends python3-grpcio; }
	/usr/bin/python3 -c 'import grpc' || { echo "clients.sh: python3-grpcio installed but 'import grpc' fails" >&2; exit 1; }
fi
