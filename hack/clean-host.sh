#!/usr/bin/env bash
# Stop every kubeplane cluster and process on this host, whichever checkout started them: the embedded
# kwok cluster `kubeplane` (state in ~/.kwok, shared by all checkouts), MinIO and operators started by
# any checkout's `hack/cluster.sh`, and the kind cluster `kubeplane`. CI runs this first: a clean clone
# has none of the pid files another checkout wrote, and that checkout's MinIO would hold the port, its
# operators the Leases (ours would stand by forever), its cluster its old CRDs.
#
# Needs no toolchain (it runs before one is built): it goes by process command lines and Docker labels.
set -euo pipefail

say() { echo "[clean-host] $*"; }

# pids whose command line matches an extended regex
pids_matching() {
  local pid args
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [[ $pid == "$$" ]] && continue
    args=$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
    [[ -n $args ]] && grep -qE -- "$1" <<<"$args" && echo "$pid"
  done
  return 0
}

# stop_all LABEL REGEX: SIGTERM each match (its process group when it leads one), SIGKILL after 10s.
stop_all() {
  local pids pid
  pids=$(pids_matching "$2")
  [[ -z $pids ]] && return 0
  say "stopping $1: $(tr '\n' ' ' <<<"$pids")"
  for pid in $pids; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)) && [[ -n $(pids_matching "$2") ]]; do sleep 0.2; done
  for pid in $(pids_matching "$2"); do kill -KILL "$pid" 2>/dev/null || true; done
}

stop_all "operators" '/\.venv/bin/(python[0-9.]* )?[^ ]*/?kubeplane run '
stop_all "external metrics API" '/\.venv/bin/(python[0-9.]* )?[^ ]*/?kubeplane external-metrics serve '
stop_all "MinIO" '^minio server .*/\.kubeplane/minio-data'
kwok_home=${KWOK_WORKDIR:-$HOME/.kwok}/clusters/kubeplane
stop_all "kwok cluster kubeplane" "^$kwok_home/bin/"
if [[ -d $kwok_home ]]; then
  rm -rf "$kwok_home"
  say "deleted kwok cluster kubeplane ($kwok_home)"
fi

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ids=$(docker ps -aq --filter label=io.x-k8s.kind.cluster=kubeplane)
  if [[ -n $ids ]]; then
    # shellcheck disable=SC2086
    docker rm -f -v $ids >/dev/null
    say "deleted kind cluster kubeplane"
  fi
fi
say "host clean"
