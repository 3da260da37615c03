#!/usr/bin/env bash
# `make e2e` (and the e2e stage of `make test`): the end-to-end tier on kind with flannel.
#   1. Docker: needed. Without an engine (and ../shared/sandbox/start-docker to start one) the tier is
#      skipped with a message, unless KUBEPLANE_REQUIRE_E2E=1 (CI sets it): then that is a failure.
#   2. `hack/kind/cluster.sh up` (creates cluster `kubeplane` if missing; images cached by content)
#   3. `hack/kind/cluster.sh deploy` (operator image, kind load, helm upgrade --install)
#   4. pytest tests/e2e, then the operator image's own tests (tests/integration/test_image.py)
# With CI=true a cluster this script created is deleted at the end. Every stage prints its time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/bin:$root/.venv/bin:$PATH"
# shellcheck source=hack/lib/docker.sh
source hack/lib/docker.sh

say() { printf '\033[1m[e2e]\033[0m %s\n' "$*" >&2; }
required=${KUBEPLANE_REQUIRE_E2E:-0}
name=${KIND_CLUSTER:-kubeplane}

if ! ensure_docker; then
  if [[ $required == 1 ]]; then say "KUBEPLANE_REQUIRE_E2E=1 but Docker cannot run here: FAILED"; exit 1; fi
  say "SKIPPED: no Docker engine, so no kind cluster (set KUBEPLANE_REQUIRE_E2E=1 to make this an error)"
  exit 0
fi

declare -a report=()
timed() {
  local what=$1; shift
  local t0=$SECONDS rc=0
  say "$what"
  "$@" || rc=$?
  report+=("$(printf '%-10s %s %4ds' "$what" "$([[ $rc == 0 ]] && echo 'ok    ' || echo FAILED)" $((SECONDS - t0)))")
  return $rc
}
created=0
cleanup() {
  local rc=$?
  printf '\n[e2e] stage times:\n'; printf '  %s\n' "${report[@]}"
  # KUBEPLANE_KEEP_KIND=1 (hack/test.sh): the conformance stage reuses the cluster and deletes it after.
  if [[ ${CI:-} == true && $created == 1 && ${KUBEPLANE_KEEP_KIND:-} != 1 ]]; then
    say "CI: deleting the cluster this run created"; hack/kind/cluster.sh down >/dev/null 2>&1 || true
  fi
  exit $rc
}
trap cleanup EXIT

hack/tools.sh kind >/dev/null
bin/kind get clusters 2>/dev/null | grep -qx "$name" || created=1
timed kind-up hack/kind/cluster.sh up
timed deploy hack/kind/cluster.sh deploy
export KUBEPLANE_REQUIRE_DOCKER=$required
timed pytest pytest tests/e2e tests/integration/test_image.py -v --timeout=900 --durations=15 -p no:cacheprovider
