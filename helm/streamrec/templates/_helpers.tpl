{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "streamrec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "streamrec.fullname" -}}
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

{{- define "streamrec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "streamrec.labels" -}}
helm.sh/chart: {{ include "streamrec.chart" . }}
{{ include "streamrec.selectorLabels" . }}
app.kubernetes.io/version: {{ include "streamrec.versionLabel" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pod; never change them after install. */}}
{{- define "streamrec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "streamrec.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamrec.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streamrec.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Namespaces the operator watches, as a JSON list (default: the release namespace). */}}
{{- define "streamrec.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/* The image tag as a label value: at most 63 characters of [A-Za-z0-9_.-], starting and ending
     alphanumeric. A tag may be longer (skaffold's inputDigest tags are 64 hex digits). */}}
{{- define "streamrec.versionLabel" -}}
{{- include "streamrec.imageTag" . | trunc 63 | trimAll "-_." }}
{{- end }}
