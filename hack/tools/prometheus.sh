#!/usr/bin/env bash
# prometheus.sh installs Debian's prometheus package (Prometheus 2.42 and
# promtool) when /usr/bin/prometheus is missing. The observability tests
# (deploy/observability, integration's TestObservability*) run promtool and
# a real Prometheus from it. Installing the package does not start a
# Prometheus on a machine without systemd; where it does, the tests run
# their own on other ports and never touch it.
#
# Idempotent and instant when present; needs root or sudo for apt-get.
set -euo pipefail

if [[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]]; then
	echo "prometheus.sh: $(/usr/bin/prometheus --version 2>&1 | head -1) present"
	exit 0
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
	command -v sudo >/dev/null || { echo "prometheus.sh: installing prometheus needs root or sudo" >&2; exit 1; }
	sudo=(sudo)
fi
echo "prometheus.sh: apt-get install prometheus" >&2
export DEBIAN_FRONTEND=noninteractive
# Try the cached package lists first; refresh them only if that fails.
"${sudo[@]}" apt-get install -y --no-install-recommends prometheus ||
	{ "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends prometheus; }
/usr/bin/promtool --version >/dev/null || { echo "prometheus.sh: prometheus installed but promtool does not run" >&2; exit 1; }
