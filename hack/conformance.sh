#!/usr/bin/env bash
# Builds what `make test-conformance` runs, from Go modules through the Go module proxy only:
#   echo-basic       sigs.k8s.io/gateway-api/conformance/echo-basic  (the suite's backend image)
#   conformance.test the suite's test binary (go test -c sigs.k8s.io/gateway-api/conformance)
#   coredns          github.com/coredns/coredns (the base manifests run it in the infra namespace)
# in a wrapper module under $PORTICO_CACHE/build (the repository's go.mod is never touched). Binaries
# are cached by version in $PORTICO_CACHE/bin and copied into bin/conformance/. A cached binary is
# never rebuilt. `hack/conformance.sh moddir` prints the conformance module's directory in the module
# cache (the suite runs from there so its relative manifest paths resolve).
#
# usage: hack/conformance.sh [echo-basic|conformance.test|coredns|moddir|all]...
set -euo pipefail

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
BIN="${ROOT}/bin/conformance"
mkdir -p "${CACHE}/bin" "${CACHE}/build" "${BIN}"

log() { printf '[conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# link NAME CACHED: a copy (hard link when possible), not a symlink: pods mount volumes over paths
# such as /root (coredns mounts its ConfigMap there), which would hide a symlink's target.
link() {
  if [[ -e "${BIN}/$1" && ! -L "${BIN}/$1" ]] && cmp -s "$2" "${BIN}/$1"; then return 0; fi
  rm -f "${BIN}/$1"
  ln "$2" "${BIN}/$1" 2>/dev/null || cp "$2" "${BIN}/$1"
}
cached() {
  local out="${CACHE}/bin/$1-$2"
  if [[ -x "${out}" ]]; then link "$1" "${out}"; return 0; fi
  return 1
}

# The wrapper module: the conformance module needs sigs.k8s.io/gateway-api required explicitly.
wrapper() {
  local dir="${CACHE}/build/gateway-api-conformance-${GATEWAY_API_VERSION}"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  cat > "${dir}/go.mod" <<EOF
module portico.local/gateway-api-conformance-build

go 1.26

require (
	sigs.k8s.io/gateway-api ${GATEWAY_API_VERSION}
	sigs.k8s.io/gateway-api/conformance ${GATEWAY_API_VERSION}
)
EOF
  cat > "${dir}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "sigs.k8s.io/gateway-api/conformance"
	_ "sigs.k8s.io/gateway-api/conformance/echo-basic"
)
GO
  log "resolving sigs.k8s.io/gateway-api/conformance@${GATEWAY_API_VERSION}"
  (cd "${dir}" && GOFLAGS=-mod=mod go mod tidy >&2)
  touch "${dir}/.ready"
  echo "${dir}"
}

moddir() {
  local dir; dir="$(wrapper)"
  (cd "${dir}" && go list -mod=mod -m -f '{{.Dir}}' sigs.k8s.io/gateway-api/conformance)
}

build_echo() {
  cached echo-basic "${GATEWAY_API_VERSION}" && return 0
  local dir; dir="$(wrapper)"
  log "building echo-basic ${GATEWAY_API_VERSION} (cold: ~10 s)"
  (cd "${dir}" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" \
    -o "${CACHE}/bin/echo-basic-${GATEWAY_API_VERSION}.tmp" sigs.k8s.io/gateway-api/conformance/echo-basic)
  mv "${CACHE}/bin/echo-basic-${GATEWAY_API_VERSION}.tmp" "${CACHE}/bin/echo-basic-${GATEWAY_API_VERSION}"
  link echo-basic "${CACHE}/bin/echo-basic-${GATEWAY_API_VERSION}"
}

build_suite() {
  cached conformance.test "${GATEWAY_API_VERSION}" && return 0
  local dir; dir="$(wrapper)"
  log "building the conformance test binary ${GATEWAY_API_VERSION} (cold: ~75 s)"
  (cd "${dir}" && CGO_ENABLED=0 go test -c -mod=mod -trimpath \
    -o "${CACHE}/bin/conformance.test-${GATEWAY_API_VERSION}.tmp" sigs.k8s.io/gateway-api/conformance)
  mv "${CACHE}/bin/conformance.test-${GATEWAY_API_VERSION}.tmp" "${CACHE}/bin/conformance.test-${GATEWAY_API_VERSION}"
  link conformance.test "${CACHE}/bin/conformance.test-${GATEWAY_API_VERSION}"
}

build_coredns() {
  cached coredns "${COREDNS_VERSION}" && return 0
  local dir="${CACHE}/build/coredns-${COREDNS_VERSION}"
  mkdir -p "${dir}"
  log "downloading github.com/coredns/coredns@${COREDNS_VERSION}"
  local src
  src="$(cd "${dir}" && GOFLAGS=-mod=mod go mod download -json "github.com/coredns/coredns@${COREDNS_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  log "building coredns ${COREDNS_VERSION} from its module root (cold: ~3 min)"
  # Built in its own module (its go.mod/go.sum), output outside the read-only module cache.
  (cd "${src}" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
    -o "${CACHE}/bin/coredns-${COREDNS_VERSION}.tmp" .)
  mv "${CACHE}/bin/coredns-${COREDNS_VERSION}.tmp" "${CACHE}/bin/coredns-${COREDNS_VERSION}"
  link coredns "${CACHE}/bin/coredns-${COREDNS_VERSION}"
}

one() {
  case "$1" in
    echo-basic) build_echo ;;
    conformance.test) build_suite ;;
    coredns) build_coredns ;;
    moddir) moddir ;;
    all) build_echo; build_suite; build_coredns ;;
    *) echo "unknown component $1" >&2; exit 2 ;;
  esac
}

[[ $# -eq 0 ]] && set -- all
for c in "$@"; do one "$c"; done
