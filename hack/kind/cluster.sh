#!/usr/bin/env bash
# A kind cluster with flannel, and kubeplane deployed into it with Helm.
#
#   hack/kind/cluster.sh up        `make kind-up`: cluster `kubeplane` (1 control plane + 2 workers),
#                                  flannel (vxlan) as the CNI, CoreDNS Running, metrics-server serving
#                                  metrics.k8s.io from the kubelets (hack/kind/metrics-server); idempotent.
#                                  With DROP_IN=1 it also deploys kubeplane in drop-in mode (below).
#   hack/kind/cluster.sh deploy    `make kind-deploy`: operator image built and `kind load`ed, chart
#                                  installed with the in-cluster MinIO, a default BSL and the external
#                                  metrics API (externalMetrics.enabled), waits for Ready
#   hack/kind/cluster.sh down      `make kind-down`: deletes the cluster
#
# Drop-in mode (DROP_IN=1, or a cluster already switched, as its kube-controller-manager shows): kubeplane's
# controllers run with --drop-in (chart value operators.controllers.dropIn) and drive the built-in kinds
# kube-controller-manager's matching controllers drove (`kubeplane controllers replaced`). A cluster cannot
# start that way (CoreDNS, flannel and kubeplane's own Deployment need a ReplicaSet controller before
# kubeplane runs), so it starts stock; once kubeplane is Ready, kube-controller-manager's static pod
# manifest gets `--controllers=*,bootstrapsigner,tokencleaner,-<replaced>...` (kubeadm's default list
# minus those), the kubelet restarts it, and kubeplane carries on with every ReplicaSet, its own included.
#   hack/kind/cluster.sh status
#
# Two ways to get the node image and flannel:
#   offline (default here): hack/kind/images.sh builds everything from pinned Go modules and Debian
#     packages; flannel comes from hack/kind/flannel.yaml with that image.
#   KUBEPLANE_KIND_OFFLINE=0 (a laptop or hosted CI with registry access): kind's published node image
#     ($KIND_NODE_IMAGE) and flannel's published manifest ($FLANNEL_MANIFEST_URL).
#
# KIND_CLUSTER (default kubeplane) names the cluster; the kubeconfig goes to .kubeplane/kind-kubeconfig
# (.kubeplane/kind-<name>-kubeconfig for other names).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=hack/versions.env
source hack/versions.env
# shellcheck source=hack/lib/docker.sh
source hack/lib/docker.sh

