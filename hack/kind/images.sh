#!/usr/bin/env bash
# Builds, without any registry, every image the offline kind cluster needs (hack/kind/cluster.sh):
#
#   kubeplane.local/kind-node:<k8s version>   the node image: Debian bookworm from debootstrap, kind's
#                                             base files, containerd/runc/CNI from Debian, kubelet,
#                                             kubeadm, kubectl, crictl; and preloaded in its containerd:
#     registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:<k8s version>
#     registry.k8s.io/etcd:<kubeadm's tag>, registry.k8s.io/coredns/coredns:<tag>,
#     registry.k8s.io/pause:<tags>            exactly the names `kubeadm config images list` prints,
#                                             built from this repo's pinned Go builds (bin/)
#     kubeplane.local/flannel:<version>       flanneld (+ its CNI plugin), the pod network
#   kubeplane.local/minio:<version>           MinIO for the chart's in-cluster store   } loaded with
#   kubeplane.local/e2e-http:v1               the e2e workload (tests/e2e/httpserver)  } `kind load`
#   kubeplane.local/metrics-server:<version>  metrics-server (hack/kind/metrics-server) }
#
#   hack/kind/images.sh            build what is missing or stale, print each stage's time
#
# Cached by content: each image carries a label hashing its inputs (scripts, Dockerfiles, pinned
# versions, the base image's id); a matching label means no rebuild, so a warm run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=hack/versions.env
source hack/versions.env
# shellcheck source=hack/lib/docker.sh
source hack/lib/docker.sh

label=dev.kubeplane.kind-hash
say() { printf '\033[1m[kind-images]\033[0m %s\n' "$*" >&2; }
start=$SECONDS

ensure_docker
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi

# The Kubernetes node binaries, CoreDNS, flannel, crictl, etcd, MinIO and kind itself: all from
# pinned Go modules, cached in ~/.cache/kubeplane (the first build takes minutes, later ones nothing).
KUBEPLANE_KIND_BINARIES=1 hack/tools.sh kubernetes etcd kind coredns flannel crictl minio metrics-server
hack/base-image.sh
base_id=$(docker image inspect -f '{{.Id}}' "${KUBEPLANE_BASE_IMAGE:-kubeplane-base:bookworm}")

work=$(mktemp -d /var/tmp/kubeplane-kind-images.XXXXXX)
builder=""
cleanup() {
  [[ -n $builder ]] && docker rm -f "$builder" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# hash_of WORDS...: a short content hash of files (by content) and plain strings.
hash_of() {
  local x
  for x in "$@"; do
    if [[ -f $x ]]; then sha256sum "$x"; elif [[ -d $x ]]; then find "$x" -type f -print0 | sort -z | xargs -0 sha256sum; else echo "$x"; fi
  done | sha256sum | cut -c1-16
}
# fresh IMAGE HASH: true when IMAGE exists with this hash (nothing to do).
fresh() {
  if [[ $(image_label "$1" "$label") == "$2" ]]; then say "  $1 is up to date"; return 0; fi
  return 1
}

# import_binary IMAGE HASH SRC DEST [ENTRYPOINT-JSON]: an image holding one static binary at DEST.
# Control-plane static pods name their command (`kube-apiserver ...`), so PATH must reach it.
import_binary() {
  local image=$1 hash=$2 src=$3 dest=$4 entrypoint=${5:-}
  fresh "$image" "$hash" && return 0
  local dir=$work/rootfs-$RANDOM
  mkdir -p "$dir$(dirname "$dest")" "$dir/tmp" && chmod 1777 "$dir/tmp"
  cp -L "$src" "$dir$dest" && chmod 0755 "$dir$dest"
  local changes=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change "LABEL $label=$hash")
  [[ -n $entrypoint ]] && changes+=(--change "ENTRYPOINT $entrypoint")
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . | docker import "${changes[@]}" - "$image" >/dev/null
  rm -rf "$dir"
  say "  built $image"
}

