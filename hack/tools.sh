#!/usr/bin/env bash
# Builds the packaging tools (helm, kustomize) from their Go modules with `go install`, through the Go
# module proxy only: no release tarballs. Binaries are cached by version in $PORTICO_CACHE/bin (outside
# the work tree, so a fresh clone reuses them) and linked into bin/ twice: bin/NAME-VERSION (what the
# Makefile depends on) and bin/NAME (what tests and people run). A cached binary is never rebuilt, so
# calling this script is cheap once the tools exist; tests call it every run to get the pinned version.
#
# usage: hack/tools.sh [helm|kustomize|all]...
# prints, on stdout, the path of each requested tool (bin/NAME), one per line; progress goes to stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
BIN="${ROOT}/bin"
mkdir -p "${CACHE}/bin" "${BIN}"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# install NAME VERSION PACKAGE HINT: go install PACKAGE@VERSION into the cache, link it into bin/.
install_tool() {
  local name="$1" version="$2" pkg="$3" hint="$4"
  local cached="${CACHE}/bin/${name}-${version}"
  if [[ ! -x "${cached}" ]]; then
    local gobin; gobin="$(mktemp -d "${CACHE}/bin/.${name}-${version}.XXXXXX")"
    log "building ${name} ${version} from ${pkg} (${hint}; cached afterwards)"
    # -trimpath and no cgo: the same binary wherever it is built. GOFLAGS from the caller (say
    # -mod=vendor) must not leak into a build outside this module.
    (cd "${gobin}" && GOFLAGS= GOBIN="${gobin}" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "${pkg}@${version}")
    mv "${gobin}/${name}" "${cached}"
    rmdir "${gobin}"
    log "built ${name} ${version}"
  fi
  ln -sfn "${cached}" "${BIN}/${name}-${version}"
  ln -sfn "${cached}" "${BIN}/${name}"
  echo "${BIN}/${name}"
}

build_one() {
  case "$1" in
    helm) install_tool helm "${HELM_VERSION}" helm.sh/helm/v3/cmd/helm "cold: about a minute on 2 idle cores" ;;
    kustomize) install_tool kustomize "${KUSTOMIZE_VERSION}" sigs.k8s.io/kustomize/kustomize/v5 "cold: about 30 s" ;;
    all) build_one helm; build_one kustomize ;;
    *) echo "unknown tool $1 (want helm, kustomize or all)" >&2; exit 2 ;;
  esac
}

[[ $# -eq 0 ]] && set -- all
for t in "$@"; do build_one "$t"; done
