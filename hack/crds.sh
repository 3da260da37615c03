#!/usr/bin/env bash
# hack/crds.sh: kubeplane's CRDs installed with kubectl, owned the way the Helm chart owns them.
#
#   hack/crds.sh apply     apply crds/*.yaml (server-side) and wait until they are Established
#
# The chart renders the CRDs itself (crds.enabled, kept on uninstall). CRDs applied with plain kubectl
# would make a later `helm install` fail ("exists and cannot be imported into the current release").
# So every CRD applied here carries what Helm checks before adopting an object (the managed-by label
# and the release annotations) for the release the README installs: `helm install kubeplane
# charts/kubeplane -n kubeplane-system`, or KUBEPLANE_HELM_RELEASE / KUBEPLANE_HELM_NAMESPACE; and the
# chart's helm.sh/resource-policy=keep, so that `helm uninstall` leaves them, as the chart's own do.
# `make up` and `make install` both use it: one install path.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
release=${KUBEPLANE_HELM_RELEASE:-kubeplane}
namespace=${KUBEPLANE_HELM_NAMESPACE:-kubeplane-system}
kubectl=${KUBECTL:-kubectl}

shopt -s nullglob
files=("$root"/crds/*.yaml)
shopt -u nullglob
((${#files[@]})) || { echo "[crds] no CRDs in crds/" >&2; exit 0; }
fargs=()
for f in "${files[@]}"; do fargs+=(-f "$f"); done

case ${1:-apply} in
  apply)
    "$kubectl" apply --server-side --field-manager=kubeplane-hack --force-conflicts "${fargs[@]}" >/dev/null
    "$kubectl" label --overwrite "${fargs[@]}" app.kubernetes.io/managed-by=Helm >/dev/null
    "$kubectl" annotate --overwrite "${fargs[@]}" "meta.helm.sh/release-name=$release" \
      "meta.helm.sh/release-namespace=$namespace" helm.sh/resource-policy=keep >/dev/null
    # Right after creation a CRD has no status.conditions yet and `kubectl wait` errors out: retry.
    for _ in $(seq 1 60); do
      "$kubectl" wait --for=condition=Established --timeout=10s "${fargs[@]}" >/dev/null 2>&1 && exit 0
      sleep 1
    done
    "$kubectl" wait --for=condition=Established --timeout=1s "${fargs[@]}"
    ;;
  *) echo "usage: hack/crds.sh apply" >&2; exit 2 ;;
esac
