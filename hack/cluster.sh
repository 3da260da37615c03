#!/usr/bin/env bash
# hack/cluster.sh: the embedded local cluster behind `make up` / `make down`. No Docker.
#
#   hack/cluster.sh up                 create or resume everything; safe to rerun (fast when all is up)
#   hack/cluster.sh down               stop everything and delete the cluster; never fails if nothing runs
#   hack/cluster.sh status             print what is running
#   hack/cluster.sh restart-operators  restart the Python operators after code changes
#   hack/cluster.sh stop-operators     stop the operators, print their names (the tests run their own)
#   hack/cluster.sh start-operators    start the operators named in $OPERATORS
#
# What `up` runs:
#   - a kwokctl "binary runtime" cluster named kubeplane: etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler, kwok-controller and metrics-server as plain processes, from the pinned binaries in
#     bin/ (kwokctl keeps its state, pid files, logs and ports in ~/.kwok/clusters/kubeplane/);
#   - $NODES fake KWOK nodes kwok-node-0..N-1 (the KWOK controller makes them Ready and runs their pods);
#   - MinIO on 127.0.0.1:19000 (console 127.0.0.1:19001);
#   - namespace kubeplane-system, the CRDs in crds/, the external metrics API (`kubeplane external-metrics
#     serve` on 127.0.0.1:19080, APIService v1beta1.external.metrics.k8s.io), and the operators in $OPERATORS.
#
# Environment:
#   NODES=3                       number of fake nodes (up adds missing ones, never deletes any)
#   OPERATORS="controllers backup scheduler"  operators to run (`kubeplane run <name>`), space or comma separated
#   DROP_IN=1                     drop-in mode: create kube-controller-manager with the controllers kubeplane
#                                 replaces turned off (`kubeplane controllers replaced`: --controllers=*,-...),
#                                 and run `kubeplane run controllers --drop-in`, which drives the built-in kinds
#                                 instead. Only takes effect when the cluster is created (recorded in
#                                 .kubeplane/drop-in), so `down` first to change it.
#   KUBEPLANE_NO_QPS_LIMITS=1     create the cluster with --disable-qps-limits (off by default: we benchmark
#                                 against kube-controller-manager's default client limits). Only takes
#                                 effect when the cluster is created, so `down` first to change it.
#   KUBEPLANE_CLUSTER=kubeplane   kwokctl cluster name (a second checkout on one machine needs its own)
#   KUBEPLANE_MINIO_PORT=19000    MinIO's port (console: the next one)
#   KUBEPLANE_SMOKE=1             run the scheduling smoke test even when the cluster was already up
#
# State lives in .kubeplane/ (gitignored):
#   kubeconfig            admin kubeconfig (cluster-admin cert and key embedded, mode 600)
#   minio.env             MinIO root credentials, generated once (mode 600), reused until `down`
#   minio-data/           MinIO data
#   run/*.pid             pid files; each process runs in its own session, so pid = process group id
#   logs/*.log            operator and MinIO logs; logs/cluster -> kwokctl's component logs
# `down` removes all of .kubeplane/ except logs/ (a fresh cluster gets fresh object storage and
# credentials; logs survive for post-mortems, and the control-plane logs are copied to logs/cluster.last/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.env
source "$root/hack/versions.env"
# kwokctl runs `kubectl` from PATH; make sure it is our pinned one.
export PATH="$root/bin:$PATH"

cluster=${KUBEPLANE_CLUSTER:-kubeplane}  # another name lets a second checkout run its own
state=$root/.kubeplane
kubeconfig=$state/kubeconfig
logs=$state/logs
run=$state/run
kwok_home=${KWOK_WORKDIR:-$HOME/.kwok}/clusters/$cluster

NODES=${NODES:-3}
OPERATORS=${OPERATORS-controllers backup scheduler}  # set but empty: no operators
minio_port=${KUBEPLANE_MINIO_PORT:-19000}
minio_addr=127.0.0.1:$minio_port
minio_console=127.0.0.1:$((minio_port + 1))
kubeplane_cli=${KUBEPLANE_CLI:-$root/.venv/bin/kubeplane}  # override only to test this script

