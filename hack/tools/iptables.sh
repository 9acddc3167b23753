#!/usr/bin/env bash
# iptables.sh installs Debian's iptables package (iptables and ip6tables,
# 1.8.9 on bookworm, the nf_tables backend) when /usr/sbin/iptables is
# missing. TestCapture (integration/capture_test.go) runs
# deploy/sidecar/capture.sh with it inside the test's own network namespace;
# installing it changes no rule on the machine.
#
# Idempotent and instant when present; needs root or sudo for apt-get.
set -euo pipefail

if [[ -x /usr/sbin/iptables && -x /usr/sbin/ip6tables ]]; then
	echo "iptables.sh: $(/usr/sbin/iptables -V) present"
	exit 0
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null || { echo "iptables.sh: installing iptables needs root or sudo" >&2; exit 1; }
	sudo=(sudo)
fi
echo "iptables.sh: apt-get install iptables" >&2
export DEBIAN_FRONTEND=noninteractive
# Try the cached package lists first; refresh them only if that fails.
"${sudo[@]}" apt-get install -y --no-install-recommends iptables ||
	{ "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends iptables; }
/usr/sbin/iptables -V >/dev/null || { echo "iptables.sh: iptables installed but does not run" >&2; exit 1; }
