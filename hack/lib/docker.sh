# Sourced by hack scripts that need a Docker engine: `ensure_docker` returns once `docker info`
# answers. Without an engine it starts one with ../shared/sandbox/start-docker when that exists
# (our sandbox machines ship only the client); elsewhere it says what is missing.
ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  local starter
  starter="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/sandbox/start-docker"
  if [[ -x $starter ]]; then
    printf '\033[1m[docker]\033[0m no engine answering; starting one with ../shared/sandbox/start-docker\n' >&2
    "$starter" >&2
  else
    printf '\033[1m[docker]\033[0m no Docker engine answering (docker info failed); start one first\n' >&2
    return 1
  fi
}

# Image label lookup; empty when the image does not exist.
image_label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
