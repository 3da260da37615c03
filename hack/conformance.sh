#!/usr/bin/env bash
# `make conformance`: upstream's own tests judge kubeplane's controllers: the [sig-apps] [Conformance]
# tests of every workload kind kubeplane replaces, and the [Feature:HPA] tests of the autoscaler that fit.
#
#   1. upstream's e2e test binary, built from the pinned k8s.io/kubernetes module (hack/tools.sh e2e-test,
#      cached in ~/.cache/kubeplane);
#   2. the kind cluster in drop-in mode (DROP_IN=1 hack/kind/cluster.sh up: kubeplane deployed with
#      --drop-in, kube-controller-manager without the controllers kubeplane replaces), with
#      hack/conformance/values.yaml (the HPA's RBAC for the test CRD it scales);
#   3. the images those tests run, built here and loaded into the nodes (hack/conformance/images.sh);
#   4. e2e.test focused on the tests of every controller kubeplane replaces (from `kubeplane controllers
#      replaced`: adding a kind adds its tests), in one serial pass;
#   5. each test's result, the tests that cannot run here with the reason, and `N passed, N failed`.
# Exit status: non-zero if any test failed or none ran.
#
# Environment: KIND_CLUSTER (default kubeplane), CONFORMANCE_FOCUS (a regex replacing the derived
# focus), CONFORMANCE_OUT (default .kubeplane/conformance: JUnit reports and e2e.test's log).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/bin:$root/.venv/bin:$PATH"
# shellcheck source=hack/lib/docker.sh
source hack/lib/docker.sh
name=${KIND_CLUSTER:-kubeplane}
out=${CONFORMANCE_OUT:-$root/.kubeplane/conformance}
if [[ $name == kubeplane ]]; then kubeconfig=$root/.kubeplane/kind-kubeconfig; else kubeconfig=$root/.kubeplane/kind-$name-kubeconfig; fi
say() { printf '\033[1m[conformance]\033[0m %s\n' "$*" >&2; }
start=$SECONDS
stage_start=$SECONDS
stage() { say "$1 ($((SECONDS - stage_start))s)"; stage_start=$SECONDS; }

# Upstream's tests for each kube-controller-manager controller kubeplane can replace (a regex over the
# full spec name): the workload controllers' [sig-apps] [Conformance] tests; the HPA has no conformance
# test, so its [Feature:HPA] tests that finish in minutes (one scales a ReplicationController 1 -> 2 on
# CPU, one a CRD through its scale subresource; the others wait out 5-minute windows or 10-minute
# stability checks).
apps() { echo "\\[sig-apps\\] ($1) .*\\[Conformance\\]"; }
declare -A focus_of=(
  [replicaset-controller]=$(apps ReplicaSet) [replicationcontroller-controller]=$(apps ReplicationController)
  [deployment-controller]=$(apps Deployment) [daemonset-controller]=$(apps "Daemon set|ControllerRevision")
  [statefulset-controller]=$(apps StatefulSet) [job-controller]=$(apps Job) [cronjob-controller]=$(apps CronJob)
  [horizontal-pod-autoscaler-controller]="\\[sig-autoscaling\\] \\[Feature:HPA\\] Horizontal pod autoscaling \\(scale resource: CPU\\) (ReplicationController light Should scale from 1 pod to 2 pods|CustomResourceDefinition Should scale with a CRD targetRef)"
)
# Tests that cannot run here, for reasons outside kubeplane (regex -> reason): none for today's kinds.
declare -A cannot_run=()

if ! ensure_docker; then
  if [[ ${KUBEPLANE_REQUIRE_E2E:-0} == 1 ]]; then say "KUBEPLANE_REQUIRE_E2E=1 but Docker cannot run here: FAILED"; exit 1; fi
  say "SKIPPED: no Docker engine, so no kind cluster (set KUBEPLANE_REQUIRE_E2E=1 to make this an error)"
  exit 0
fi
hack/tools.sh kubernetes kind helm e2e-test
stage "e2e.test ready"
DROP_IN=1 KUBEPLANE_HELM_ARGS="--values $root/hack/conformance/values.yaml ${KUBEPLANE_HELM_ARGS:-}" \
  hack/kind/cluster.sh up
stage "kind cluster $name in drop-in mode"
hack/conformance/images.sh "$name"
stage "test images loaded"

replaced=$(.venv/bin/kubeplane controllers replaced)
focuses=()
for controller in ${replaced//,/ }; do
  [[ -n ${focus_of[$controller]:-} ]] || { say "no upstream tests known for $controller: add them to focus_of[] here"; exit 1; }
  focuses+=("${focus_of[$controller]}")
done
focus=${CONFORMANCE_FOCUS:-"$(IFS='|'; echo "${focuses[*]}")"}
say "focus: $focus (kube-controller-manager runs without: $replaced)"
for pattern in "${!cannot_run[@]}"; do say "cannot run here: $pattern: ${cannot_run[$pattern]}"; done
skip_here=$(IFS='|'; echo "${!cannot_run[*]}")

rm -rf "$out" && mkdir -p "$out"
: >"$out/e2e.log"
# One pass: without the ginkgo CLI, e2e.test runs its specs one at a time, [Serial] ones included.
skip=()
[[ -n $skip_here ]] && skip=("--ginkgo.skip=$skip_here")
say "e2e.test (full log: $out/e2e.log)"
e2e.test --provider=skeleton --kubeconfig="$kubeconfig" --kubectl-path="$root/bin/kubectl" \
  --disable-log-dump --report-dir="$out" --ginkgo.focus="$focus" "${skip[@]}" \
  --ginkgo.timeout=3h --ginkgo.no-color --ginkgo.v >"$out/e2e.log" 2>&1 &
runner=$!
# Progress: each test as it starts and ends.
tail -n +1 -f --pid "$runner" "$out/e2e.log" | grep --line-buffered -E '^\[sig-(apps|autoscaling)\]|^• \[|^(•|S)[ ]|Ran [0-9]+ of' >&2 || true
wait "$runner" || true
stage "tests run"

python3 - "$out" "$focus" <<'PY'
import pathlib, re, sys, xml.etree.ElementTree as ET
out, focus = pathlib.Path(sys.argv[1]), re.compile(sys.argv[2])
results = {}
for report in sorted(out.glob("junit*.xml")):
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name", "").removeprefix("[It] ")
        if not focus.search(name):
            continue  # not selected: JUnit lists every spec of the suite
        if case.find("skipped") is not None:
            results.setdefault(name, "skipped")
        elif case.find("failure") is not None or case.find("error") is not None:
            results[name] = "FAILED"
        else:
            results[name] = "passed"
for name, result in sorted(results.items()):
    print(f"  {result:8} {name}")
passed = sum(r == "passed" for r in results.values())
failed = sum(r == "FAILED" for r in results.values())
skipped = sum(r == "skipped" for r in results.values())
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or skipped or not passed else 0)
PY
say "done in $((SECONDS - start))s"
