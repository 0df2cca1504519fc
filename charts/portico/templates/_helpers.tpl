{{/*
Object names. fullname is the release name, suffixed with "-portico" unless it already says portico;
every object adds its role ("-operator", "-snapshots", ...). Kubernetes names are at most 63 characters
where they become labels or DNS labels, so the base is cut at 40 to leave room for the suffixes.
*/}}
{{- define "portico.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "portico" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-portico" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portico.operatorName" -}}
{{- printf "%s-operator" (include "portico.fullname" .) -}}
{{- end -}}

{{/* The Service the proxies fetch their configuration snapshots from (config delivery). */}}
{{- define "portico.snapshotServiceName" -}}
{{- printf "%s-snapshots" (include "portico.fullname" .) -}}
{{- end -}}

{{/* host:port of the snapshot Service, what the operator tells its proxies to connect to. */}}
{{- define "portico.snapshotAddress" -}}
{{- printf "%s.%s.svc:%d" (include "portico.snapshotServiceName" .) .Release.Namespace (int .Values.snapshotService.port) -}}
{{- end -}}

{{- define "portico.metricsServiceName" -}}
{{- printf "%s-operator-metrics" (include "portico.fullname" .) -}}
{{- end -}}

{{- define "portico.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portico.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The one image, pinned by digest when one is given. */}}
{{- define "portico.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Labels. app.kubernetes.io/name is always "portico" and the operator's component "operator": the
proxies' NetworkPolicy, rendered by the operator, selects the operator pods by exactly these two.
*/}}
{{- define "portico.labels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: portico
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}

{{- define "portico.operatorSelectorLabels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "portico.operatorLabels" -}}
{{ include "portico.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Checks of values that the JSON schema cannot express. */}}
{{- define "portico.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) -}}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: replicas would reconcile the same objects against each other" -}}
{{- end -}}
{{- if .Values.defaultEdgeProxy.enabled -}}
{{- if eq .Values.defaultEdgeProxy.proxyNamespace .Release.Namespace -}}
{{- fail "defaultEdgeProxy.proxyNamespace must not be the operator's namespace: a proxy fleet runs in its tenant's own namespace" -}}
{{- end -}}
{{- if not .Values.defaultEdgeProxy.hostnames -}}
{{- fail "defaultEdgeProxy.hostnames needs at least one hostname the tenant may claim" -}}
{{- end -}}
{{- if and (not .Values.defaultEdgeProxy.tenantNamespaces.names) (not .Values.defaultEdgeProxy.tenantNamespaces.selector) -}}
{{- fail "defaultEdgeProxy.tenantNamespaces needs names or a selector" -}}
{{- end -}}
{{- end -}}
{{- end -}}
