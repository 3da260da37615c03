{{/*
RBAC rules per operator, split by where they must be granted:
  <op>.clusterRules     always cluster-wide (cluster-scoped resources, watches across namespaces)
  <op>.namespacedRules  in a ClusterRole when the operator watches the whole cluster, or in a Role in
                        each of operators.<op>.watchNamespaces otherwise
  <op>.ownRules         in a Role in the release namespace only
Each is called with (dict "root" $ "name" "<op>") and yields a YAML list (possibly empty).
*/}}

{{/*
What Kopf itself needs (verified by running `kubeplane run controllers` under these rules):
- customresourcedefinitions list+watch, cluster-wide: Kopf's resource observer watches CRDs to notice
  resources appearing or disappearing (in any mode; discovery itself is open to every user).
- namespaces list+watch, only when namespaces are given (-n): Kopf lists and watches namespaces to
  match them; in cluster-wide mode it does not look at namespaces at all.
- events create: Kopf posts handler failures as core/v1 Events (settings.posting).
Kopf needs no peering objects (`--standalone`), and our handlers (index/event only) put no
finalizers or progress annotations on objects.
*/}}
{{- define "kubeplane.rules.kopf" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- $op := index .root.Values.operators .name }}
{{- if $op.watchNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/* Leader election (every operator): one Lease per operator in the release namespace. */}}
{{- define "kubeplane.rules.leaderElection" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update", "patch"]
{{- end }}

{{- define "kubeplane.rules.events" -}}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* ---------------------------------------------------------------------------- controllers */}}
{{- define "kubeplane.controllers.clusterRules" -}}
{{ include "kubeplane.rules.kopf" . }}
{{- $apps := include "kubeplane.crdPlurals" (dict "root" .root "group" "apps.kubeplane.dev") | fromJsonArray }}
{{- if has "daemonsets" $apps }}
# The DaemonSet decides which nodes run its pod from every node's labels and taints.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}

{{- define "kubeplane.controllers.namespacedRules" -}}
{{- $plurals := include "kubeplane.crdPlurals" (dict "root" .root "group" "apps.kubeplane.dev") | fromJsonArray }}
# Pods: the pod index and event handler (list/watch), creating and deleting replicas, and
# adopting/releasing pods (patch of ownerReferences).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Our workload kinds (every CRD of the apps.kubeplane.dev group the chart ships).
- apiGroups: ["apps.kubeplane.dev"]
  resources: {{ toJson $plurals }}
  verbs: ["get", "list", "watch"]
{{- if has "deployments" $plurals }}
# The Deployment writes its revision annotation on itself, and creates, scales (patch), adopts and
# deletes (history) the ReplicaSets it owns: what system:controller:deployment-controller holds.
- apiGroups: ["apps.kubeplane.dev"]
  resources: ["deployments"]
  verbs: ["patch", "update"]
- apiGroups: ["apps.kubeplane.dev"]
  resources: ["replicasets"]
  verbs: ["create", "patch", "update", "delete"]
{{- end }}
{{- if or (has "daemonsets" $plurals) (has "statefulsets" $plurals) }}
# The DaemonSet and the StatefulSet keep their template history in apps/v1 ControllerRevisions they
# own (create, renumber on rollback, prune), as system:controller:daemon-set-controller and
# statefulset-controller do.
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}
{{- if has "statefulsets" $plurals }}
# The StatefulSet creates its pods' PersistentVolumeClaims from volumeClaimTemplates and sets their
# owner references for the retention policy (patch); it never deletes one (the garbage collector does).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}
- apiGroups: ["apps.kubeplane.dev"]
  resources:
    {{- range $plurals }}
    - {{ . }}/status
    - {{ . }}/scale
    {{- end }}
  verbs: ["get", "patch", "update"]
