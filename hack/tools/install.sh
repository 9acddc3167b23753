#!/usr/bin/env bash
# install.sh builds the real Kubernetes API server and etcd that the
# integration tests run against, from the pinned Go modules in
# hack/tools/kube-apiserver and hack/tools/etcd, and installs them into a
# versioned folder outside the clone:
#
#   ${SWITCHBOARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/k8s-1.37.2-etcd-3.6.16}/bin/{kube-apiserver,etcd}
#
# A binary that is already there and reports the expected version is kept, so
# a second run takes a second or two. A cold build of kube-apiserver takes
# about 16 minutes and 2.4 GB of memory on 2 cores; with a warm Go build cache
# (a fresh clone on the same machine) it is seconds. Nothing is written into
# the clone. Usage: hack/tools/install.sh (no arguments).
set -euo pipefail

readonly K8S_VERSION=1.37.2
readonly ETCD_VERSION=3.6.16

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${SWITCHBOARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}}"
bin="${dest}/bin"
mkdir -p "${bin}"

# Two runs at once (make -j, two clones) would build twice and race on the
# rename; the second waits for the first and then finds the binaries present.
exec 9>"${dest}/.install.lock"
flock 9
# An interrupted build leaves no temporary binary behind.
trap 'rm -f "${bin}"/.*.tmp.$$' EXIT

# The tool modules must resolve from their own go.mod/go.sum only.
export GOWORK=off
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=readonly"

# has_version BINARY PATTERN: BINARY exists, runs, and its --version output
# contains PATTERN.
has_version() {
	[[ -x "$1" ]] && "$1" --version 2>/dev/null | grep -qF -- "$2"
}

# build NAME MODULE_DIR PACKAGE LDFLAGS: go build PACKAGE inside MODULE_DIR
# into a temporary file next to the target, then rename it into place so an
# interrupted build never leaves a half-written binary where the tests look.
build() {
	local name="$1" moddir="$2" pkg="$3" ldflags="$4"
	local tmp="${bin}/.${name}.tmp.$$"
	local start=${SECONDS}
	(cd "${moddir}" && go build -trimpath -ldflags "${ldflags}" -o "${tmp}" "${pkg}") || {
		echo "install.sh: building ${name} failed" >&2
		return 1
	}
	mv -f "${tmp}" "${bin}/${name}"
	echo "install.sh: built ${name} in $((SECONDS - start)) s"
}

if has_version "${bin}/kube-apiserver" "Kubernetes v${K8S_VERSION}"; then
	echo "install.sh: kube-apiserver v${K8S_VERSION} present in ${bin}"
else
	echo "install.sh: building kube-apiserver v${K8S_VERSION} into ${bin}"
	echo "install.sh: the first build takes about 20 minutes (2.4 GB of memory); later ones come from the Go build cache"
	build kube-apiserver "${here}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
		"-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"${K8S_VERSION}")"
	has_version "${bin}/kube-apiserver" "Kubernetes v${K8S_VERSION}" || {
		echo "install.sh: ${bin}/kube-apiserver does not report v${K8S_VERSION}" >&2
		exit 1
	}
fi

if has_version "${bin}/etcd" "etcd Version: ${ETCD_VERSION}"; then
	echo "install.sh: etcd ${ETCD_VERSION} present in ${bin}"
else
	echo "install.sh: building etcd ${ETCD_VERSION} into ${bin} (about 90 s the first time)"
	build etcd "${here}/etcd" . "-s -w"
	has_version "${bin}/etcd" "etcd Version: ${ETCD_VERSION}" || {
		echo "install.sh: ${bin}/etcd does not report ${ETCD_VERSION}" >&2
		exit 1
	}
fi
