#!/usr/bin/env bash
# Copy the CRDs (crds/, the one source of truth) into the Helm chart (charts/kubeplane/files/crds/).
#
#   hack/sync-chart-crds.sh          copy; files the chart has but crds/ no longer has are removed
#   hack/sync-chart-crds.sh --check  change nothing; exit 1 and list the differences if out of sync
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/crds
dst=$root/charts/kubeplane/files/crds

if [[ ${1:-} == --check ]]; then
  if ! diff -r "$src" "$dst" >/dev/null 2>&1; then
    echo "charts/kubeplane/files/crds/ differs from crds/; run 'make chart-crds':" >&2
    diff -rq "$src" "$dst" >&2 || true
    exit 1
  fi
  echo "charts/kubeplane/files/crds/ is in sync with crds/"
  exit 0
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--check]" >&2; exit 2; }

mkdir -p "$dst"
find "$dst" -maxdepth 1 -type f -name '*.yaml' -delete
cp "$src"/*.yaml "$dst"/
echo "synced $(ls "$src"/*.yaml | wc -l) CRD file(s) into charts/kubeplane/files/crds/"
