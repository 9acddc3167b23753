#!/usr/bin/env bash
# make demo: Switchboard's main job on the embedded example. It builds
# Switchboard, a test backend and a real grpc-go xDS client, then runs
#
#   3 backends  127.0.0.11:50051 (greeter-a), .12 (greeter-b), .13 (greeter-c)
#   switchboard serve --manifests .demo/manifests   (a copy of deploy/examples)
#   a grpc-go client dialing xds:///greeter.demo:50051, printing the spread
#   of its calls per backend every second
#
# and edits the manifest on a script: greeter-c becomes not ready, greeter-b
# leaves the slice, both come back. Then it keeps running: edit
# .demo/manifests/greeter.yaml yourself and watch the spread follow. Ctrl-C
# stops everything. DEMO_SCRIPT_ONLY=1 stops after the script (for tests).
set -euo pipefail
cd "$(dirname "$0")/.."

XDS=${DEMO_XDS_ADDRESS:-127.0.0.1:18000}
ADMIN=${DEMO_ADMIN_ADDRESS:-127.0.0.1:9090}
DEBUG=${DEMO_DEBUG_ADDRESS:-127.0.0.1:9091}
STEP=${DEMO_STEP_SECONDS:-5}
work=.demo
rm -rf "$work" && mkdir -p "$work/manifests" bin
cp deploy/examples/*.yaml "$work/manifests/"
manifest="$work/manifests/greeter.yaml"

# One go build for the three: they share most of their dependencies. With
# an empty Go build cache (the first run on a machine) that is several
# minutes of compiling: about 4 minutes on 2 busy cores here; afterwards
# a few seconds.
echo "demo: compiling switchboard, the test backend and the grpc-go xDS client"
echo "demo: (the first build on a machine compiles every dependency: several minutes on 2 cores; later builds take seconds)"
build_start=$SECONDS
go build -o bin/ ./cmd/switchboard ./integration/cmd/testbackend ./integration/clients/goclient
echo "demo: compiled in $((SECONDS - build_start)) s"

pids=()
cleanup() {
	trap - EXIT INT TERM HUP
	# Stop the children first, and let a write to a closed pipe fail
	# rather than kill this shell before they are stopped.
	trap '' PIPE
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	{ echo; echo "demo: stopped"; } 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM
# A closed terminal or pipe (make demo | head) must stop the children too.
trap 'exit 1' HUP PIPE

bin/testbackend --listen 127.0.0.11:50051=greeter-a,127.0.0.12:50051=greeter-b,127.0.0.13:50051=greeter-c \
	>"$work/backends.log" 2>&1 &
pids+=($!)
bin/switchboard serve --manifests "$work/manifests" --xds-address "$XDS" --admin-address "$ADMIN" --debug-address "$DEBUG" \
	>"$work/switchboard.log" 2>&1 &
pids+=($!)
bin/switchboard bootstrap grpc --server "$XDS" --node-id demo-client --zone zone-a --namespace demo >"$work/bootstrap.json"

# ready asks /readyz with bash alone (no curl on a bare machine).
ready() {
	local status
	exec 3<>"/dev/tcp/${ADMIN%:*}/${ADMIN##*:}" 2>/dev/null || return 1
	printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$ADMIN" >&3
	read -r _ status _ <&3 || true
	exec 3<&-
	[[ "$status" == 200 ]]
}
for _ in $(seq 100); do
	ready && break
	sleep 0.1
done
ready || { echo "demo: switchboard did not become ready; see $work/switchboard.log"; cat "$work/switchboard.log"; exit 1; }
echo "demo: switchboard ready (xDS $XDS, admin http://$ADMIN/metrics, debug http://$DEBUG/debug/clients)"
echo "demo: client dialing xds:///greeter.demo:50051; one line per second"
GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" bin/goclient --target xds:///greeter.demo:50051 --interval-ms 10 --report-every 1s &
pids+=($!)

# set_endpoint NAME FIELD VALUE rewrites one line of the manifest the way an
# operator's editor would (write a new file, rename it into place).
edit() {
	sed "$1" "$manifest" >"$manifest.tmp" && mv "$manifest.tmp" "$manifest"
}

sleep "$STEP"
echo "demo: greeter-c (127.0.0.13) becomes not ready"
edit '/127.0.0.13/{n;s/ready: true/ready: false/}'
sleep "$STEP"
echo "demo: greeter-b (127.0.0.12) leaves the EndpointSlice"
edit '/127.0.0.12/,+3d'
sleep "$STEP"
echo "demo: both come back"
cp deploy/examples/greeter.yaml "$manifest"
sleep "$STEP"
if [[ -n "${DEMO_SCRIPT_ONLY:-}" ]]; then
	exit 0
fi
echo "demo: now edit $manifest yourself (conditions, addresses 127.0.0.11-13); Ctrl-C stops"
wait