name=${KIND_CLUSTER:-kubeplane}
offline=${KUBEPLANE_KIND_OFFLINE:-1}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.0}
FLANNEL_MANIFEST_URL=${FLANNEL_MANIFEST_URL:-https://github.com/flannel-io/flannel/releases/download/$FLANNEL_VERSION/kube-flannel.yml}
release=${KUBEPLANE_RELEASE:-kubeplane}
namespace=${KUBEPLANE_NAMESPACE:-kubeplane-system}
mkdir -p .kubeplane
if [[ $name == kubeplane ]]; then kubeconfig=$root/.kubeplane/kind-kubeconfig; else kubeconfig=$root/.kubeplane/kind-$name-kubeconfig; fi
export KUBECONFIG=$kubeconfig PATH=$root/bin:$PATH

say() { printf '\033[1m[kind]\033[0m %s\n' "$*" >&2; }
start=$SECONDS
stage() { say "$1 ($((SECONDS - stage_start))s)"; stage_start=$SECONDS; }
stage_start=$SECONDS

exists() { kind get clusters 2>/dev/null | grep -qx "$name"; }

# wait_for WHAT SECONDS CMD...: polls CMD every 2 s, saying what it waits for every 20 s.
wait_for() {
  local what=$1 limit=$2 waited=0; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((waited >= limit)); then say "timed out after ${limit}s waiting for $what"; return 1; fi
    ((waited % 20 == 0 && waited > 0)) && say "  ... waiting for $what (${waited}s)"
    sleep 2; waited=$((waited + 2))
  done
}

nodes_ready() {
  local want=$1 ready
  ready=$(kubectl get nodes -o jsonpath='{range .items[*]}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' | grep -c True)
  [[ $ready -ge $want ]]
}
rollout() { kubectl -n "$1" rollout status "$2" --timeout=5s; }

up() {
  ensure_docker
  hack/tools.sh kind helm kubernetes >/dev/null
  local image manifest metrics_image
  if [[ $offline == 1 ]]; then
    hack/kind/images.sh
    image=kubeplane.local/kind-node:$KUBERNETES_VERSION
    manifest=$(sed "s|FLANNEL_IMAGE|kubeplane.local/flannel:$FLANNEL_VERSION|g" hack/kind/flannel.yaml)
    metrics_image=kubeplane.local/metrics-server:$METRICS_SERVER_VERSION
  else
    image=$KIND_NODE_IMAGE
    manifest=$(curl -fsSL "$FLANNEL_MANIFEST_URL")
    metrics_image=registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION
  fi
  stage "images ready"

  if exists; then
    say "cluster $name exists; checking it"
    kind get kubeconfig --name "$name" >"$kubeconfig"
  else
    say "creating cluster $name from $image (1 control plane, 2 workers, no default CNI)"
    kind create cluster --name "$name" --image "$image" --config hack/kind/cluster.yaml \
      --kubeconfig "$kubeconfig" --wait 0s
    stage "cluster created"
  fi
  chmod 600 "$kubeconfig"

  printf '%s\n' "$manifest" | kubectl apply -f - >/dev/null
  wait_for "flannel on every node" 300 rollout kube-flannel daemonset/kube-flannel-ds
  wait_for "3 nodes Ready" 300 nodes_ready 3
  wait_for "CoreDNS" 300 rollout kube-system deployment/coredns
  stage "flannel, nodes and CoreDNS ready"
  if [[ $offline == 1 ]]; then
    kind load docker-image --name "$name" "$metrics_image" 2>&1 | grep -v '^Image: .* not yet present' >&2 || true
  fi
  # The APIService last, once kube-proxy routes the Service (see service_routed).
  local metrics
  metrics=$(kubectl kustomize hack/kind/metrics-server | sed "s|METRICS_SERVER_IMAGE|$metrics_image|")
  printf '%s\n' "$metrics" | yaml_docs other | kubectl apply -f - >/dev/null
  wait_for "metrics-server" 300 rollout kube-system deployment/metrics-server
  wait_for "kube-proxy on the control plane routing metrics-server's Service" 120 \
    service_routed kube-system k8s-app=metrics-server
  printf '%s\n' "$metrics" | yaml_docs APIService | kubectl apply -f - >/dev/null
  wait_for "the metrics.k8s.io API" 120 kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes
  stage "metrics-server serving metrics.k8s.io"
  kubectl get nodes -o wide >&2
  say "cluster $name is up in $((SECONDS - start))s; use it with: export KUBECONFIG=$kubeconfig"
  if [[ ${DROP_IN:-} == 1 ]]; then
    deploy
  fi
}

# Whether kube-controller-manager runs without any of its workload controllers (a switched cluster).
kcm_in_drop_in_mode() {
  docker exec "$name-control-plane" grep -q -- '--controllers=.*,-[a-z]*-controller' \
    /etc/kubernetes/manifests/kube-controller-manager.yaml 2>/dev/null
}

# switch_to_drop_in: kube-controller-manager without the controllers kubeplane replaces.
switch_to_drop_in() {
  local replaced node=$name-control-plane manifest=/etc/kubernetes/manifests/kube-controller-manager.yaml flag
  replaced=$(.venv/bin/kubeplane controllers replaced)
  flag="--controllers=*,bootstrapsigner,tokencleaner,-${replaced//,/,-}"
  if docker exec "$node" grep -qxF -- "    - $flag" "$manifest"; then
    say "kube-controller-manager already runs without $replaced"
  else
    say "switching kube-controller-manager to drop-in mode: $flag"
    # Rewritten in place (a temporary file in manifests/ would be read by the kubelet as a second pod).
    docker exec "$node" sh -c "sed 's|^    - --controllers=.*|    - $flag|' $manifest >/tmp/kcm.yaml &&
      grep -qxF -- '    - $flag' /tmp/kcm.yaml && cat /tmp/kcm.yaml >$manifest"
  fi
  kcm_switched() {
    kubectl -n kube-system get pod "kube-controller-manager-$node" -o jsonpath='{.spec.containers[0].command}' |
      grep -qF -- "$flag" &&
      kubectl -n kube-system wait --for=condition=Ready "pod/kube-controller-manager-$node" --timeout=5s
  }
  wait_for "kube-controller-manager restarted with $flag" 300 kcm_switched
  stage "kube-controller-manager in drop-in mode"
}

# service_routed NAMESPACE SELECTOR: the control plane's kube-proxy sends the selected Service's ClusterIP to
# its pods (the KUBE-SVC- jump exists only while the Service has ready endpoints). An APIService is created
# only after this: the aggregator keeps the connection of its first availability check open, and a check
# sent before the route existed leaves the cluster (this machine's network answers it with a 404) and keeps
# failing on that connection for good.
service_routed() {
  local ip
  ip=$(kubectl -n "$1" get service -l "$2" -o jsonpath='{.items[0].spec.clusterIP}') || return 1
  [[ -n $ip ]] && docker exec "$name-control-plane" iptables-save -t nat | grep -- "-d $ip/32" | grep -q -- "-j KUBE-SVC-"
}

# yaml_docs APIService|other: the documents of a multi-document YAML stream that are (or are not) APIServices.
yaml_docs() {
  awk -v want="$1" 'BEGIN { RS = "\n---\n" } {
    api = ($0 ~ /(^|\n)kind: APIService(\n|$)/)
    if ((want == "APIService") == api) printf "---\n%s\n", $0
  }'
}

