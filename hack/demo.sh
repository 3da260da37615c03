#!/usr/bin/env bash
# `make demo`: show the kubeplane ReplicaSet and Deployment controllers at work on the embedded cluster.
# Runs after `make up`; every step prints what it does and what the cluster answered.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG:-$root/.kubeplane/kubeconfig} PATH="$root/bin:$root/.venv/bin:$PATH"
ns=kubeplane-demo
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
wait_ready() {  # wait_ready N: until the ReplicaSet reports N ready replicas
  for _ in $(seq 1 120); do
    ready=$(kubectl get kprs frontend -n $ns -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)
    [[ ${ready:-0} == "$1" ]] && return 0
    sleep 0.5
  done
  echo "timed out waiting for $1 ready replicas (have ${ready:-0}); see .kubeplane/logs/controllers.log" >&2
  return 1
}

step "A fresh namespace for the demo"
kubectl delete namespace $ns --ignore-not-found --wait=true >/dev/null
run kubectl create namespace $ns

step "Apply an upstream ReplicaSet manifest whose apiVersion says apps.kubeplane.dev/v1alpha1"
run kubectl apply -n $ns -f "$root/examples/01-replicaset.yaml"
wait_ready 3
run kubectl get kprs,pods -n $ns -o wide

step "Scale to 6 through the scale subresource, as for any Deployment or ReplicaSet"
run kubectl scale kprs/frontend -n $ns --replicas=6
wait_ready 6
run kubectl get kprs frontend -n $ns

step "Delete a pod: the controller notices and replaces it"
victim=$(kubectl get pods -n $ns -o jsonpath='{.items[0].metadata.name}')
run kubectl delete pod "$victim" -n $ns --wait=false
sleep 1
wait_ready 6
run kubectl get pods -n $ns

step "Scale down to 2: victims are chosen in upstream's order (unscheduled, pending, not ready, ... newest first)"
run kubectl scale kprs/frontend -n $ns --replicas=2
wait_ready 2
run kubectl get kprs frontend -n $ns

step "What the controller said, as Events"
run kubectl get events -n $ns --field-selector involvedObject.kind=ReplicaSet --sort-by=.lastTimestamp

step "A Deployment: an upstream manifest again, only the apiVersion changed"
run kubectl apply -n $ns -f "$root/examples/06-deployment.yaml"
run kubeplane rollout status deployment/web -n $ns --timeout=120
run kubectl get kpdeploy,kprs -n $ns

step "A rolling update (maxSurge 1, maxUnavailable 0): a new ReplicaSet grows as the old one shrinks"
run kubectl patch kpdeploy web -n $ns --type=merge \
  -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.local/web:2"}]}}}}'
run kubeplane rollout status deployment/web -n $ns --timeout=120
run kubectl get kprs -n $ns
run kubectl kubeplane rollout history deployment/web -n $ns

step "Roll back: revision 1's ReplicaSet comes back as revision 3"
run kubectl kubeplane rollout undo deployment/web -n $ns
run kubeplane rollout status deployment/web -n $ns --timeout=120
run kubectl get kprs -n $ns -L pod-template-hash
run kubectl get events -n $ns --field-selector involvedObject.kind=Deployment --sort-by=.lastTimestamp

step "Everything kubeplane runs is in one category"
run kubectl get kubeplane -A

cat <<MSG

What happened: the kubeplane ReplicaSet controller (a Kopf operator, log in .kubeplane/logs/controllers.log)
created pods for the ReplicaSet, the real kube-scheduler bound them to KWOK nodes, KWOK marked them Running,
and the controller kept the count and the status right through scaling and a deleted pod. The kubeplane
Deployment controller, in the same process, rolled its ReplicaSets forward and back as kube-controller-manager
does.
Try it yourself:   export KUBECONFIG=$KUBECONFIG PATH=$root/bin:\$PATH
Clean up:          kubectl delete namespace $ns    (or: make down)
MSG