# docker_build ARGS...: docker build showing only its step lines (the full log on failure).
docker_build() {
  local log=$work/build-$RANDOM.log rc=0 pid
  docker build --force-rm "$@" >"$log" 2>&1 &
  pid=$!
  tail -n +1 -f --pid "$pid" "$log" | grep --line-buffered -E '^Step [0-9]+/' | cut -c1-110 >&2 || true
  wait "$pid" || rc=$?
  if ((rc)); then tail -n 40 "$log" >&2; say "docker build FAILED: docker build $*"; return 1; fi
}

# build_from DIR IMAGE HASH [docker build args...]: docker build of a prepared context.
build_from() {
  local dir=$1 image=$2 hash=$3; shift 3
  fresh "$image" "$hash" && return 0
  say "  building $image"
  docker_build --label "$label=$hash" -t "$image" "$@" "$dir"
}

# Tags kubeadm and kind expect. kind's containerd config names its sandbox (pause) image; kubeadm
# names the rest. Our etcd and CoreDNS builds stand in under kubeadm's tags (versions in versions.env).
mapfile -t wanted < <(bin/kubeadm config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null)
kind_files=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/images/base/files
kind_pause=$(sed -n 's/^\s*sandbox_image = "\(.*\)"/\1/p' "$kind_files/etc/containerd/config.toml")
tag_of() { local i; for i in "${wanted[@]}"; do [[ $i == *"/$1:"* ]] && { echo "$i"; return; }; done; say "kubeadm lists no $1 image"; return 1; }

step=$SECONDS
say "component images (registry.k8s.io names, built from bin/)"
k8s_hash() { hash_of "$0" "$1" "$(readlink -f "bin/$2")" "$(stat -c %s "$(readlink -f "bin/$2")")"; }
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  import_binary "$(tag_of "$c")" "$(k8s_hash "$KUBERNETES_VERSION" "$c")" "bin/$c" "/usr/local/bin/$c"
done
import_binary "$(tag_of etcd)" "$(k8s_hash "$ETCD_VERSION" etcd)" bin/etcd /usr/local/bin/etcd
import_binary "$(tag_of coredns)" "$(k8s_hash "$COREDNS_VERSION" coredns)" bin/coredns /coredns '["/coredns"]'

# pause: the upstream C source from the k8s.io/kubernetes module, linked statically.
pause_src=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/build/pause/linux/pause.c
pause_tag=$(tag_of pause)
pause_hash=$(hash_of "$0" "$pause_src" "$pause_tag" "$kind_pause")
if ! fresh "$pause_tag" "$pause_hash" || ! fresh "$kind_pause" "$pause_hash"; then
  command -v gcc >/dev/null || { say "gcc is needed to build the pause binary (apt-get install gcc libc6-dev)"; exit 1; }
  gcc -Os -static -Wall -Werror -DVERSION="${pause_tag##*:}" -o "$work/pause" "$pause_src"
  import_binary "$pause_tag" "$pause_hash" "$work/pause" /pause '["/pause"]'
  docker tag "$pause_tag" "$kind_pause"
fi

import_binary "kubeplane.local/minio:$MINIO_VERSION" "$(k8s_hash "$MINIO_VERSION" minio)" bin/minio /usr/bin/minio '["/usr/bin/minio"]'
import_binary "kubeplane.local/metrics-server:$METRICS_SERVER_VERSION" "$(k8s_hash "$METRICS_SERVER_VERSION" metrics-server)" \
  bin/metrics-server /metrics-server '["/metrics-server"]'
http_src=tests/e2e/httpserver
http_hash=$(hash_of "$0" "$http_src")
if ! fresh kubeplane.local/e2e-http:v1 "$http_hash"; then
  (cd "$http_src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/httpserver" .)
  import_binary kubeplane.local/e2e-http:v1 "$http_hash" "$work/httpserver" /httpserver '["/httpserver"]'
fi
say "  done in $((SECONDS - step))s"

step=$SECONDS
say "network images (Debian base + iptables/nftables): netbase, kube-proxy, flannel"
netbase=kubeplane.local/kind-netbase:bookworm
netbase_hash=$(hash_of hack/kind/netbase "$base_id")
build_from hack/kind/netbase "$netbase" "$netbase_hash" --build-arg "BASE_IMAGE=$base_id"
netbase_id=$(docker image inspect -f '{{.Id}}' "$netbase")

