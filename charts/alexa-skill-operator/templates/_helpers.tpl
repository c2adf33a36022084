{{/*
Names are fixed, as in deploy/: the digest key Secret and the Lease are looked up by these names,
and two installs of this operator in one cluster would fight over the same objects anyway.
*/}}
{{- define "aso.name" -}}alexa-skill-operator{{- end -}}

{{/* Labels deploy/ puts on every object, plus Helm's own (tests/deploy/chart.rs strips these). */}}
{{- define "aso.labels" -}}
app.kubernetes.io/name: alexa-skill-operator
app.kubernetes.io/part-of: alexa-skill-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "aso.selectorLabels" -}}
app.kubernetes.io/name: alexa-skill-operator
app.kubernetes.io/component: controller
{{- end -}}

{{/* The ServiceAccount every binding names. */}}
{{- define "aso.subject" -}}
subjects:
- kind: ServiceAccount
  name: alexa-skill-operator
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
What the operator may do where it watches: the rules of deploy/rbac/cluster-role.yaml and
deploy/namespaced/watched-namespace-rbac.yaml (tests/deploy/chart.rs compares them). A Role
cannot grant the cluster-scoped ClusterAlexaCredentials, so with watchNamespaces only
AlexaCredentials are granted (and served), as in deploy/namespaced/.
*/}}
{{- define "aso.workloadRules" -}}
{{- $cluster := not .Values.watchNamespaces -}}
rules:
- apiGroups: ["alexa.operator.dev"]
  resources: ["skillaccountlinkings", "skillenablements", "alexacredentials"{{ if $cluster }}, "clusteralexacredentials"{{ end }}]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["alexa.operator.dev"]
  resources: ["skillaccountlinkings/status", "skillenablements/status", "alexacredentials/status"{{ if $cluster }}, "clusteralexacredentials/status"{{ end }}]
  verbs: ["patch"]
- apiGroups: ["alexa.operator.dev"]
  resources: ["skillaccountlinkings/finalizers", "skillenablements/finalizers", "alexacredentials/finalizers"{{ if $cluster }}, "clusteralexacredentials/finalizers"{{ end }}]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
{{- end -}}

{{/* The `run` arguments: deploy/'s first, in its order, then every flag set in values. */}}
{{- define "aso.args" -}}
- run
{{- if .Values.leaderElection.enabled }}
- --leader-election
{{- end }}
- --metrics-addr=0.0.0.0:{{ .Values.metrics.port }}
- --log-format={{ .Values.operator.logFormat }}
{{- with .Values.watchNamespaces }}
- --watch-namespace={{ join "," . }}
{{- end }}
{{- $o := .Values.operator }}
{{- range $flag, $key := dict "smapi-url" "smapiUrl" "lwa-url" "lwaUrl" "customer-discovery-url" "customerDiscoveryUrl" "resync-period" "resyncPeriod" "concurrency" "concurrency" "api-rate-limit" "apiRateLimit" "api-burst" "apiBurst" "backoff-base" "backoffBase" "backoff-max" "backoffMax" "http-timeout" "httpTimeout" "lease-name" "leaseName" "lease-namespace" "leaseNamespace" "lease-duration" "leaseDuration" "shutdown-grace" "shutdownGrace" }}
{{- $v := index $o $key }}
{{- if not (or (kindIs "invalid" $v) (eq (toString $v) "")) }}
- --{{ $flag }}={{ $v }}
{{- end }}
{{- end }}
{{- range $o.endpointOverrides }}
- --endpoint-override={{ . }}
{{- end }}
{{- end -}}

{{- define "aso.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}