deploy() {
  exists || { say "no cluster $name; run make kind-up first"; exit 1; }
  kind get kubeconfig --name "$name" >"$kubeconfig"
  local version
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
  hack/image.sh
  local images=("kubeplane:$version")
  local minio_args=()
  if [[ $offline == 1 ]]; then
    hack/kind/images.sh
    images+=("kubeplane.local/minio:$MINIO_VERSION" kubeplane.local/e2e-http:v1)
    minio_args=(--set minio.image.repository=kubeplane.local/minio --set "minio.image.tag=$MINIO_VERSION")
  fi
  stage "images built"
  for i in "${images[@]}"; do
    say "kind load docker-image $i"
    kind load docker-image --name "$name" "$i" 2>&1 | grep -v '^Image: .* not yet present' >&2 || true
  done
  stage "images loaded into the nodes"
  # The tag stays the project's version: the image's id in the pod template rolls the operators out when
  # the code changed (same tag, new image), and only then.
  local image_id op rollout_args=()
  image_id=$(docker image inspect -f '{{.Id}}' "kubeplane:$version")
  for op in controllers scheduler backup; do
    rollout_args+=(--set-string "operators.$op.podAnnotations.kubeplane\.dev/image-id=${image_id#sha256:}")
  done
  local drop_in=false
  # Drop-in is read from the cluster itself (a checkout that did not switch it has no marker).
  [[ ${DROP_IN:-} == 1 ]] || kcm_in_drop_in_mode && drop_in=true
  # The external metrics APIService is registered only once its Service routes: the aggregator keeps the
  # connection of its first availability check open, and a check sent before kube-proxy routed the
  # ClusterIP leaves the cluster (here it reaches a host that answers 404) and keeps failing on that
  # connection. A redeploy keeps an APIService already registered.
  local apiservice=false
  kubectl get apiservice v1beta1.external.metrics.k8s.io >/dev/null 2>&1 && apiservice=true
  # The backup operator's /tmp is 64Mi here (the chart's default is 1Gi, for bookkeeping at scale): the
  # e2e test of a 150 MiB tarball then proves the tarball streams and is never spooled to disk.
  install() {
    helm upgrade --install "$release" charts/kubeplane --namespace "$namespace" --create-namespace \
      --set "image.tag=$version" --set image.pullPolicy=IfNotPresent \
      --set operators.scheduler.enabled=true --set operators.backup.enabled=true \
      --set operators.backup.tmpSize=64Mi \
      --set "operators.controllers.dropIn=$drop_in" \
      --set minio.enabled=true --set backupStorageLocation.create=true "${minio_args[@]}" \
      --set externalMetrics.enabled=true --set "externalMetrics.apiService.create=$1" "${rollout_args[@]}" \
      --wait --timeout 5m ${KUBEPLANE_HELM_ARGS:-}
  }
  say "helm upgrade --install $release charts/kubeplane -n $namespace (MinIO, default BackupStorageLocation, external metrics API, drop-in: $drop_in)"
  install "$apiservice"
  local d
  for d in $(kubectl -n "$namespace" get deployments -o name); do
    wait_for "$d" 300 rollout "$namespace" "$d"
  done
  if [[ $apiservice == false ]]; then
    wait_for "kube-proxy on the control plane routing the external metrics Service" 120 \
      service_routed "$namespace" app.kubernetes.io/component=external-metrics
    say "registering the external metrics APIService"
    install true
  fi
  wait_for "the external metrics APIService Available" 120 kubectl wait --for=condition=Available \
    apiservice/v1beta1.external.metrics.k8s.io --timeout=5s
  stage "kubeplane deployed"
  if [[ $drop_in == true ]]; then
    switch_to_drop_in
  fi
  kubectl -n "$namespace" get pods -o wide >&2
  say "kubeplane is running in kind cluster $name ($((SECONDS - start))s)"
}

down() {
  if exists; then
    kind delete cluster --name "$name"
  else
    say "no cluster $name"
  fi
  rm -f "$kubeconfig"
}

status() {
  if ! exists; then say "no cluster $name"; return 0; fi
  kind get kubeconfig --name "$name" >"$kubeconfig"
  kcm_in_drop_in_mode && say "drop-in mode: kube-controller-manager runs without some workload controllers"
  kubectl get nodes -o wide
  kubectl get pods -A -o wide
}

case ${1:-} in
  up) up ;;
  deploy) deploy ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|deploy|down|status" >&2; exit 2 ;;
esac