# ---------------------------------------------------------------------------------------------- helpers

say() { echo "[cluster] $*"; }
warn() { echo "[cluster] WARNING: $*" >&2; }
die() { echo "[cluster] ERROR: $*" >&2; exit 1; }

# Stage timing: `stage_start`, then `stage_done "message"` prints the seconds since.
now_us() { echo "${EPOCHREALTIME/./}"; }
stage_start() { stage_t0=$(now_us); }
stage_done() {
  local us=$(($(now_us) - stage_t0))
  say "$(printf '%s (%d.%01ds)' "$1" $((us / 1000000)) $((us % 1000000 / 100000)))"
}

kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# Run until success or timeout: retry SECONDS CMD...
retry() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# `kill -0` also succeeds on zombies, and this machine's init reaps orphans lazily: look at the state.
running() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

# pid of a process we started, if it is still alive and still ours (pid files can outlive a reboot
# and the pid be reused): alive NAME EXPECTED-CMDLINE-SUBSTRING
alive() {
  local pidfile=$run/$1.pid pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

# Start a background process in its own session (so `down` can kill the whole process group):
# spawn NAME LOGFILE CMD...
spawn() {
  local name=$1 log=$2; shift 2
  mkdir -p "$run" "$(dirname "$log")"
  echo "=== $(date -u +%FT%TZ) starting: $*" >>"$log"
  # The script has no job control, so the child is not a group leader and setsid does not fork:
  # $! is the session (and process group) leader.
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

# stop NAME EXPECTED-CMDLINE-SUBSTRING: SIGTERM the process group, SIGKILL after 10s.
stop() {
  local pid
  if pid=$(alive "$1" "$2"); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if running "$pid"; then
      warn "$1 (pid $pid) ignored SIGTERM; killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$run/$1.pid"
}

kwok_start() {
  # kwokctl believes any live pid in its pid files (zombies and reused pids included) and then skips
  # that component; drop pid files that no longer name a running component of this cluster.
  local f pid
  for f in "$kwok_home"/pids/*.pid; do
    [[ -e $f ]] || continue
    pid=$(<"$f")
    running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$kwok_home/bin/$(basename "$f" .pid)" ||
      rm -f "$f"
  done
  kwokctl start cluster --name "$cluster" --timeout 2m >"$logs/kwokctl.log" 2>&1 ||
    { cat "$logs/kwokctl.log" >&2; die "kwokctl start cluster failed"; }
}

kwok_controller_pid() {
  local f=$kwok_home/pids/kwok-controller.pid
  [[ -s $f ]] && running "$(<"$f")" && cat "$f"
  return 0
}

# A restarted kwok-controller has a new holder identity and leaves every node whose Lease the old
# instance still holds alone until that Lease expires (40s x heartbeat-factor 5 = 200s), plus up to
# a renew interval (50s) before it looks again: no pod on a KWOK node would start for ~4 minutes.
# So stop the new controller, delete the stale Leases, and start it again: it creates fresh ones at
# once. Every node is KWOK's here (kwokctl runs it with --manage-all-nodes), so all Leases are stale.
take_over_node_leases() {
  write_kubeconfig
  retry 120 kc get --raw /readyz || die "kube-apiserver not ready after 120s (logs: $logs/cluster/)"
  [[ -n $(kc -n kube-node-lease get leases -o name 2>/dev/null) ]] || return 0
  local pid
  pid=$(kwok_controller_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Without its pid file kwokctl treats it as stopped even while the zombie waits to be reaped.
  rm -f "$kwok_home/pids/kwok-controller.pid"
  kc -n kube-node-lease delete leases --all >/dev/null
  kwok_start
  say "kwok-controller restarted: took over the node Leases of its previous instance"
  cluster_fresh=1  # worth a smoke test
}

# Always rewrite the kubeconfig from kwokctl before talking to the cluster, so a deleted or stale
# file heals itself, and a new checkout (its own .kubeplane/) can take over a cluster another started.
write_kubeconfig() {
  mkdir -p "$(dirname "$kubeconfig")"
  kwokctl get kubeconfig --name "$cluster" >"$kubeconfig.tmp" && mv "$kubeconfig.tmp" "$kubeconfig"
  chmod 600 "$kubeconfig"
}

cluster_exists() { kwokctl get clusters 2>/dev/null | grep -qx "$cluster"; }

# Local processes share one network namespace: each operator gets its own metrics (and liveness) port.
metrics_port() {
  case $1 in
    controllers) echo $((minio_port + 90)) ;; scheduler) echo $((minio_port + 91)) ;;
    backup) echo $((minio_port + 92)) ;; *) echo $((minio_port + 99)) ;;
  esac
}

operator_names() { tr ',' ' ' <<<"$OPERATORS"; }

# ------------------------------------------------------------------------------------------------ stages

up_cluster() {
  stage_start
  mkdir -p "$state" "$logs" "$run"
  local how
  if cluster_exists; then
    how=running
    if ! { [[ -s $kubeconfig ]] && kc get --raw /readyz >/dev/null 2>&1; }; then
      how=started
      cluster_fresh=1
    fi
    # Idempotent: kwokctl skips components whose pid is alive and (re)starts the others, so this also
    # revives e.g. a crashed scheduler on an otherwise healthy cluster.
    local kwok_before
    kwok_before=$(kwok_controller_pid)
    kwok_start
    if [[ $(kwok_controller_pid) != "$kwok_before" ]]; then
      take_over_node_leases
    fi
    if [[ ${KUBEPLANE_NO_QPS_LIMITS:-} == 1 ]] && ! grep -q 'disableQPSLimits: true' "$kwok_home/kwok.yaml"; then
      warn "KUBEPLANE_NO_QPS_LIMITS=1 only applies at creation; run 'hack/cluster.sh down' first"
    fi
    if ! grep -qx '  - metrics-server' "$kwok_home/kwok.yaml" 2>/dev/null; then
      warn "this cluster was created without metrics-server (no metrics.k8s.io, kubectl top); run 'hack/cluster.sh down' first"
    fi
    if [[ ${DROP_IN:-} == 1 && ! -s $state/drop-in ]]; then
      warn "DROP_IN=1 only applies at creation (this cluster runs kube-controller-manager's own controllers); run 'hack/cluster.sh down' first"
    fi
  else
    how=created
    local args=(
      --name "$cluster" --runtime binary
      # Local paths: kwokctl symlinks them into its cluster dir instead of downloading release assets.
      --etcd-binary "$(realpath "$root/bin/etcd")"
      --kube-apiserver-binary "$(realpath "$root/bin/kube-apiserver")"
      --kube-controller-manager-binary "$(realpath "$root/bin/kube-controller-manager")"
      --kube-scheduler-binary "$(realpath "$root/bin/kube-scheduler")"
      --kwok-controller-binary "$(realpath "$root/bin/kwok")"
      # metrics-server beside the cluster (metrics.k8s.io, `kubectl top`): kwokctl adds kwok's Metric for the
      # nodes' /metrics/resource and the pods' usage from their kwok.x-k8s.io/usage-cpu|memory annotations;
      # the APIService and Service come from hack/metrics-server/ (kwokctl-options.yaml below).
      --enable metrics-server
      --metrics-server-binary "$(realpath "$root/bin/metrics-server")"
      # The project's stages (hack/tools.sh kwok-stages): kwokctl's defaults without pod-complete, so a Job's
      # pods run until told, plus the exit stage (hack/kwok/pod-exit.yaml: pods end on an annotation).
      --config "$(realpath "$root/bin/kwok-stages.yaml")"
      # Write the context into our kubeconfig, not ~/.kube/config (the default).
      --kubeconfig "$kubeconfig"
      --timeout 3m
    )
    [[ ${KUBEPLANE_NO_QPS_LIMITS:-} == 1 ]] && args+=(--disable-qps-limits)
    rm -f "$state/drop-in"
    if [[ ${DROP_IN:-} == 1 ]]; then
      local replaced
      replaced=$("$kubeplane_cli" controllers replaced) || die "cannot ask $kubeplane_cli which controllers it replaces"
      args+=(--extra-args "kube-controller-manager=controllers=*,-${replaced//,/,-}")
    fi
    # KWOK_KUBE_VERSION: kwokctl derives component flags from the version; ours is not its default.
    # kwokctl reads the metrics-server manifests' location only from a configuration document.
    cat >"$state/kwokctl-options.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  metricsServerManifests: ["$root/hack/metrics-server"]
EOF
    args+=(--config "$state/kwokctl-options.yaml")
    KWOK_KUBE_VERSION=$KUBERNETES_VERSION kwokctl create cluster "${args[@]}" >"$logs/kwokctl.log" 2>&1 ||
      { cat "$logs/kwokctl.log" >&2; die "kwokctl create cluster failed (log: $logs/kwokctl.log)"; }
    cluster_fresh=1
    [[ ${DROP_IN:-} == 1 ]] && echo "$replaced" >"$state/drop-in"
  fi
  write_kubeconfig
  ln -sfn "$kwok_home/logs" "$logs/cluster"
  retry 120 kc get --raw /readyz || die "kube-apiserver not ready after 120s (logs: $logs/cluster/)"
  stage_done "kwok cluster $how: $(kc config view -o jsonpath='{.clusters[0].cluster.server}')"
}

node_manifest() {
  local zones=(zone-a zone-b zone-c) i name
  for ((i = 0; i < NODES; i++)); do
    name=kwok-node-$i
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    # Where metrics-server reads this node's kubelet resource metrics: kwok-controller serves them.
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/$name/metrics/resource
  labels:
    type: kwok
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: ${zones[i % 3]}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
  done
}

up_nodes() {
  stage_start
  # Additive only: never delete nodes here, benchmarks may have added more with the same naming.
  node_manifest | kc apply -f - >/dev/null
  kc wait --for=condition=Ready node -l type=kwok --timeout=60s >/dev/null ||
    die "KWOK nodes not Ready after 60s (kwok-controller log: $logs/cluster/kwok-controller.log)"
  # The default StorageClass: kwok's volume stages (hack/tools.sh) make a PersistentVolume for each of its
  # claims, so a StatefulSet's claims bind as they would with a real provisioner.
  kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kwok-volume
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kwok.x-k8s.io/volume
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
  stage_done "$NODES kwok nodes Ready, StorageClass kwok-volume (default)"
}

# Prove scheduler + KWOK end to end: a plain pod gets bound by the default scheduler and KWOK runs it.
smoke() {
  stage_start
  # The ServiceAccount admission plugin rejects pods until kube-controller-manager made default/default.
  retry 60 kc -n default get serviceaccount default || die "default ServiceAccount never appeared (is kube-controller-manager up?)"
  kc -n default delete pod kubeplane-smoke --ignore-not-found --wait=true >/dev/null
  kc -n default apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: kubeplane-smoke
spec:
  automountServiceAccountToken: false
  containers:
  - name: pause
    image: registry.k8s.io/pause:3.10
EOF
  kc -n default wait --for=jsonpath='{.status.phase}'=Running pod/kubeplane-smoke --timeout=60s >/dev/null ||
    die "smoke pod not Running after 60s: $(kc -n default get pod kubeplane-smoke -o wide --no-headers 2>&1)"
  local node
  node=$(kc -n default get pod kubeplane-smoke -o jsonpath='{.spec.nodeName}')
  kc -n default delete pod kubeplane-smoke --wait=true --timeout=60s >/dev/null
  stage_done "smoke pod scheduled to $node, Running, deleted"
}

up_minio() {
  stage_start
  local pid
  if pid=$(alive minio "minio server"); then
    stage_done "minio already running (pid $pid)"
    return
  fi
  if [[ ! -s $state/minio.env ]]; then
    # Generated once; reused by later `up`s until `down` wipes .kubeplane/.
    (umask 077 && printf 'MINIO_ROOT_USER=%s\nMINIO_ROOT_PASSWORD=%s\nMINIO_ENDPOINT=%s\n' \
      "kp$(openssl rand -hex 8)" "$(openssl rand -hex 24)" "http://$minio_addr" >"$state/minio.env")
  fi
  chmod 600 "$state/minio.env"
  if curl -fsS --noproxy '*' -m 2 "http://$minio_addr/minio/health/live" >/dev/null 2>&1; then
    die "something else already serves $minio_addr (no live pid in $run/minio.pid)"
  fi
  mkdir -p "$state/minio-data"
  (
    set -a && source "$state/minio.env" && set +a
    # No update checks or telemetry: this machine is offline.
    export MINIO_UPDATE=off MINIO_BROWSER=on
    spawn minio "$logs/minio.log" minio server --quiet --address "$minio_addr" \
      --console-address "$minio_console" "$state/minio-data"
  )
  retry 60 curl -fsS --noproxy '*' -m 2 "http://$minio_addr/minio/health/ready" ||
    { tail -n 20 "$logs/minio.log" >&2; die "minio not ready after 60s (log: $logs/minio.log)"; }
  stage_done "minio ready on http://$minio_addr (console http://$minio_console, credentials in .kubeplane/minio.env)"
}

up_crds() {
  stage_start
  kc create namespace kubeplane-system --dry-run=client -o yaml | kc apply -f - >/dev/null
  shopt -s nullglob
  local files=("$root"/crds/*.yaml)
  shopt -u nullglob
  if ((${#files[@]} == 0)); then
    stage_done "namespace kubeplane-system; no CRDs in crds/"
    return
  fi
  # As the Helm chart owns them, so that `helm install` on this cluster adopts them (hack/crds.sh).
  KUBECONFIG=$kubeconfig "$root/hack/crds.sh" apply ||
    die "applying or waiting for crds/*.yaml failed (see kubectl's message above)"
  stage_done "namespace kubeplane-system; ${#files[@]} CRD file(s) applied and Established"
}

start_operators() {
  stage_start
  if [[ ! -x $kubeplane_cli ]]; then
    warn "$kubeplane_cli not found; skipping operators (run 'make venv' or 'pip install -e .' first)"
    return
  fi
  local name pid started=() already=() failed=()
  for name in $(operator_names); do
    if pid=$(alive "$name" "kubeplane run $name "); then
      already+=("$name:$pid")
      continue
    fi
    local extra=()
    [[ $name == controllers && -s $state/drop-in ]] && extra=(--drop-in)
    spawn "$name" "$logs/$name.log" \
      env KUBECONFIG="$kubeconfig" PYTHONUNBUFFERED=1 "$kubeplane_cli" run "$name" "${extra[@]}" \
      --metrics-port "$(metrics_port "$name")" --liveness "http://127.0.0.1:$(( $(metrics_port "$name") + 100 ))/healthz"
    started+=("$name")
  done
  # Catch operators that die at import or startup, so the failure is visible here, not later.
  ((${#started[@]})) && sleep 2
  for name in "${started[@]}"; do
    if ! alive "$name" "kubeplane run $name " >/dev/null; then
      failed+=("$name")
      warn "operator $name exited at startup; last lines of $logs/$name.log:"
      tail -n 15 "$logs/$name.log" | sed 's/^/    /' >&2
      rm -f "$run/$name.pid"
    fi
  done
  stage_done "operators: started [${started[*]}] already running [${already[*]}] failed [${failed[*]}]"
}

stop_operators() {
  local name f
  for name in $(operator_names); do stop "$name" "kubeplane run $name "; done
  # Also stop operators started under a different OPERATORS list. The other pid files here are not
  # operators' (stop would not match their command line, yet drop their pid file: `down` then left the
  # external metrics API running, and the next `up` adopted it without its APIService in the new cluster).
  for f in "$run"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ $name == minio || $name == external-metrics ]] || stop "$name" "kubeplane run $name "
  done
}

# ------------------------------------------------------------------------------------------------ commands

# The default BackupStorageLocation: bucket `kubeplane` in the embedded MinIO, credentials in a Secret,
# so a Backup applied with kubectl works with nothing else set up.
up_backup_location() {
  stage_start
  [[ -x $root/.venv/bin/python ]] || { warn "no .venv: skipping the default BackupStorageLocation"; return; }
  (
    set -a && source "$state/minio.env" && set +a
    "$root/.venv/bin/python" - "http://$minio_addr" <<'PY'
import os, sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=os.environ["MINIO_ROOT_USER"],
                  aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"], region_name="us-east-1")
if "kubeplane" not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket="kubeplane")
PY
    printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" |
      kc create secret generic minio-credentials -n kubeplane-system --from-file=cloud=/dev/stdin \
        --dry-run=client -o yaml | kc apply -f - >/dev/null
  )
  # The key backups are signed with (operators/backup/signing.py): created once, never replaced (backups
  # signed with a replaced key would no longer sync or restore).
  if ! kc get secret kubeplane-backup-signing-key -n kubeplane-system >/dev/null 2>&1; then
    head -c 32 /dev/urandom | kc create secret generic kubeplane-backup-signing-key -n kubeplane-system \
      --from-file=key=/dev/stdin >/dev/null
  fi
  kc apply -f - >/dev/null <<YAML
apiVersion: backup.kubeplane.dev/v1alpha1
kind: BackupStorageLocation
metadata: {name: default, namespace: kubeplane-system}
spec:
  default: true
  objectStorage: {bucket: kubeplane}
  config: {s3Url: "http://$minio_addr", s3ForcePathStyle: "true", region: us-east-1}
  credential: {name: minio-credentials, key: cloud}
YAML
  stage_done "BackupStorageLocation default -> bucket kubeplane on http://$minio_addr"
}

# The project's external metrics API (operators/metricsapi/external.py): values from labelled ConfigMaps,
# registered as the APIService v1beta1.external.metrics.k8s.io through an ExternalName Service (localhost),
# the way kwokctl registers a metrics-server it runs as a binary.
external_metrics_port=$((minio_port + 80))
up_external_metrics() {
  stage_start
  local pid
  local serve="kubeplane external-metrics serve --host 127.0.0.1 --port $external_metrics_port "
  if pid=$(alive external-metrics "$serve"); then
    stage_done "external metrics API already running (pid $pid)"
    return
  fi
  # Started by an `up` whose pid file then lost it (a spawn from a new session records setsid's pid).
  if pid=$(pgrep -f -- "$serve" | head -n 1) && [[ -n $pid ]]; then
    echo "$pid" >"$run/external-metrics.pid"
    stage_done "external metrics API already running (pid $pid, adopted)"
    return
  fi
  spawn external-metrics "$logs/external-metrics.log" "$kubeplane_cli" external-metrics serve \
    --host 127.0.0.1 --port "$external_metrics_port" --external-name localhost
  retry 60 kc get --raw /apis/external.metrics.k8s.io/v1beta1 ||
    { tail -n 20 "$logs/external-metrics.log" >&2; die "external metrics API not served after 60s (log: $logs/external-metrics.log)"; }
  stage_done "external metrics API on https://127.0.0.1:$external_metrics_port (APIService v1beta1.external.metrics.k8s.io)"
}

cmd_up() {
  local t0
  t0=$(now_us)
  cluster_fresh=
  up_cluster
  up_nodes
  # Smoke only after (re)creation: the warm path must stay fast.
  if [[ -n $cluster_fresh || ${KUBEPLANE_SMOKE:-} == 1 ]]; then smoke; fi
  up_minio
  up_crds
  up_external_metrics
  up_backup_location
  start_operators
  stage_t0=$t0
  stage_done "up"
  echo "export KUBECONFIG=$kubeconfig PATH=$root/bin:\$PATH"
}

cmd_down() {
  stage_start
  [[ -d $run ]] && stop_operators
  stop minio "minio server"
  stop external-metrics "kubeplane external-metrics serve --host 127.0.0.1 --port $external_metrics_port "
  if cluster_exists; then
    # Keep the control-plane logs; kwokctl deletes its cluster dir.
    rm -rf "$logs/cluster.last"
    [[ -d $kwok_home/logs ]] && mkdir -p "$logs" && cp -r "$kwok_home/logs" "$logs/cluster.last"
    kwokctl delete cluster --name "$cluster" >/dev/null 2>&1 || warn "kwokctl delete cluster failed"
    say "deleted kwok cluster $cluster"
  fi
  if [[ -d $state ]]; then
    find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    rm -f "$logs/cluster"
  fi
  stage_done "down (kept $logs)"
}

cmd_status() {
  local pid name
  if cluster_exists; then
    say "kwok cluster $cluster ($kwok_home):"
    # kwokctl keeps one pid file per component; `kwokctl get components` only lists names.
    local f
    compgen -G "$kwok_home/pids/*.pid" >/dev/null || echo "    stopped (no component pid files); 'hack/cluster.sh up' starts it"
    for f in "$kwok_home"/pids/*.pid; do
      [[ -e $f ]] || continue
      pid=$(<"$f")
      if running "$pid"; then
        echo "    $(basename "$f" .pid): running (pid $pid)"
      else
        echo "    $(basename "$f" .pid): NOT running"
      fi
    done
    if [[ -s $kubeconfig ]] && kc get --raw /readyz >/dev/null 2>&1; then
      say "kube-apiserver ready at $(kc config view -o jsonpath='{.clusters[0].cluster.server}') (kubeconfig $kubeconfig)"
      say "nodes Ready: $(kc get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)/$(kc get nodes --no-headers 2>/dev/null | wc -l)"
      if [[ -s $state/drop-in ]]; then
        say "drop-in mode: kube-controller-manager runs without $(<"$state/drop-in"); kubeplane's controllers drive those kinds"
      fi
    else
      say "kube-apiserver not reachable"
    fi
  else
    say "kwok cluster $cluster: absent"
  fi
  if pid=$(alive minio "minio server"); then
    local health=not-ready
    curl -fsS --noproxy '*' -m 2 "http://$minio_addr/minio/health/ready" >/dev/null 2>&1 && health=ready
    say "minio: running (pid $pid, $health) on http://$minio_addr, console http://$minio_console"
  else
    say "minio: not running"
  fi
  local names=" $(operator_names) " f
  for f in "$run"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ $name == minio || $names == *" $name "* ]] || names+="$name "
  done
  for name in $names; do
    if pid=$(alive "$name" "kubeplane run $name "); then
      say "operator $name: running (pid $pid, log $logs/$name.log)"
    else
      say "operator $name: not running"
    fi
  done
}

cmd_restart_operators() {
  # Restart what runs now plus $OPERATORS, so `OPERATORS=a,b up` followed by a bare restart keeps both.
  local f name
  for f in "$run"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ $name == minio ]] || ! alive "$name" "kubeplane run $name " >/dev/null || OPERATORS+=" $name"
  done
  OPERATORS=$(operator_names | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
  [[ -d $run ]] && stop_operators
  cluster_exists && [[ -s $kubeconfig ]] || die "cluster is not up; run 'hack/cluster.sh up'"
  start_operators
}

# For the integration tests, which run their own operators: stop the running ones and print their
# names (stdout, one line) so `start-operators` can bring exactly those back afterwards.
cmd_stop_operators() {
  local f name running=()
  for f in "$run"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ $name != minio ]] && alive "$name" "kubeplane run $name " >/dev/null && running+=("$name")
  done
  OPERATORS=${running[*]:-}
  [[ -n $OPERATORS ]] && stop_operators >&2
  echo "${running[*]:-}"
}

cmd_start_operators() {
  cluster_exists && [[ -s $kubeconfig ]] || die "cluster is not up; run 'hack/cluster.sh up'"
  start_operators
}

case ${1:-} in
  up) cmd_up ;;
  stop-operators) cmd_stop_operators ;;
  start-operators) cmd_start_operators ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart-operators) cmd_restart_operators ;;
  *) echo "usage: $0 up|down|status|restart-operators|stop-operators|start-operators" >&2; exit 2 ;;
esac
