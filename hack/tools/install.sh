#!/usr/bin/env bash
# install.sh builds the real Kubernetes control plane that the integration
# tests run against, from the pinned Go modules in hack/tools/kube-apiserver
# (kube-apiserver, kube-controller-manager, kube-scheduler: one
# k8s.io/kubernetes module), hack/tools/etcd and hack/tools/kwok (KWOK, the
# fake kubelet of the harness's cluster mode), and installs them into a
# versioned folder outside the clone:
#
#   ${SWITCHBOARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/k8s-1.37.2-etcd-3.6.16}/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,etcd,kwok}
#   .../kwok-0.8.0/crds/  (KWOK's CustomResourceDefinitions, from its module)
#
# The folder keeps its name from before KWOK and the two controllers were
# added, so a machine that has kube-apiserver and etcd keeps them; every
# binary is checked on its own. A binary that is already there and reports
# the expected version is kept, so a second run takes a second or two. Cold
# builds on 2 cores (docs/testing.md has the measured figures): kube-apiserver
# about 16 minutes and 2.4 GB of memory; kube-controller-manager and
# kube-scheduler share most of its packages, so after it they take minutes;
# KWOK a few minutes. With a warm Go build cache (a fresh clone on the same
# machine) each is seconds. Nothing is written into the clone. Usage:
# hack/tools/install.sh (no arguments).
set -euo pipefail

readonly K8S_VERSION=1.37.2
readonly ETCD_VERSION=3.6.16
readonly KWOK_VERSION=0.8.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${SWITCHBOARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}}"
bin="${dest}/bin"
mkdir -p "${bin}"

# Two runs at once (make -j, two clones) would build twice and race on the
# rename; the second waits for the first and then finds the binaries present.
exec 9>"${dest}/.install.lock"
flock 9
# An interrupted build leaves no temporary binary behind.
trap 'rm -rf "${bin}"/.*.tmp.$$ "${dest}"/kwok-*/.crds.tmp.$$' EXIT

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

# kubernetes_binary NAME HINT: build k8s.io/kubernetes/cmd/NAME from the
# pinned module unless a binary reporting K8S_VERSION is there.
kubernetes_binary() {
	local name="$1" hint="$2"
	if has_version "${bin}/${name}" "Kubernetes v${K8S_VERSION}"; then
		echo "install.sh: ${name} v${K8S_VERSION} present in ${bin}"
		return
	fi
	echo "install.sh: building ${name} v${K8S_VERSION} into ${bin} (${hint})"
	build "${name}" "${here}/kube-apiserver" "k8s.io/kubernetes/cmd/${name}" \
		"-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"${K8S_VERSION}")"
	has_version "${bin}/${name}" "Kubernetes v${K8S_VERSION}" || {
		echo "install.sh: ${bin}/${name} does not report v${K8S_VERSION}" >&2
		exit 1
	}
}

kubernetes_binary kube-apiserver "the first build takes about 20 minutes (2.4 GB of memory); later ones come from the Go build cache"
kubernetes_binary kube-controller-manager "a few minutes after kube-apiserver, whose packages it shares"
kubernetes_binary kube-scheduler "a few minutes after kube-apiserver, whose packages it shares"

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

if has_version "${bin}/kwok" "v${KWOK_VERSION} "; then
	echo "install.sh: kwok ${KWOK_VERSION} present in ${bin}"
else
	echo "install.sh: building kwok ${KWOK_VERSION} into ${bin} (a few minutes the first time)"
	build kwok "${here}/kwok" sigs.k8s.io/kwok/cmd/kwok "-s -w"
	has_version "${bin}/kwok" "v${KWOK_VERSION} " || {
		echo "install.sh: ${bin}/kwok does not report v${KWOK_VERSION}" >&2
		exit 1
	}
fi

# KWOK's CustomResourceDefinitions (the harness applies the Exec one), from
# the same pinned module: a folder named by the version, written whole or
# not at all.
crds="${dest}/kwok-${KWOK_VERSION}/crds"
if [[ -f "${crds}/kwok.x-k8s.io_execs.yaml" ]]; then
	echo "install.sh: KWOK ${KWOK_VERSION} CRDs present in ${crds}"
else
	moddir="$(cd "${here}/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
	tmp="${dest}/kwok-${KWOK_VERSION}/.crds.tmp.$$"
	rm -rf "${tmp}"
	mkdir -p "${tmp}"
	cp "${moddir}"/kustomize/crd/bases/*.yaml "${tmp}/"
	chmod u+w "${tmp}"/*.yaml
	mv -T "${tmp}" "${crds}"
	echo "install.sh: copied KWOK ${KWOK_VERSION} CRDs into ${crds}"
fi
