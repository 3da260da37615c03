#!/usr/bin/env bash
# Builds the pinned toolchain from Go modules into a cache outside the checkout, keyed by version,
# and points ./bin at it. Idempotent: a tool whose versioned directory exists is not rebuilt.
#
#   hack/tools.sh [tool ...]     tools: kubernetes etcd kwok kwok-stages helm kind minio velero coredns flannel crictl cron-oracle metrics-server
#                                e2e-test
#                                (default: the embedded cluster's five; velero is for bench/backup.py,
#                                kind/coredns/flannel/crictl for the kind node image, hack/kind/)
#
# KUBEPLANE_CACHE (default ~/.cache/kubeplane) holds the builds; a fresh clone on the same machine
# reuses them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/versions.env
source "$root/hack/versions.env"
cache=${KUBEPLANE_CACHE:-$HOME/.cache/kubeplane}/tools
bin=$root/bin
mkdir -p "$cache" "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

say() { printf '\033[1m[tools]\033[0m %s\n' "$*" >&2; }

# build NAME VERSION FUNC: runs FUNC DIR unless DIR is already complete, then links DIR/* into bin/.
build() {
  local name=$1 version=$2 fn=$3 dir=$cache/$1-$2
  if [[ ! -f $dir/.complete ]]; then
    say "building $name $version (first time on this machine; later runs reuse $dir)"
    local start=$SECONDS
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    # A heartbeat so a long cold build never leaves a silent terminal.
    ( while sleep 60; do say "  ... still building $name ($(( (SECONDS - start) / 60 )) min)"; done ) &
    local beat=$!
    if ! "$fn" "$dir.tmp"; then kill "$beat" 2>/dev/null; say "FAILED to build $name"; return 1; fi
    kill "$beat" 2>/dev/null || true
    touch "$dir.tmp/.complete" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "built $name $version in $((SECONDS - start))s"
  fi
  local f
  for f in "$dir"/*; do ln -sfn "$f" "$bin/$(basename "$f")"; done
}

build_kubernetes() {
  local out=$1 v=${KUBERNETES_VERSION#v} major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  local ld="" pkg
  # The same version keys upstream's hack/lib/version.sh stamps; unstamped binaries say v0.0.0-master.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  [[ ${KUBEPLANE_KIND_BINARIES:-0} == 1 ]] && cmds+=(kubelet kubeadm kube-proxy)
  (cd "$root/hack/tools/kubernetes" && go build -trimpath -ldflags "-s -w $ld" -o "$out/" \
    "${cmds[@]/#/k8s.io/kubernetes/cmd/}")
}
build_etcd() { (cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3); }
build_kwok() { GOBIN=$1 go install -trimpath -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok@"$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwokctl@"$KWOK_VERSION"; }
# KWOK's stages for the embedded cluster: kwokctl's defaults for the binary runtime (node-initialize,
# node-heartbeat-with-lease, pod-ready, pod-delete), read from the pinned kwok module, without `pod-complete`
# (it ends every pod owned by any kind named Job at once, so nothing could fail), plus kwok's volume stages
# (a claim of StorageClass kwok-volume gets a PersistentVolume made for it, which kube-controller-manager's
# PV controller binds; hack/cluster.sh creates the StorageClass), plus our hack/kwok/*.yaml.
KWOK_STAGES="node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready
  pod/fast/pod-delete volume/fast/pvc-provision volume/fast/pv-bind volume/fast/pvc-delete volume/fast/pv-delete"
build_kwok_stages() {
  local dir f
  dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') || return 1
  for f in $KWOK_STAGES; do
    printf -- '---\n' && cat "$dir/kustomize/stage/$f.yaml" || return 1
  done >"$1/kwok-stages.yaml"
  for f in "$root"/hack/kwok/*.yaml; do printf -- '---\n' && cat "$f"; done >>"$1/kwok-stages.yaml"
}
# metrics-server stamps its version through client-go's version package; kwokctl reads it (`--version`).
build_metrics_server() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    sigs.k8s.io/metrics-server/cmd/metrics-server@"$METRICS_SERVER_VERSION"
}
build_kind() { GOBIN=$1 go install -trimpath -ldflags "-s -w" sigs.k8s.io/kind@"$KIND_VERSION"; }
build_minio() { GOBIN=$1 go install -trimpath -ldflags "-s -w" github.com/minio/minio@"$MINIO_VERSION"; }
# Velero (benchmark peer only): a wrapper module because upstream's go.mod replaces kopia, which
# `go install velero@version` refuses. The AWS object-store plugin goes to velero-plugins/ (bin/velero-plugins), for --plugin-dir.
build_velero() {
  local pkg=github.com/vmware-tanzu/velero/pkg/buildinfo
  (cd "$root/hack/tools/velero" && go build -trimpath -ldflags "-s -w -X $pkg.Version=$VELERO_VERSION \
    -X $pkg.GitSHA=0000000000000000000000000000000000000000 -X $pkg.GitTreeState=clean" \
    -o "$1/velero" github.com/vmware-tanzu/velero/cmd/velero) || return 1
  GOBIN=$1/velero-plugins go install -trimpath -ldflags "-s -w" \
    github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws@"$VELERO_AWS_PLUGIN_VERSION"
}
build_coredns() { GOBIN=$1 go install -trimpath -ldflags "-s -w" github.com/coredns/coredns@"$COREDNS_VERSION"; }
# crictl (kind's node needs it): a wrapper module, because cri-tools v1.34.0 requires a release
# candidate of k8s.io/cri-client that the checksum database does not know; it builds against v0.34.4.
build_crictl() {
  (cd "$root/hack/tools/crictl" && go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    -o "$1/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
}
# flanneld (a wrapper module: see hack/tools/flannel/go.mod) and its CNI plugin, installed as
# cni-flannel (bin/flanneld is the daemon). flanneld needs cgo (its udp backend); linked statically,
# with Go's own resolver, so it runs in any image.
build_flannel() {
  (cd "$root/hack/tools/flannel" && CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
    -ldflags "-s -w -linkmode external -extldflags -static -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" \
    -o "$1/flanneld" github.com/flannel-io/flannel) || return 1
  GOBIN=$1/cni go install -trimpath -ldflags "-s -w" \
    github.com/containernetworking/plugins/plugins/meta/flannel@"$FLANNEL_CNI_VERSION" || return 1
  mv "$1/cni/flannel" "$1/cni-flannel" && rmdir "$1/cni"
}
# e2e-test: upstream's end-to-end test binary (test/e2e), for `make conformance`. Same module, same flags.
build_e2e_test() {
  (cd "$root/hack/tools/kubernetes" && go test -c -vet=off -trimpath -ldflags "-s -w" -o "$1/e2e.test" \
    k8s.io/kubernetes/test/e2e)
}
# cron-oracle: a 60-line program of ours that answers with robfig/cron/v3 itself (the module Kubernetes
# pins), so tests can hold operators/core/cron.py to it. Keyed by its source, so an edit rebuilds it.
build_cron_oracle() { (cd "$root/hack/tools/cron-oracle" && go build -trimpath -ldflags "-s -w" -o "$1/cron-oracle" .); }
build_helm() {
  local v=${KUBERNETES_VERSION#v} k8s_minor
  k8s_minor=${v#*.}; k8s_minor=${k8s_minor%%.*}
  # Upstream's Makefile stamps these; without them helm says "v3.21" and templates for Kubernetes 1.20.
  GOBIN=$1 go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
    helm.sh/helm/v3/cmd/helm@"$HELM_VERSION"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(etcd kwok kwok-stages helm minio kubernetes cron-oracle metrics-server)
total=$SECONDS
for t in "${tools[@]}"; do
  case $t in
    kubernetes) key=$KUBERNETES_VERSION; [[ ${KUBEPLANE_KIND_BINARIES:-0} == 1 ]] && key+=-node ;;
    etcd) key=$ETCD_VERSION ;; kwok) key=$KWOK_VERSION ;; helm) key=$HELM_VERSION ;;
    kind) key=$KIND_VERSION ;; minio) key=$MINIO_VERSION ;; metrics-server) key=$METRICS_SERVER_VERSION ;;
    velero) key=$VELERO_VERSION-aws-$VELERO_AWS_PLUGIN_VERSION ;;
    coredns) key=$COREDNS_VERSION ;; crictl) key=$CRICTL_VERSION ;;
    flannel) key=$FLANNEL_VERSION-cni-$FLANNEL_CNI_VERSION ;;
    e2e-test) key=$KUBERNETES_VERSION ;;
    kwok-stages) key=$KWOK_VERSION-$( (echo "$KWOK_STAGES"; cat "$root"/hack/kwok/*.yaml) | sha256sum | cut -c1-12) ;;
    cron-oracle) key=$(cat "$root"/hack/tools/cron-oracle/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12) ;;
    *) say "unknown tool '$t' (known: kubernetes etcd kwok helm kind minio velero coredns flannel crictl cron-oracle kwok-stages e2e-test metrics-server)"
       exit 2 ;;
  esac
  build "$t" "$key" "build_${t//-/_}"
done
say "toolchain ready in bin/ ($((SECONDS - total))s)"
