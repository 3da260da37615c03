#!/usr/bin/env bash
# `make image`: builds the operator image kubeplane:<version> (and :latest) from the Dockerfile.
#
#   hack/image.sh                                         base from debootstrap (no registry needed)
#   BASE_IMAGE=python:3.11-slim-bookworm hack/image.sh    the usual slim base, pulled from a registry
#
# IMAGE_REPO (default kubeplane) names the image. Without a running Docker engine it starts one with
# ../shared/sandbox/start-docker when that exists (hack/lib/docker.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
repo=${IMAGE_REPO:-kubeplane}

say() { printf '\033[1m[image]\033[0m %s\n' "$*" >&2; }
start=$SECONDS

# shellcheck source=hack/lib/docker.sh
source "$root/hack/lib/docker.sh"
ensure_docker

# One version, in pyproject.toml.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
[[ -n $version ]] || { say "no version = \"...\" line in pyproject.toml"; exit 1; }

# No BASE_IMAGE given: no registry assumed, build (or reuse) the debootstrap base.
if [[ -z ${BASE_IMAGE:-} ]]; then
  BASE_IMAGE=${KUBEPLANE_BASE_IMAGE:-kubeplane-base:bookworm}
  hack/base-image.sh "$BASE_IMAGE"
fi

# CAs this host added locally (Debian keeps them in /usr/local/share/ca-certificates), e.g. for a
# TLS-intercepting proxy: pip inside the build must trust them too. They are public certificates,
# used only in the builder stage. EXTRA_CA_CERTS=FILE picks another PEM bundle, EXTRA_CA_CERTS= none.
extra_ca=""
if [[ -n ${EXTRA_CA_CERTS+set} ]]; then
  [[ -z $EXTRA_CA_CERTS ]] || extra_ca=$(cat "$EXTRA_CA_CERTS")
elif compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  extra_ca=$(cat /usr/local/share/ca-certificates/*.crt)
  say "the build trusts this host's extra CAs too: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
previous=$(docker image inspect -f '{{.Id}}' "$repo:$version" 2>/dev/null || true)
say "docker build $repo:$version (base $BASE_IMAGE)"
step=$SECONDS
# Without buildx (here: Debian's engine, no BuildKit) use the legacy builder; the deprecation
# notice it starts with is expected, not an error. The Dockerfile works with both builders.
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
docker build --force-rm \
  --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg EXTRA_CA_CERTS="$extra_ca" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  -t "$repo:$version" -t "$repo:latest" \
  .
# The image this replaced, if now untagged, holds its own ~100 MB copy of the venv: drop it (and
# only it: its layers shared with the new image, and the builder stage's cache, stay).
current=$(docker image inspect -f '{{.Id}}' "$repo:$version")
if [[ -n $previous && $previous != "$current" && $(docker image inspect -f '{{len .RepoTags}}' "$previous") == 0 ]]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
say "built $repo:$version and $repo:latest in $((SECONDS - step))s" \
    "($(docker image inspect -f '{{.Size}}' "$repo:$version" | numfmt --to=iec); total $((SECONDS - start))s)"
say "try: docker run --rm $repo:$version kubeplane --help"
