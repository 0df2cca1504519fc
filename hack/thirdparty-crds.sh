#!/usr/bin/env bash
# Copies the CRDs Portico works with from the exact module versions go.mod pins, so the schemas the
# tests install always match the Go types the code compiles against.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=config/crd/thirdparty
gw="$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
cm="$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)"
if [[ -z "${gw}" || ! -d "${gw}" ]]; then go mod download sigs.k8s.io/gateway-api; gw="$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"; fi
if [[ -z "${cm}" || ! -d "${cm}" ]]; then go mod download github.com/cert-manager/cert-manager; cm="$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)"; fi
rm -rf "${out}"
mkdir -p "${out}/gateway-api" "${out}/cert-manager"
# Standard channel CRDs only; the ValidatingAdmissionPolicy file is not a CRD.
for f in "${gw}"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  case "$(basename "$f")" in *vap*) continue ;; esac
  install -m 0644 "$f" "${out}/gateway-api/"
done
for f in "${cm}"/deploy/crds/*.yaml; do install -m 0644 "$f" "${out}/cert-manager/"; done
printf '# Copied by hack/thirdparty-crds.sh from the Go modules pinned in go.mod. Do not edit.\n' > "${out}/README.md"
