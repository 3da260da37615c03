#!/usr/bin/env bash
# `make test`: every tier, in order, with the time each stage took. Any failure (or skip) fails the run.
#   lint (ruff) -> types (mypy --strict) -> CRDs up to date -> unit -> integration (embedded cluster)
#   -> e2e (kind + flannel, hack/e2e.sh; skipped with a message when Docker cannot run, unless
#      KUBEPLANE_REQUIRE_E2E=1, which .ci/run sets)
#   -> conformance (upstream's [sig-apps] [Conformance] tests for the kinds kubeplane replaces, on the
#      same kind cluster in drop-in mode: hack/conformance.sh)
# In CI (CI=true) a cluster this script started is deleted at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/bin:$root/.venv/bin:$PATH" KUBEPLANE_FORBID_SKIPS=1
declare -a report=()
stage() {
  local name=$1; shift
  printf '\n\033[1m[test] %s\033[0m\n' "$name"
  local t0=$SECONDS
  if "$@"; then report+=("$(printf '%-12s ok      %4ds' "$name" $((SECONDS - t0)))")
  else report+=("$(printf '%-12s FAILED  %4ds' "$name" $((SECONDS - t0)))"); summary; exit 1; fi
}
summary() { printf '\n[test] stage times:\n'; printf '  %s\n' "${report[@]}"; }

started_cluster=0
cleanup() {
  if [[ ${CI:-} == true && $started_cluster == 1 ]]; then hack/cluster.sh down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

stage lint ruff check operators tests bench hack
stage types mypy
stage crds make -s manifests-check
stage unit pytest tests/unit -q
if ! kubectl --kubeconfig .kubeplane/kubeconfig get --raw /readyz >/dev/null 2>&1; then
  started_cluster=1
  stage cluster env OPERATORS= hack/cluster.sh up
fi
# The image test needs Docker: it runs in the e2e stage.
stage integration pytest tests/integration -v --timeout=600 --durations=25 --ignore=tests/integration/test_image.py
# The embedded cluster is not needed any more: in CI, free its CPU for kind.
cleanup; started_cluster=0
# The e2e tier, then upstream's conformance tests on the same kind cluster switched to drop-in mode
# (the last stage: after it, kube-controller-manager runs without the controllers kubeplane replaces).
export KUBEPLANE_KEEP_KIND=1
kind_existed=0
bin/kind get clusters 2>/dev/null | grep -qx kubeplane && kind_existed=1
stage e2e hack/e2e.sh
stage conformance hack/conformance.sh
if [[ ${CI:-} == true && $kind_existed == 0 ]]; then hack/kind/cluster.sh down >/dev/null 2>&1 || true; fi
summary
