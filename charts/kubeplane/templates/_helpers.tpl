{{/* The operators the chart knows, in rendering order. */}}
{{- define "kubeplane.operatorNames" -}}
controllers scheduler backup
{{- end }}

{{- define "kubeplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object. Kept to 45 characters so "<fullname>-controllers-<suffix>" stays
within the 63-character limit of names and label values.
*/}}
{{- define "kubeplane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubeplane.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "kubeplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels. Call with (dict "root" $ "component" "controllers"). */}}
{{- define "kubeplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeplane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every standard label. Call with (dict "root" $ "component" "controllers"). */}}
{{- define "kubeplane.labels" -}}
helm.sh/chart: {{ include "kubeplane.chart" .root }}
{{ include "kubeplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kubeplane
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Object name of one operator's objects: "<fullname>-<operator>". */}}
{{- define "kubeplane.operatorFullname" -}}
{{- printf "%s-%s" (include "kubeplane.fullname" .root) .name }}
{{- end }}

{{/* Service account of one operator. Call with (dict "root" $ "name" "controllers"). */}}
{{- define "kubeplane.serviceAccountName" -}}
{{- $op := index .root.Values.operators .name }}
{{- if $op.serviceAccount.create }}
{{- default (include "kubeplane.operatorFullname" .) $op.serviceAccount.name }}
{{- else }}
{{- required (printf "operators.%s.serviceAccount.name is required when operators.%s.serviceAccount.create is false" .name .name) $op.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference of one operator. Call with (dict "root" $ "name" "controllers"). */}}
{{- define "kubeplane.image" -}}
{{- $op := index .root.Values.operators .name }}
{{- $repository := default .root.Values.image.repository $op.image.repository }}
{{- if and .root.Values.image.digest (not $op.image.repository) (not $op.image.tag) }}
{{- printf "%s@%s" $repository .root.Values.image.digest }}
{{- else }}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) $op.image.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* The image of the operator pods when no operator is in context (helm test). */}}
{{- define "kubeplane.defaultImage" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The CRDs the chart ships (files/crds/, a copy of the repository's crds/ kept in sync by
`make chart-crds`): a JSON list of {path, name, group, plural}. Only the head of each file (up to
spec.versions, the last key hack/gen_crds.py writes) is parsed: the schemas are large and parsing them
for every template would make rendering slow.
*/}}
{{- define "kubeplane.crdFiles" -}}
{{- $crds := list }}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $head := regexSplit "\n  versions:" ($.Files.Get $path) 2 | first | fromYaml }}
{{- $group := dig "spec" "group" "" $head }}
{{- $plural := dig "spec" "names" "plural" "" $head }}
{{- if or (not $group) (not $plural) (not $head.metadata) }}
{{- fail (printf "%s: no metadata, spec.group or spec.names.plural before spec.versions" $path) }}
{{- end }}
{{- $crds = append $crds (dict "path" $path "name" $head.metadata.name "group" $group "plural" $plural) }}
{{- end }}
{{- toJson $crds }}
{{- end }}

{{/* Plural names of the chart's CRDs in one API group. Call with (dict "root" $ "group" "apps.kubeplane.dev"). */}}
{{- define "kubeplane.crdPlurals" -}}
{{- $plurals := list }}
{{- range (include "kubeplane.crdFiles" .root | fromJsonArray) }}
{{- if eq .group $.group }}
{{- $plurals = append $plurals .plural }}
{{- end }}
{{- end }}
{{- toJson $plurals }}
{{- end }}

{{/* MinIO: the Secret holding rootUser/rootPassword. */}}
{{- define "kubeplane.minio.secretName" -}}
{{- default (printf "%s-minio" (include "kubeplane.fullname" .)) .Values.minio.auth.existingSecret }}
{{- end }}

{{- define "kubeplane.minio.endpoint" -}}
{{- printf "http://%s-minio.%s.svc:%v" (include "kubeplane.fullname" .) (include "kubeplane.namespace" .) .Values.minio.service.port }}
{{- end }}

{{/* The Secret and key the default BackupStorageLocation reads its credentials from. */}}
{{- define "kubeplane.bsl.credentialSecret" -}}
{{- $c := .Values.backupStorageLocation.credential }}
{{- if $c.existingSecret }}
{{- $c.existingSecret }}
{{- else if and $c.accessKeyId $c.secretAccessKey }}
{{- printf "%s-bsl-credentials" (include "kubeplane.fullname" .) }}
{{- else if and .Values.minio.enabled (not .Values.minio.auth.existingSecret) }}
{{- include "kubeplane.minio.secretName" . }}
{{- else }}
{{- fail "backupStorageLocation.create needs credentials: set backupStorageLocation.credential.existingSecret, or accessKeyId and secretAccessKey, or enable minio with a generated secret" }}
{{- end }}
{{- end }}