# Pods are created with blockOwnerDeletion owner references: clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers.
- apiGroups: ["apps.kubeplane.dev"]
  resources:
    {{- range $plurals }}
    - {{ . }}/finalizers
    {{- end }}
  verbs: ["update"]
{{- $batch := include "kubeplane.crdPlurals" (dict "root" .root "group" "batch.kubeplane.dev") | fromJsonArray }}
{{- if has "jobs" $batch }}
# The Job writes its generated selector and template labels on itself on its first sync (patch), its
# status, and removes the job-tracking finalizer from its pods (the pods' patch above); it deletes a
# finished Job whose ttlSecondsAfterFinished expired (system:controller:ttl-after-finished-controller's
# delete). Only the CronJob below creates Jobs.
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "patch", "update", "delete"]
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["jobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["jobs/finalizers"]
  verbs: ["update"]
{{- end }}
{{- if has "cronjobs" $batch }}
# The CronJob creates its runs' Jobs and deletes finished ones past the history limits (and, with
# Replace, the running ones), as system:controller:cronjob-controller does; it writes only its status.
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["cronjobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["cronjobs/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch.kubeplane.dev"]
  resources: ["jobs"]
  verbs: ["create"]
{{- end }}
{{- $autoscaling := include "kubeplane.crdPlurals" (dict "root" .root "group" "autoscaling.kubeplane.dev") | fromJsonArray }}
{{- if has "horizontalpodautoscalers" $autoscaling }}
# The HorizontalPodAutoscaler reads its HPAs and writes only their status; it reads and writes the scale
# subresource of its targets: kubeplane's kinds (granted above) and the built-in scalable ones named here
# (system:controller:horizontal-pod-autoscaler grants */scale in every group; a target of another kind
# needs a rule in extraClusterRules). Metrics are read through the metrics APIs, as upstream's role does:
# their resources are metric names, hence "*", read-only.
- apiGroups: ["autoscaling.kubeplane.dev"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["autoscaling.kubeplane.dev"]
  resources: ["horizontalpodautoscalers/status"]
  verbs: ["get", "patch", "update"]
{{- end }}
{{- if or (has "horizontalpodautoscalers" $autoscaling) .root.Values.operators.controllers.dropIn }}
- apiGroups: ["apps"]
  resources: ["deployments/scale", "replicasets/scale", "statefulsets/scale"]
  verbs: ["get", "update"]
- apiGroups: [""]
  resources: ["replicationcontrollers/scale"]
  verbs: ["get", "update"]
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
  resources: ["*"]
  verbs: ["get", "list"]
{{- end }}
{{- if .root.Values.operators.controllers.dropIn }}
# Drop-in mode: the built-in kinds whose kube-controller-manager controllers kubeplane replaces, with
# what system:controller:replicaset-controller and replication-controller hold for them.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["replicasets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["replicasets/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["replicationcontrollers"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["replicationcontrollers/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["replicationcontrollers/finalizers"]
  verbs: ["update"]
# ... and system:controller:deployment-controller's.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["create", "patch", "update", "delete"]
# ... and system:controller:daemon-set-controller's (the ControllerRevisions are granted above).
- apiGroups: ["apps"]
  resources: ["daemonsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["daemonsets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["daemonsets/finalizers"]
  verbs: ["update"]
# ... and system:controller:statefulset-controller's (ControllerRevisions and claims granted above).
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["statefulsets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["statefulsets/finalizers"]
  verbs: ["update"]
# ... and system:controller:job-controller's: batch/v1 Jobs (their status, their pods' finalizer).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["batch"]
  resources: ["jobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["batch"]
  resources: ["jobs/finalizers"]
  verbs: ["update"]
# ... and system:controller:cronjob-controller's: batch/v1 CronJobs (status only) and the Jobs they run.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["cronjobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["batch"]
  resources: ["cronjobs/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# ... and system:controller:horizontal-pod-autoscaler's: autoscaling/v2 HPAs (status only); the scale
# subresources and metrics APIs are granted above.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers/status"]
  verbs: ["get", "patch", "update"]
{{- end }}
{{ include "kubeplane.rules.events" . }}
{{- end }}

{{- define "kubeplane.controllers.ownRules" -}}
{{ include "kubeplane.rules.leaderElection" . }}
{{- end }}

{{/* ------------------------------------------------------------------------------ scheduler */}}
{{- define "kubeplane.scheduler.clusterRules" -}}
{{ include "kubeplane.rules.kopf" . }}
# Placement reads every node, and namespaces for (anti-)affinity namespace selectors.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# SchedulerProfiles (cluster-scoped): read, and their Accepted condition written.
- apiGroups: ["scheduling.kubeplane.dev"]
  resources: ["schedulerprofiles"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["scheduling.kubeplane.dev"]
  resources: ["schedulerprofiles/status"]
  verbs: ["patch", "update"]
{{- end }}

{{- define "kubeplane.scheduler.namespacedRules" -}}
# delete: preemption evicts lower-priority victims, as system:kube-scheduler may.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# Binding a pod to a node, and PodScheduled=False/nominatedNodeName on pods that do not fit.
- apiGroups: [""]
  resources: ["pods/binding"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch", "update"]
# Gang scheduling: PodGroups are read (a Kopf index), and their status written.
- apiGroups: ["scheduling.kubeplane.dev"]
  resources: ["podgroups"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["scheduling.kubeplane.dev"]
  resources: ["podgroups/status"]
  verbs: ["patch", "update"]
{{ include "kubeplane.rules.events" . }}
{{- end }}

{{- define "kubeplane.scheduler.ownRules" -}}
{{ include "kubeplane.rules.leaderElection" . }}
{{- end }}

{{/* --------------------------------------------------------------------------------- backup */}}
{{/*
Backing up means reading whatever a Backup selects, so the reader ClusterRole allows list on every
resource of every group (Secrets included: they are backed up too). Only list: a backup reads
collections, and RBAC's "*" also matches every subresource, so `get` would grant nodes/proxy, pods/log,
pods/exec and pods/attach (the kubelet's API and a shell in any pod) to a backup-only install.
Restoring means writing them back (a separate ClusterRole, operators.backup.restore.enabled).
*/}}
{{- define "kubeplane.backup.clusterRules" -}}
{{ include "kubeplane.rules.kopf" . }}
{{- if not .root.Values.operators.backup.watchNamespaces }}
# Kopf watches the operator's own namespace (`kubeplane run backup` without -n) and lists and watches
# namespaces to see it exist (list is in the rule below).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["watch"]
{{- end }}
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["list"]
{{- end }}

{{- define "kubeplane.backup.restoreRules" -}}
# Restore creates what is missing and, with existingResourcePolicy=update, reads what exists and patches
# what differs (a merge patch: never update/PUT). It never deletes. Since "*" matches subresources too,
# create covers serviceaccounts/token and pods/exec: a restore-enabled install is cluster-admin in
# effect (as Velero's binding is), and writing to its bucket is as good as that (docs/backup.md).
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["get", "create", "patch"]
# Restored objects get their ownerReferences relinked to the restored owners' new UIDs; with
# blockOwnerDeletion set, clusters running the OwnerReferencesPermissionEnforcement admission plugin
# require update on the owner's finalizers subresource (the only update a restore needs).
- apiGroups: ["*"]
  resources: ["*/finalizers"]
  verbs: ["update"]
# Restoring Roles and ClusterRoles(Bindings) whose rules the operator does not itself hold.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "clusterroles"]
  verbs: ["bind", "escalate"]
{{- end }}

{{- define "kubeplane.backup.namespacedRules" -}}
{{- end }}

{{/*
Its own objects and storage credentials live in its namespace (KUBEPLANE_NAMESPACE, the release
namespace). Verified by running `kubeplane run backup` under these rules
(tests/integration/test_chart.py::test_backup_operator_runs_under_the_charts_service_account).
- get/list/watch on its kinds: Kopf watches them, the operator reads them (the read-all ClusterRole
  grants this too; these are what the operator needs without it);
- patch, never update: the status of every kind, and the delete-files finalizer on Backups (a patch of
  metadata.finalizers on the Backup itself: no finalizers subresource is involved);
- create Backups (a Schedule's runs) and delete them (garbage collection of expired Backups); it never
  creates or deletes locations, Restores or Schedules;
- get the Secrets a BackupStorageLocation names (credential, encryption key); never list or watch them
  here.
*/}}
{{- define "kubeplane.backup.ownRules" -}}
{{ include "kubeplane.rules.leaderElection" . }}
- apiGroups: ["backup.kubeplane.dev"]
  resources: ["backupstoragelocations", "backups", "restores", "schedules"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["backup.kubeplane.dev"]
  resources: ["backupstoragelocations/status", "backups/status", "restores/status", "schedules/status"]
  verbs: ["patch"]
- apiGroups: ["backup.kubeplane.dev"]
  resources: ["backups"]
  verbs: ["create", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{ include "kubeplane.rules.events" . }}
{{- end }}
