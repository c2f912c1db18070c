{{/* The chart's name. */}}
{{- define "ferrotune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object. */}}
{{- define "ferrotune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrotune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "ferrotune.labels" -}}
helm.sh/chart: {{ include "ferrotune.chart" . }}
{{ include "ferrotune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "ferrotune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrotune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferrotune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferrotune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferrotune.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether the operator elects a leader: always with more than one replica. */}}
{{- define "ferrotune.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "ferrotune.leaseName" -}}
{{- default (include "ferrotune.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
What the operator does with TrainingJobs and the objects it makes for them; nothing more
(no wildcards, no Secrets: the Hub token Secret is only referenced by the trainer pods' env).
*/}}
{{- define "ferrotune.rules" -}}
- apiGroups: ["ferrotune.dev"]
  resources: ["trainingjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ferrotune.dev"]
  resources: ["trainingjobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["ferrotune.dev"]
  resources: ["trainingjobs/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
