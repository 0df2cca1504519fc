#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, etcd) and the
# cert-manager controller from their Go modules, through the Go module proxy only: no kind, no docker,
# no setup-envtest download. Binaries are cached by version in $PORTICO_CACHE (outside the work tree, so
# a fresh clone reuses them) and linked into bin/. A cached binary is never rebuilt.
#
# usage: hack/control-plane.sh [kube-apiserver|kube-controller-manager|etcd|cert-manager|all]...
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CERT_MANAGER_CONTROLLER_VERSION="${CERT_MANAGER_CONTROLLER_VERSION:-v1.11.5}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
BIN="${ROOT}/bin/control-plane"
mkdir -p "${CACHE}/bin" "${CACHE}/build" "${BIN}"

log() { printf '[control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# link NAME CACHED: expose a cached binary under bin/control-plane/NAME.
link() { ln -sf "$2" "${BIN}/$1"; }

# cached NAME VERSION: true (and linked) when the binary is already built.
cached() {
  local out="${CACHE}/bin/$1-$2"
  if [[ -x "${out}" ]]; then link "$1" "${out}"; return 0; fi
  return 1
}

k8s_wrapper() {
  local dir="${CACHE}/build/kubernetes-${K8S_VERSION}"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  log "resolving k8s.io/kubernetes@${K8S_VERSION} staging modules"
  local gomod
  gomod="$(cd "${dir}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  local staging="v0${K8S_VERSION#v1}"
  {
    echo "module portico.local/kube-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    # Kubernetes replaces its staging modules with ./staging paths; point each at its published version.
    grep -E '^\s*k8s.io/[^ ]+ => \./staging/' "${gomod}" | awk -v v="${staging}" '{print "replace " $1 " => " $1 " " v}'
  } > "${dir}/go.mod"
  cat > "${dir}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  (cd "${dir}" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true)
  touch "${dir}/.ready"
  echo "${dir}"
}

build_k8s() {
  local name="$1"
  cached "${name}" "${K8S_VERSION}" && return 0
  local dir; dir="$(k8s_wrapper)"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  log "building ${name} ${K8S_VERSION} (cold: 10-16 minutes on 2 cores; warm: seconds)"
  local pkg="k8s.io/component-base/version"
  (cd "${dir}" && CGO_ENABLED=0 go build -mod=mod -trimpath -o "${CACHE}/bin/${name}-${K8S_VERSION}.tmp" \
    -ldflags "-s -w -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z" \
    "k8s.io/kubernetes/cmd/${name}")
  mv "${CACHE}/bin/${name}-${K8S_VERSION}.tmp" "${CACHE}/bin/${name}-${K8S_VERSION}"
  link "${name}" "${CACHE}/bin/${name}-${K8S_VERSION}"
  log "built ${name}"
}

build_simple() { # NAME VERSION MODULE PACKAGE [replace-line]
  local name="$1" version="$2" module="$3" pkg="$4" replace="${5:-}"
  cached "${name}" "${version}" && return 0
  local dir="${CACHE}/build/${name}-${version}"
  mkdir -p "${dir}"
  {
    echo "module portico.local/${name}-build"
    echo
    echo "go 1.26"
    echo
    echo "require ${module} ${version}"
    [[ -n "${replace}" ]] && echo "replace ${replace}"
  } > "${dir}/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "${pkg}" > "${dir}/tools.go"
  log "building ${name} ${version} from ${module}"
  (cd "${dir}" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true)
  (cd "${dir}" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "${CACHE}/bin/${name}-${version}.tmp" "${pkg}")
  mv "${CACHE}/bin/${name}-${version}.tmp" "${CACHE}/bin/${name}-${version}"
  link "${name}" "${CACHE}/bin/${name}-${version}"
  log "built ${name}"
}

build_one() {
  case "$1" in
    kube-apiserver|kube-controller-manager) build_k8s "$1" ;;
    etcd) build_simple etcd "${ETCD_VERSION}" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 ;;
    cert-manager) build_simple cert-manager-controller "${CERT_MANAGER_CONTROLLER_VERSION}" \
      github.com/cert-manager/cert-manager github.com/cert-manager/cert-manager/cmd/controller \
      "github.com/miekg/dns v1.1.41 => github.com/miekg/dns v1.1.34" ;;
    all) build_one etcd; build_one kube-apiserver; build_one kube-controller-manager; build_one cert-manager ;;
    *) echo "unknown component $1" >&2; exit 2 ;;
  esac
}

[[ $# -eq 0 ]] && set -- all
for c in "$@"; do build_one "$c"; done
