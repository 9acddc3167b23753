#!/usr/bin/env bash
# iptables.sh installs Debian's iptables package (iptables and ip6tables,
# 1.8.9 on bookworm, the nf_tables backend) and shellcheck (0.9.0) when
# missing. deploy/sidecar's TestScriptsParse runs shellcheck on the shell
# scripts of deploy/. TestCapture (integration/capture_test.go) runs
# deploy/sidecar/capture.sh with it inside the test's own network namespace;
# installing them changes no rule on the machine.
#
# Idempotent and instant when present; needs root or sudo for apt-get.
set -euo pipefail

if [[ -x /usr/sbin/iptables && -x /usr/sbin/ip6tables && -x /usr/bin/shellcheck ]]; then
	echo "iptables.sh: $(/usr/sbin/iptables -V) and shellcheck present"
	exit 0
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null || { echo "iptables.sh: installing iptables needs root or sudo" >&2; exit 1; }
	sudo=(sudo)
fi
echo "iptables.sh: apt-get install iptables shellcheck" >&2
export DEBIAN_FRONTEND=noninteractive
# Try the cached package lists first; refresh them only if that fails.
"${sudo[@]}" apt-get install -y --no-install-recommends iptables shellcheck ||
	{ "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends iptables shellcheck; }
/usr/sbin/iptables -V >/dev/null || { echo "iptables.sh: iptables installed but does not run" >&2; exit 1; }
