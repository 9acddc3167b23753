#!/usr/bin/env bash
# run.sh: Switchboard and an Envoy sidecar in a throwaway kind cluster, end to
# end. Needs Docker, kind (0.27+) and kubectl on PATH; not run in CI (no
# Docker engine there), and NOT RUN YET by anyone: see README, "Envoy
# sidecars". It
#   1. creates the kind cluster $CLUSTER (node image pinned below),
#   2. builds the Switchboard image (make image, no Docker needed for that)
#      and loads its tarball into the node,
#   3. applies deploy/kubernetes (one replica: kind has one node) and
#      deploy/sidecar (an HTTP echo Service and a client pod with Envoy),
#   4. from the client pod, through its Envoy: HTTP to the echo Service by
#      each of its names, TCP to its plain-TCP port by ClusterIP, and DNS
#      queries to Envoy's DNS listener (127.0.0.1:15053).
# KEEP=1 leaves the cluster up; otherwise it is deleted at exit.
set -euo pipefail

CLUSTER="${CLUSTER:-switchboard-e2e}"
# A kind node image for Kubernetes 1.34 (native sidecars need 1.29+).
# Pinned by tag only: no registry is reachable from where this was written,
# so the digest (in the kind release notes, kindest/node:v1.34.0@sha256:...)
# could not be looked up; set NODE_IMAGE to the digest form to pin it.
NODE_IMAGE="${NODE_IMAGE:-kindest/node:v1.34.0}"
IMAGE="${IMAGE:-switchboard:e2e}"
NS=sidecar-demo
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { echo "e2e-kind: $*" >&2; }
fail() { echo "e2e-kind: FAIL: $*" >&2; exit 1; }

for tool in docker kind kubectl; do
	command -v "$tool" >/dev/null || fail "$tool is required on PATH"
done

cleanup() {
	if [[ "${KEEP:-0}" != 1 ]]; then
		kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	else
		log "KEEP=1: cluster $CLUSTER left running (kind delete cluster --name $CLUSTER)"
	fi
}
trap cleanup EXIT

log "kind create cluster $CLUSTER ($NODE_IMAGE)"
kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --wait 120s
kubectl config use-context "kind-$CLUSTER" >/dev/null

log "make image IMAGE=$IMAGE"
make -C "$root" image IMAGE="$IMAGE"
kind load image-archive "$root/bin/switchboard-image.tar" --name "$CLUSTER"

log "apply deploy/kubernetes"
kubectl kustomize "$root/deploy/kubernetes" |
	sed "s#image: switchboard:dev#image: $IMAGE#" |
	kubectl apply -f -
# One node: the second replica's hostname spread constraint keeps it Pending.
kubectl -n switchboard-system scale deploy/switchboard --replicas 1
kubectl -n switchboard-system rollout status deploy/switchboard --timeout 180s

log "apply deploy/sidecar"
kubectl apply -k "$root/deploy/sidecar"
kubectl -n "$NS" rollout status deploy/echo --timeout 180s
kubectl -n "$NS" rollout status deploy/client --timeout 300s
pod="$(kubectl -n "$NS" get pod -l app=client -o jsonpath='{.items[0].metadata.name}')"
clusterip="$(kubectl -n "$NS" get svc echo -o jsonpath='{.spec.clusterIP}')"

# in_pod runs a command in the client's application container.
in_pod() { kubectl -n "$NS" exec "$pod" -c app -- "$@"; }

# retry runs a command until it succeeds, for up to 60 s: Envoy gets its
# listeners a moment after it starts.
retry() {
	local deadline=$((SECONDS + 60))
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 1
	done
}

# check_http NAME: curl http://NAME/ through the sidecar (capture sends it to
# 15001, then the listener CLUSTERIP_80, the Service's route by RDS, its one
# "*" virtual host) answers the echo text, and Envoy's response header shows
# Envoy served it.
check_http() {
	local out
	out="$(in_pod curl -sS -m 5 -D - "http://$1/")" || return 1
	grep -q switchboard-echo <<<"$out" || return 1
	grep -qi '^server: envoy' <<<"$out" || { log "http://$1/ answered, but not through Envoy"; return 1; }
}

log "HTTP through the sidecar, by every name"
for name in echo echo:80 "echo.$NS" "echo.$NS:80" "echo.$NS.svc" "echo.$NS.svc:80" \
	"echo.$NS.svc.cluster.local" "echo.$NS.svc.cluster.local:80" "$clusterip" "$clusterip:80"; do
	retry check_http "$name" || fail "http://$name/ did not answer switchboard-echo through Envoy"
	log "  ok http://$name/"
done

log "TCP by ClusterIP (tcp_proxy on ${clusterip}_9000)"
retry in_pod sh -c "curl -sS -m 5 http://$clusterip:9000/ | grep -q switchboard-echo" ||
	fail "TCP to $clusterip:9000 did not reach the echo"
log "  ok tcp $clusterip:9000"

log "DNS from Envoy's DNS listener (127.0.0.1:15053)"
# The table holds full names; +search applies the pod's search path, as the
# application's resolver does, to the short forms.
for name in "echo.$NS.svc.cluster.local" "echo.$NS.svc" "echo.$NS" echo; do
	got="$(in_pod dig +short +search -p 15053 @127.0.0.1 "$name" A)"
	[[ "$got" == "$clusterip" ]] || fail "dig +search $name @127.0.0.1:15053: got '$got', want $clusterip"
	log "  ok $name -> $got"
done
# A name not in the table is forwarded (client_config) and resolves anyway.
[[ -n "$(in_pod dig +short -p 15053 @127.0.0.1 kubernetes.default.svc.cluster.local A)" ]] ||
	fail "kubernetes.default.svc.cluster.local: no answer: names outside the table are not forwarded"
# The pod's own resolver (kube-dns ClusterIP, port 53) is captured to 15053.
[[ "$(in_pod dig +short "echo.$NS.svc.cluster.local" A)" == "$clusterip" ]] ||
	fail "dig via the pod's resolver did not answer the ClusterIP"
log "  ok forwarding and the captured resolver"

log "PASS"
