#!/usr/bin/env bash
# The images upstream's [sig-apps] conformance tests for kubeplane's kinds run, built without any
# registry and tagged with the exact names test/utils/image/manifest.go gives them:
#
#   registry.k8s.io/e2e-test-images/agnhost:2.56      agnhost from the pinned k8s.io/kubernetes module
#                                                     (ENTRYPOINT /agnhost, CMD pause, as upstream)
#   registry.k8s.io/e2e-test-images/httpd:2.4.38-4    a stand-in for Apache: Debian's busybox httpd
#   registry.k8s.io/e2e-test-images/httpd:2.4.39-4      serving /usr/local/apache2/htdocs on port 80,
#   registry.k8s.io/e2e-test-images/nginx:1.14-4        /bin/sh and mv, under tini, so a pod stops at
#   registry.k8s.io/e2e-test-images/nginx:1.15-4        once on SIGTERM (its content is not tested)
#   registry.k8s.io/e2e-test-images/busybox:1.37.0-1  Debian's busybox-static alone, its applets linked
#                                                     into /bin (so /bin/sh is busybox's ash: `[[ ]]`,
#                                                     $RANDOM), CMD sh, as upstream's; the Job tests'
#                                                     shell commands and exit codes run in it
#   registry.k8s.io/e2e-test-images/resource-consumer:1.13
#                                                     the HPA tests' load: consumer and consume-cpu from
#                                                     the pinned module, Debian's stress for memory, on
#                                                     the project's Debian base (upstream's is Debian too)
#   (registry.k8s.io/pause:3.10.1 is already in the kind node image)
#
#   hack/conformance/images.sh [KIND CLUSTER]   build what is missing or stale; `kind load` them when
#                                               a cluster is named
# Cached by content, like hack/kind/images.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=hack/versions.env
source hack/versions.env
# shellcheck source=hack/lib/docker.sh
source hack/lib/docker.sh
export PATH="$root/bin:$PATH"

