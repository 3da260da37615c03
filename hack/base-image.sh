#!/usr/bin/env bash
# Builds the operator image's base, `kubeplane-base:bookworm`, without a container registry: a
# `debootstrap --variant=minbase` Debian bookworm rootfs with python3 (3.11), python3-venv and
# ca-certificates, brought up to date with bookworm-security/-updates, slimmed, and loaded with
# `docker import`. Users with a registry don't need this: the Dockerfile defaults to
# python:3.11-slim-bookworm.
#
#   hack/base-image.sh [IMAGE]        IMAGE defaults to $KUBEPLANE_BASE_IMAGE or kubeplane-base:bookworm
#
# Cached: the image carries a label with a hash of this script (and of the mirror and suite it was
# built from); when the existing image's label matches, nothing is rebuilt. Edit this script (or set
# KUBEPLANE_BASE_REBUILD=1) to rebuild. debootstrap's downloads are kept in
# $KUBEPLANE_CACHE/debootstrap (default ~/.cache/kubeplane) so a rebuild doesn't fetch them again.
set -euo pipefail

image=${1:-${KUBEPLANE_BASE_IMAGE:-kubeplane-base:bookworm}}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cache=${KUBEPLANE_CACHE:-$HOME/.cache/kubeplane}/debootstrap
label=dev.kubeplane.base-hash

say() { printf '\033[1m[base-image]\033[0m %s\n' "$*" >&2; }
start=$SECONDS

# The cache key: this script's own content plus the inputs that env can change.
hash=$( { cat "${BASH_SOURCE[0]}"; echo "$suite $mirror $security_mirror"; } | sha256sum | cut -c1-16)

# One build at a time: `make image` from two shells would otherwise debootstrap twice.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

have=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null || true)
if [[ $have == "$hash" && ${KUBEPLANE_BASE_REBUILD:-0} != 1 ]]; then
  say "$image is up to date (hash $hash); not rebuilding"
  exit 0
fi
say "building $image (hash $hash${have:+, replacing $have}); takes a few minutes"

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# Not under /tmp: it may be a small tmpfs or mounted nodev, and debootstrap creates device nodes.
work=$(mktemp -d /var/tmp/kubeplane-base.XXXXXX)
rootfs=$work/rootfs
cleanup() {
  mountpoint -q "$rootfs/proc" 2>/dev/null && umount "$rootfs/proc"
  rm -rf "$work"
}
trap cleanup EXIT

step=$SECONDS
say "debootstrap --variant=minbase $suite (from $mirror)"
# debootstrap is chatty (a line per package); keep its log and show it only on failure.
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      --cache-dir="$cache" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 40 "$work/debootstrap.log" >&2
  [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
  say "debootstrap FAILED"
  exit 1
fi
say "  debootstrap done in $((SECONDS - step))s"

step=$SECONDS
say "applying $suite-updates and $suite-security"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
# Like Debian's official docker images: no docs, man pages or translations from any later
# `apt-get install` either (in this upgrade, or in images built FROM this base).
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-minimal" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-minimal" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
if ! chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive sh -ec \
      'apt-get update && apt-get -y -o Dpkg::Options::=--force-confold upgrade && apt-get clean' \
      >"$work/upgrade.log" 2>&1; then
  tail -n 40 "$work/upgrade.log" >&2
  say "upgrade FAILED"
  exit 1
fi
say "  $(grep -Eo '^[0-9]+ upgraded' "$work/upgrade.log" || echo '? upgraded') packages"
umount "$rootfs/proc"
say "  updates done in $((SECONDS - step))s"

step=$SECONDS
# Slim down: docs (copyright files stay), man pages, translations, apt's lists and caches, logs.
# /dev is left empty: the container runtime provides it.
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,lintian,linda}/* \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/dev/* \
       "$rootfs"/debootstrap "$rootfs"/etc/resolv.conf "$rootfs"/etc/machine-id
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
: >"$rootfs/etc/resolv.conf"   # the runtime bind-mounts its own
say "  rootfs is $(du -sh "$rootfs" | cut -f1) after slimming ($((SECONDS - step))s)"

step=$SECONDS
say "docker import -> $image"
# No registry, so no `FROM debian`: the tarball is the whole image. ENV PATH must be set here
# (an imported image has no config), or the Dockerfile's `ENV PATH=/opt/kubeplane/bin:$PATH` would
# expand $PATH to nothing.
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL $label=$hash" \
  --change "LABEL org.opencontainers.image.title=kubeplane-base" \
  --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase, python3, python3-venv, ca-certificates\"" \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
say "  imported in $((SECONDS - step))s"

say "built $image: $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec), python $(docker run --rm "$image" python3 -c 'import sys; print(sys.version.split()[0])'), in $((SECONDS - start))s"
