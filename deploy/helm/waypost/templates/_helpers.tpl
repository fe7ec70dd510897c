{{/* Names, labels and the environment shared by the Deployment and the migration Job. */}}

{{- define "waypost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "waypost.fullname" -}}
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

{{- define "waypost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "waypost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "waypost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The gateway's pods only: the migration Job's pod must not join the Service or the PDB. */}}
{{- define "waypost.gatewaySelectorLabels" -}}
{{ include "waypost.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "waypost.labels" -}}
helm.sh/chart: {{ include "waypost.chart" . }}
{{ include "waypost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "waypost.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "waypost.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "waypost.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret the environment is read from: an existing one, or the chart's own. */}}
{{- define "waypost.secretName" -}}
{{- default (include "waypost.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Port numbers from Waypost's own configuration, so the pod, probes and Service follow it. */}}
{{- define "waypost.port" -}}
{{- (.Values.config.server | default dict).port | default 4000 | int }}
{{- end }}

{{- define "waypost.metricsPort" -}}
{{- with (.Values.config.metrics | default dict).port }}{{ . | int }}{{ end }}
{{- end }}

{{/* preStop sleep + Waypost's grace period + time to flush the audit log, unless given. */}}
{{- define "waypost.terminationGracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- else }}
{{- $grace := (.Values.config.server | default dict).shutdown_grace | default 30 }}
{{- add (.Values.preStopSleepSeconds | int) ($grace | ceil | int) 15 }}
{{- end }}
{{- end }}

{{/*
Waypost settings from the Secret, as WAYPOST_* overrides (docs/configuration.md, "Environment
overrides"). Optional keys are skipped when absent. tests/deploy checks every name against the
settings.
*/}}
{{- define "waypost.secretEnv" -}}
{{- $secret := include "waypost.secretName" . }}
{{- $keys := .Values.secrets.keys -}}
- name: WAYPOST_DATABASE__URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.databaseUrl }}}}
- name: WAYPOST_AUTH__JWT_SECRET
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.jwtSecret }}}}
- name: WAYPOST_SECURITY__ENCRYPTION_KEYS
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.encryptionKeys }}}}
- name: WAYPOST_ADMIN_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.adminPassword }}}}
- name: WAYPOST_STATE__REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.redisUrl }}, optional: true}}
- name: WAYPOST_METRICS__TOKEN
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $keys.metricsToken }}, optional: true}}
{{- end }}

{{- define "waypost.providerEnv" -}}
{{- range $name, $ref := .Values.providerKeys }}
- name: {{ $name }}
  valueFrom: {secretKeyRef: {name: {{ $ref.secret | default (include "waypost.secretName" $) }}, key: {{ $ref.key }}}}
{{- end }}
{{- end }}