# build_net IMAGE HASH DEST SRC...: netbase plus binaries (copied to DEST/).
build_net() {
  local image=$1 hash=$2 dest=$3; shift 3
  fresh "$image" "$hash" && return 0
  local dir=$work/ctx-$RANDOM
  mkdir -p "$dir/files"
  cp -L "$@" "$dir/files/"
  printf 'FROM %s\nCOPY files/ %s/\n' "$netbase_id" "$dest" >"$dir/Dockerfile"
  build_from "$dir" "$image" "$hash"
}
build_net "$(tag_of kube-proxy)" "$(hash_of "$netbase_id" "$(k8s_hash "$KUBERNETES_VERSION" kube-proxy)")" \
  /usr/local/bin bin/kube-proxy
flannel_image=kubeplane.local/flannel:$FLANNEL_VERSION
build_net "$flannel_image" "$(hash_of "$netbase_id" "$(k8s_hash "$FLANNEL_VERSION" flanneld)" "$(readlink -f bin/cni-flannel)")" \
  /opt/bin bin/flanneld bin/cni-flannel
say "  done in $((SECONDS - step))s"

preload=("${wanted[@]}" "$kind_pause" "$flannel_image")
node=kubeplane.local/kind-node:$KUBERNETES_VERSION
ids=$(for i in "${preload[@]}"; do docker image inspect -f '{{.Id}}' "$i"; done)
shim=../shared/sandbox/runc-capfit
node_hash=$(hash_of hack/kind/node "$0" "$netbase_id" "$KIND_VERSION" "$ids" \
  "$(for b in kubeadm kubelet kubectl crictl; do readlink -f "bin/$b"; done)" "$( [[ -f $shim ]] && sha256sum "$shim")")
step=$SECONDS
if ! fresh "$node" "$node_hash"; then
  say "node image $node (Debian packages via apt, then ${#preload[@]} images preloaded into containerd)"
  ctx=$work/node
  mkdir -p "$ctx/bin" "$ctx/runtime-shim"
  cp hack/kind/node/Dockerfile "$ctx/"
  cp -r "$kind_files" "$ctx/kind-files" && chmod -R u+w "$ctx/kind-files"
  cp -L bin/kubeadm bin/kubelet bin/kubectl bin/crictl "$ctx/bin/"
  [[ -f $shim ]] && cp "$shim" "$ctx/runtime-shim/runc-capfit" && chmod 0755 "$ctx/runtime-shim/runc-capfit"
  docker_build --build-arg "NETBASE_IMAGE=$netbase_id" -t "$node-pre" "$ctx"
  say "  node base built in $((SECONDS - step))s; preloading images"

  # As `kind build node-image` does: run containerd inside a container of the image, import the
  # image archives (content only; the node unpacks them on first use), commit the container.
  builder=kubeplane-kind-build-$$
  docker run -d --name "$builder" --privileged --entrypoint /bin/sleep "$node-pre" infinity >/dev/null
  docker exec "$builder" bash -c 'nohup containerd >/var/log/containerd-preload.log 2>&1 &'
  docker exec "$builder" bash -c 'for i in $(seq 1 30); do ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; cat /var/log/containerd-preload.log; exit 1'
  for i in "${preload[@]}"; do
    docker save "$i" | docker exec -i "$builder" ctr --namespace=k8s.io images import \
      --all-platforms --no-unpack - >/dev/null
    say "    preloaded $i"
  done
  # (containerd stays a zombie under `sleep` as PID 1, so wait for its socket to stop answering.)
  docker exec "$builder" bash -c 'pkill containerd; for i in $(seq 1 40); do ctr version >/dev/null 2>&1 || exit 0; sleep 0.5; done; exit 1'
  sleep 1
  docker exec "$builder" rm -f /var/log/containerd-preload.log
  docker commit \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL $label=$node_hash" "$builder" "$node" >/dev/null
  docker rm -f "$builder" >/dev/null && builder=""
  docker rmi "$node-pre" >/dev/null 2>&1 || true
  say "  built $node ($(docker image inspect -f '{{.Size}}' "$node" | numfmt --to=iec)) in $((SECONDS - step))s"
fi
say "all kind images ready in $((SECONDS - start))s"