label=dev.kubeplane.conformance-hash
say() { printf '\033[1m[conformance-images]\033[0m %s\n' "$*" >&2; }
cluster=${1:-}
ensure_docker
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
hack/base-image.sh
base_id=$(docker image inspect -f '{{.Id}}' "${KUBEPLANE_BASE_IMAGE:-kubeplane-base:bookworm}")
work=$(mktemp -d /var/tmp/kubeplane-conformance-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

registry=registry.k8s.io/e2e-test-images
agnhost=$registry/agnhost:2.56
busybox=$registry/busybox:1.37.0-1
webservers=("$registry/httpd:2.4.38-4" "$registry/httpd:2.4.39-4" "$registry/nginx:1.14-4" "$registry/nginx:1.15-4")

fresh() { [[ $(image_label "$1" "$label") == "$2" ]]; }

# agnhost: one static binary; upstream's image runs `agnhost pause` unless told otherwise.
agnhost_hash=$( { cat "$0"; echo "$KUBERNETES_VERSION"; } | sha256sum | cut -c1-16)
if fresh "$agnhost" "$agnhost_hash"; then
  say "$agnhost is up to date"
else
  say "building agnhost from k8s.io/kubernetes@$KUBERNETES_VERSION"
  (cd hack/tools/kubernetes && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
    -o "$work/rootfs/agnhost" k8s.io/kubernetes/test/images/agnhost)
  mkdir -p "$work/rootfs/tmp" && chmod 1777 "$work/rootfs/tmp"
  tar -C "$work/rootfs" --numeric-owner --owner=0 --group=0 -c . |
    docker import --change 'ENTRYPOINT ["/agnhost"]' --change 'CMD ["pause"]' --change "LABEL $label=$agnhost_hash" \
      - "$agnhost" >/dev/null
  say "built $agnhost"
fi

# The web server stand-in, from the project's Debian base.
web_hash=$( { cat "$0"; echo "$base_id"; } | sha256sum | cut -c1-16)
if fresh "${webservers[0]}" "$web_hash"; then
  say "${webservers[0]} and its tags are up to date"
else
  say "building the httpd/nginx stand-in (busybox httpd under tini)"
  mkdir -p "$work/web"
  cat >"$work/web/Dockerfile" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      busybox-static tini >/dev/null && rm -rf /var/lib/apt/lists/* && \
    mkdir -p /usr/local/apache2/htdocs && echo '<html><body><h1>It works!</h1></body></html>' \
      >/usr/local/apache2/htdocs/index.html
EXPOSE 80
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/usr/local/apache2/htdocs"]
DOCKERFILE
  docker build -q --label "$label=$web_hash" --build-arg "BASE_IMAGE=$base_id" -t "${webservers[0]}" "$work/web" >/dev/null
  say "built ${webservers[0]}"
fi
for tag in "${webservers[@]:1}"; do docker tag "${webservers[0]}" "$tag"; done

# busybox: the stand-in's busybox binary on its own, like upstream's image (no Debian userland).
busybox_hash=$( { cat "$0"; docker image inspect -f '{{.Id}}' "${webservers[0]}"; } | sha256sum | cut -c1-16)
if fresh "$busybox" "$busybox_hash"; then
  say "$busybox is up to date"
else
  say "building $busybox (busybox-static, applets in /bin)"
  mkdir -p "$work/busybox"
  cat >"$work/busybox/Dockerfile" <<'DOCKERFILE'
ARG WEB_IMAGE
FROM ${WEB_IMAGE} AS source
RUN mkdir -p /rootfs/bin /rootfs/tmp /rootfs/etc /rootfs/root && chmod 1777 /rootfs/tmp && \
    cp /bin/busybox /rootfs/bin/busybox && \
    for applet in $(/bin/busybox --list); do ln -s busybox "/rootfs/bin/$applet"; done && \
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >/rootfs/etc/passwd && \
    printf 'root:x:0:\nnobody:x:65534:\n' >/rootfs/etc/group
FROM scratch
COPY --from=source /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
DOCKERFILE
  # --no-cache: the legacy builder reuses a COPY --from layer whose symlinks pointed elsewhere
  docker build -q --no-cache --label "$label=$busybox_hash" --build-arg "WEB_IMAGE=${webservers[0]}" -t "$busybox" \
    "$work/busybox" >/dev/null
  docker run --rm "$busybox" sh -c '[[ -d /bin ]] && [ "$(echo $((1 + 1)))" = 2 ]' ||
    { say "$busybox: its shell cannot run [[ ]] or arithmetic"; exit 1; }
  say "built $busybox"
fi

# resource-consumer: upstream's layout (/consumer runs ./consume-cpu/consume-cpu from /, and stress).
consumer=$registry/resource-consumer:1.13
consumer_hash=$( { cat "$0"; echo "$KUBERNETES_VERSION"; echo "$base_id"; } | sha256sum | cut -c1-16)
if fresh "$consumer" "$consumer_hash"; then
  say "$consumer is up to date"
else
  say "building resource-consumer from k8s.io/kubernetes@$KUBERNETES_VERSION"
  mkdir -p "$work/consumer/consume-cpu"
  (cd hack/tools/kubernetes && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
      -o "$work/consumer/consumer" k8s.io/kubernetes/test/images/resource-consumer &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
      -o "$work/consumer/consume-cpu/consume-cpu" k8s.io/kubernetes/test/images/resource-consumer/consume-cpu)
  cat >"$work/consumer/Dockerfile" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      stress >/dev/null && rm -rf /var/lib/apt/lists/*
COPY consumer /consumer
COPY consume-cpu /consume-cpu
WORKDIR /
EXPOSE 8080
ENTRYPOINT ["/consumer"]
DOCKERFILE
  docker build -q --label "$label=$consumer_hash" --build-arg "BASE_IMAGE=$base_id" -t "$consumer" \
    "$work/consumer" >/dev/null
  say "built $consumer"
fi

if [[ -n $cluster ]]; then
  for image in "$agnhost" "$busybox" "${webservers[@]}" "$consumer"; do
    say "kind load docker-image $image"
    kind load docker-image --name "$cluster" "$image" 2>&1 | grep -v 'not yet present' >&2 || true
  done
fi
