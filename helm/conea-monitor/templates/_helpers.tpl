{{/* Names and labels. */}}
{{- define "conea-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conea-monitor.fullname" -}}
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

{{- define "conea-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conea-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "conea-monitor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "conea-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: conea-monitor
{{- end }}

{{/* Labels of the objects kube-prometheus-stack selects (ServiceMonitor, Probe, PrometheusRule). */}}
{{- define "conea-monitor.monitoringLabels" -}}
{{ include "conea-monitor.labels" . }}
{{- with .Values.monitoringRelease }}
release: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "conea-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conea-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "conea-monitor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Value combinations the schema cannot express; a clear message, never a broken release. */}}
{{- define "conea-monitor.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.database.existingSecret) }}
{{- fail (printf "replicaCount=%d needs PostgreSQL: set database.existingSecret to a Secret holding the store URL (SQLite on a volume serves one replica only)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.webhook.bearerToken.existingSecret .Values.webhook.basicAuth.existingSecret }}
{{- fail "webhook: set one of webhook.bearerToken.existingSecret, webhook.basicAuth.existingSecret, not both" }}
{{- end }}
{{- if and .Values.webhook.basicAuth.existingSecret (not .Values.webhook.basicAuth.username) }}
{{- fail "webhook.basicAuth.username is required with webhook.basicAuth.existingSecret" }}
{{- end }}
{{- range $key := list "data_dir" "policies" "probes_file" "config_file" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is set by the chart: remove it (see policies.*, probeModules and persistence.*)" $key) }}
{{- end }}
{{- end }}
{{- if not .Values.rbac.clusterWide }}
{{- range $namespace := ((.Values.config.automation | default dict).namespaces_allow | default list) }}
{{- if regexMatch "[*?\\[]" $namespace }}
{{- fail (printf "config.automation.namespaces_allow: %q is a pattern and a Role needs a namespace name: list the namespaces, or set rbac.clusterWide=true (one ClusterRole; the service still keeps to the patterns)" $namespace) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (hasKey .Values.config "store") (hasKey (.Values.config.store | default dict) "url") }}
{{- fail "config.store.url would put a password in a ConfigMap: put the URL in a Secret and set database.existingSecret" }}
{{- end }}
{{- end }}

{{/* The namespaces the automation may act in: Roles go there (namespaced RBAC). */}}
{{- define "conea-monitor.namespaces" -}}
{{- $automation := .Values.config.automation | default dict }}
{{- $allow := $automation.namespaces_allow | default list }}
{{- if and (not $allow) (not .Values.rbac.clusterWide) }}
{{- $allow = list .Release.Namespace }}
{{- end }}
{{- toYaml (uniq $allow | sortAlpha) }}
{{- end }}

{{/*
The workload resources a policy or job with target `$target` may act on (its kind's, or
every one with `resolve: owner` or a kind naming no workload), as
monitor.actions.rbac.workload_kinds says: (list $catalogue $target).
*/}}
{{- define "conea-monitor.rbacWorkloads" -}}
{{- $catalogue := index . 0 }}
{{- $target := index . 1 | default dict }}
{{- $kind := lower (toString ($target.kind | default "")) }}
{{- if and (ne (toString ($target.resolve | default "")) "owner") (hasKey $catalogue.workloads $kind) }}
{{- toYaml (list (get $catalogue.workloads $kind)) }}
{{- else }}
{{- toYaml (values $catalogue.kinds | sortAlpha) }}
{{- end }}
{{- end }}

{{/*
What the Role grants, as a list of {actions, workloads}: each action's rules are granted
except those on the workload resources (deployments, statefulsets, daemonsets and their
subresources) not in `workloads`. Without rbac.actions: one entry per policy the chart
ships (the defaults and policies.files; the actions of its steps and its diagnose:, and
`resolve: owner`), for the workload kind its target names, as conea-monitor rbac counts
them; plus, when rbac.workloadKinds lists kinds, every such action for those kinds too.
With rbac.actions: those actions, for rbac.workloadKinds (default: Deployment); a policy
acting on a kind not listed fails the render. Each of config.jobs adds its action, for
the kind its target names.
*/}}
{{- define "conea-monitor.rbacUses" -}}
{{- $catalogue := .Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- $every := values $catalogue.kinds | sortAlpha }}
{{- $listed := list }}
{{- range $kind := (.Values.rbac.workloadKinds | default list) }}
{{- $listed = append $listed (get $catalogue.kinds $kind) }}
{{- end }}
{{- $policies := list }}
{{- range $name, $content := (include "conea-monitor.policies" . | fromYaml) }}
{{- $file := $content | fromYaml }}
{{- if hasKey $file "Error" }}
{{- fail (printf "policies.files.%s: not YAML: %s" $name $file.Error) }}
{{- end }}
{{- range $policy := ($file.policies | default list) }}
{{- $actions := list }}
{{- if eq (toString (($policy.target | default dict).resolve | default "")) "owner" }}
{{- $actions = append $actions "resolve: owner" }}
{{- end }}
{{- range $step := ($policy.steps | default list) }}
{{- $stepActions := $step }}
{{- if kindIs "map" $step }}
{{- $stepActions = $step.actions }}
{{- end }}
{{- range $action := ($stepActions | default list) }}
{{- $actions = append $actions $action.action }}
{{- end }}
{{- end }}
{{- range $diagnostic := ($policy.diagnose | default list) }}
{{- $actions = append $actions $diagnostic.action }}
{{- end }}
{{- $workloads := include "conea-monitor.rbacWorkloads" (list $catalogue $policy.target) | fromYamlArray }}
{{- $policies = append $policies (dict "policy" (toString $policy.name) "file" $name "actions" $actions "workloads" $workloads) }}
{{- end }}
{{- end }}
{{- $uses := list }}
{{- if .Values.rbac.actions }}
{{- $granted := $listed | default (list (get $catalogue.kinds "Deployment")) }}
{{- $uses = append $uses (dict "actions" .Values.rbac.actions "workloads" $granted) }}
{{- range $use := $policies }}
{{- $acting := false }}
{{- range $action := $use.actions }}
{{- if has $action $.Values.rbac.actions }}
{{- range $rule := (get $catalogue.actions $action | default list) }}
{{- range $resource := $rule.resources }}
{{- if and (has "apps" $rule.apiGroups) (has (first (splitList "/" $resource)) $every) }}
{{- $acting = true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $missing := list }}
{{- range $kind, $resource := $catalogue.kinds }}
{{- if and (has $resource $use.workloads) (not (has $resource $granted)) }}
{{- $missing = append $missing $kind }}
{{- end }}
{{- end }}
{{- if and $acting $missing }}
{{- fail (printf "rbac.workloadKinds: policy %q (%s) may act on a %s, and with rbac.actions set the Role grants workloads of the kinds rbac.workloadKinds lists only (empty: Deployment): add %s" $use.policy $use.file (join " or " $missing) (join ", " $missing)) }}
{{- end }}
{{- end }}
{{- else }}
{{- range $use := $policies }}
{{- $uses = append $uses (dict "actions" $use.actions "workloads" $use.workloads) }}
{{- end }}
{{- end }}
{{- range $job := (.Values.config.jobs | default list) }}
{{- $workloads := include "conea-monitor.rbacWorkloads" (list $catalogue $job.target) | fromYamlArray }}
{{- $uses = append $uses (dict "actions" (list $job.action) "workloads" $workloads) }}
{{- end }}
{{- if and $listed (not .Values.rbac.actions) }}
{{- $actions := list }}
{{- range $use := $uses }}
{{- $actions = concat $actions $use.actions }}
{{- end }}
{{- $uses = append $uses (dict "actions" (uniq $actions | sortAlpha) "workloads" $listed) }}
{{- end }}
{{- range $use := $uses }}
{{- range $action := $use.actions }}
{{- if not (hasKey $catalogue.actions $action) }}
{{- fail (printf "rbac.actions: unknown action %q (known: %s)" $action (keys $catalogue.actions | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $uses }}
{{- end }}

{{/* The actions whose RBAC rules are granted (conea-monitor.rbacUses), sorted and unique. */}}
{{- define "conea-monitor.rbacActions" -}}
{{- $actions := list }}
{{- range $use := (include "conea-monitor.rbacUses" . | fromYamlArray) }}
{{- $actions = concat $actions $use.actions }}
{{- end }}
{{- toYaml (uniq $actions | sortAlpha) }}
{{- end }}

{{/*
The rules of conea-monitor.rbacUses, merged as monitor.actions.rbac.merge merges them: verbs
merged per (API group, resource), resources with the same verbs grouped per API group,
sorted by (group, verbs). "\x01" and "\x00" make string order equal tuple order.
*/}}
{{- define "conea-monitor.rbacRules" -}}
{{- $catalogue := .Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- $every := values $catalogue.kinds }}
{{- $verbs := dict }}
{{- range $use := (include "conea-monitor.rbacUses" . | fromYamlArray) }}
{{- range $action := $use.actions }}
{{- range $rule := (get $catalogue.actions $action) }}
{{- range $group := $rule.apiGroups }}
{{- range $resource := $rule.resources }}
{{- $workload := first (splitList "/" $resource) }}
{{- if not (and (eq $group "apps") (has $workload $every) (not (has $workload $use.workloads))) }}
{{- $key := printf "%s\x01%s" $group $resource }}
{{- $_ := set $verbs $key (concat (get $verbs $key | default list) $rule.verbs | uniq | sortAlpha) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $grouped := dict }}
{{- $groupOf := dict }}
{{- $verbsOf := dict }}
{{- range $key := keys $verbs | sortAlpha }}
{{- $parts := splitList "\x01" $key }}
{{- $group := first $parts }}
{{- $verbList := get $verbs $key }}
{{- $gkey := printf "%s\x01%s" $group (join "\x00" $verbList) }}
{{- $_ := set $grouped $gkey (append (get $grouped $gkey | default list) (last $parts)) }}
{{- $_ := set $groupOf $gkey $group }}
{{- $_ := set $verbsOf $gkey $verbList }}
{{- end }}
{{- $rules := list }}
{{- range $gkey := keys $grouped | sortAlpha }}
{{- $rules = append $rules (dict "apiGroups" (list (get $groupOf $gkey)) "resources" (get $grouped $gkey | sortAlpha) "verbs" (get $verbsOf $gkey)) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* Whether the SQLite store lives on the chart's PersistentVolumeClaim. */}}
{{- define "conea-monitor.sqlite" -}}
{{- if not .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* conea-monitor.yml: the user's config plus what the chart owns. */}}
{{- define "conea-monitor.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "data_dir" "/var/lib/conea-monitor" }}
{{- $_ := set $config "policies" (list "/etc/conea-monitor/policies") }}
{{- if .Values.probeModules }}
{{- $_ := set $config "probes_file" "/etc/conea-monitor/config/probes.yml" }}
{{- end }}
{{- if not (hasKey $config "public_url") }}
{{- $_ := set $config "public_url" (printf "http://%s.%s.svc:%d" (include "conea-monitor.fullname" .) .Release.Namespace (int .Values.service.port)) }}
{{- end }}
{{- if .Values.policies.defaults }}
{{- /* The default policies page `oncall` and act on `conea-production`: defined unless
       the user's config defines them (secrets from secretEnv, named in values.yaml). */}}
{{- $notifiers := $config.notifiers | default dict }}
{{- if not (hasKey $notifiers "oncall") }}
{{- $_ := set $notifiers "oncall" (dict "kind" "slack" "url" (dict "env" "CONEA_ONCALL_WEBHOOK_URL")) }}
{{- end }}
{{- $_ := set $config "notifiers" $notifiers }}
{{- $targets := $config.postgres_targets | default dict }}
{{- if not (hasKey $targets "conea-production") }}
{{- $_ := set $targets "conea-production" (dict "host" "db.conea.io" "dbname" "conea_production" "user" "conea_monitor" "password_env" "CONEA_PRODUCTION_DB_PASSWORD" "sslmode" "require") }}
{{- end }}
{{- $_ := set $config "postgres_targets" $targets }}
{{- end }}
{{- $kubernetes := $config.kubernetes | default dict }}
{{- if not (hasKey $kubernetes "mode") }}
{{- $_ := set $kubernetes "mode" "in-cluster" }}
{{- end }}
{{- $_ := set $config "kubernetes" $kubernetes }}
{{- $automation := $config.automation | default dict }}
{{- $_ := set $automation "namespaces_allow" (include "conea-monitor.namespaces" . | fromYamlArray) }}
{{- with .Values.operatorToken.existingSecret }}
{{- $_ := set $automation "api_token_file" (printf "/etc/conea-monitor/operator/%s" $.Values.operatorToken.key) }}
{{- end }}
{{- $_ := set $config "automation" $automation }}
{{- $webhook := $config.webhook | default dict }}
{{- with .Values.webhook.bearerToken.existingSecret }}
{{- $_ := set $webhook "bearer_token_file" (printf "/etc/conea-monitor/webhook/%s" $.Values.webhook.bearerToken.key) }}
{{- end }}
{{- with .Values.webhook.basicAuth.existingSecret }}
{{- $_ := set $webhook "basic_auth" (dict "username" $.Values.webhook.basicAuth.username "password_file" (printf "/etc/conea-monitor/webhook/%s" $.Values.webhook.basicAuth.key)) }}
{{- end }}
{{- $_ := set $config "webhook" $webhook }}
{{- with .Values.viewerToken.existingSecret }}
{{- $access := $config.access | default dict }}
{{- $_ := set $access "viewer_token_file" (printf "/etc/conea-monitor/viewer/%s" $.Values.viewerToken.key) }}
{{- $_ := set $config "access" $access }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The policy files: the defaults (unless turned off) overlaid with policies.files. */}}
{{- define "conea-monitor.policies" -}}
{{- $files := dict }}
{{- if .Values.policies.defaults }}
{{- range $path, $_ := .Files.Glob "files/remediations/*.yaml" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- if .Values.policies.kubePrometheusStack }}
{{- $_ := set $files "kube-prometheus-stack.yaml" (.Files.Get "files/remediations-optional/kube-prometheus-stack.yaml") }}
{{- end }}
{{- range $name, $content := .Values.policies.files }}
{{- $_ := set $files $name $content }}
{{- end }}
{{- toYaml $files }}
{{- end }}
