{{/* ---- names and labels ------------------------------------------------- */}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: fullnameOverride, else the release name if it contains the chart
name, else "<release>-<chart name>"; at most 63 characters.
*/}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", the suffix kept whole. */}}
{{- define "tollgate.suffixed" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "tollgate.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* ---- secrets ------------------------------------------------------------ */}}

{{/* Name of the Secret mounted at /etc/tollgate/secrets. */}}
{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/*
The Secret keys that exist, as a JSON list (use: include ... | fromJsonArray):
existingSecretKeys with existingSecret, else the keys whose secrets.* value is set.
*/}}
{{- define "tollgate.secretKeys" -}}
{{- $keys := list -}}
{{- if .Values.existingSecret -}}
{{- $keys = .Values.existingSecretKeys | default list -}}
{{- else -}}
{{- $s := .Values.secrets -}}
{{- if $s.apiKeys }}{{ $keys = append $keys "api-keys" }}{{ end -}}
{{- if or $s.jwtSecret (eq (include "tollgate.generateJwtSecret" .) "true") }}{{ $keys = append $keys "jwt-secret" }}{{ end -}}
{{- if $s.adminToken }}{{ $keys = append $keys "admin-token" }}{{ end -}}
{{- if $s.adminTokens }}{{ $keys = append $keys "admin-tokens" }}{{ end -}}
{{- if $s.redisPassword }}{{ $keys = append $keys "redis-password" }}{{ end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{/*
"true" when the chart must make up a JWT secret: no existingSecret, neither
secrets.apiKeys nor secrets.jwtSecret, and an auth mode that takes JWTs.
tollgate refuses to start without a credential to check, so a bare
`helm install` gets a random 48-character HS256 secret (kept across upgrades
through `lookup`): pods start and refuse every request (401) until keys are
added, and an operator can read the secret to sign tokens.  Fail-closed.
*/}}
{{- define "tollgate.generateJwtSecret" -}}
{{- $mode := (.Values.config.auth | default dict).mode | default "any" -}}
{{- and (not .Values.existingSecret) (not .Values.secrets.apiKeys) (not .Values.secrets.jwtSecret) (has $mode (list "any" "jwt")) -}}
{{- end -}}

{{/* Secret key -> the variable naming its file. */}}
{{- define "tollgate.secretEnvNames" -}}
{{- toJson (dict "api-keys" "API_KEYS_FILE" "jwt-secret" "JWT_SECRET_FILE" "admin-token" "ADMIN_TOKEN_FILE" "admin-tokens" "ADMIN_TOKENS_FILE" "redis-password" "REDIS_PASSWORD_FILE") -}}
{{- end -}}

{{/* ---- threads from the CPU limit ----------------------------------------- */}}

{{/*
tollgate.cpuCores: a Kubernetes CPU quantity ("1500m", "2", "0.5", 2, 0.5)
rounded UP to whole cores, at least 1; "0" when the quantity is empty.
*/}}
{{- define "tollgate.cpuCores" -}}
{{- $q := . | toString | trim -}}
{{- if or (eq $q "") (eq $q "<nil>") -}}
0
{{- else if regexMatch "^[0-9]+m$" $q -}}
{{- $milli := trimSuffix "m" $q | atoi -}}
{{- max 1 (div (add $milli 999) 1000) -}}
{{- else if regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)$" $q -}}
{{- max 1 (ceil (float64 $q) | int) -}}
{{- else -}}
{{- fail (printf "resources.limits.cpu %q: expected a CPU quantity like \"1500m\", \"2\" or \"0.5\"" $q) -}}
{{- end -}}
{{- end -}}

{{/* Worker threads for --threads: the `threads` value, else from the CPU limit (0 = none given). */}}
{{- define "tollgate.threads" -}}
{{- if not (kindIs "invalid" .Values.threads) -}}
{{- $t := int .Values.threads -}}
{{- if or (lt $t 1) (gt $t 256) -}}
{{- fail (printf "threads: %v is outside 1..256 (leave it null to derive it from resources.limits.cpu)" .Values.threads) -}}
{{- end -}}
{{- $t -}}
{{- else -}}
{{- $cpu := "" -}}
{{- with .Values.resources }}{{ with .limits }}{{ $cpu = .cpu }}{{ end }}{{ end -}}
{{- min 256 (include "tollgate.cpuCores" $cpu | int) -}}
{{- end -}}
{{- end -}}

{{/* ---- durations ------------------------------------------------------------ */}}

{{/* A tollgate duration (30, "30s", "1m", "1h", "1d") in seconds. */}}
{{- define "tollgate.durationSeconds" -}}
{{- $d := . | toString | trim -}}
{{- if regexMatch "^[0-9]+$" $d -}}
{{- $d | atoi -}}
{{- else if regexMatch "^[0-9]+[smhd]$" $d -}}
{{- $unit := regexFind "[smhd]$" $d -}}
{{- mul (trimSuffix $unit $d | atoi) (get (dict "s" 1 "m" 60 "h" 3600 "d" 86400) $unit) -}}
{{- else -}}
{{- fail (printf "config.shutdown_delay %q: expected a duration like 5, \"5s\" or \"1m\"" $d) -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.shutdownDelaySeconds" -}}
{{- if hasKey .Values.config "shutdown_delay" -}}
{{- include "tollgate.durationSeconds" .Values.config.shutdown_delay -}}
{{- else -}}
5
{{- end -}}
{{- end -}}

{{/* ---- tollgate.yaml ------------------------------------------------------- */}}

{{/* The effective tollgate config as a dict (config + listeners + expected_replicas). */}}
{{- define "tollgate.configDict" -}}
{{- $c := deepCopy (.Values.config | default dict) -}}
{{- $_ := set $c "listen" (printf "0.0.0.0:%d" (int .Values.ports.http)) -}}
{{- $_ = set $c "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- $_ = set $c "expected_replicas" (include "tollgate.expectedReplicas" . | int) -}}
{{- $deploy := include "tollgate.redisDeploy" . -}}
{{- if has $deploy (list "standalone" "cluster") -}}
{{- $r := deepCopy ($c.redis | default dict) -}}
{{- $_ = set $r "mode" $deploy -}}
{{- $_ = set $r "nodes" (include "tollgate.redisNodes" . | fromJsonArray) -}}
{{- $_ = set $c "redis" $r -}}
{{- else if eq $deploy "none" -}}
{{- $r := deepCopy ($c.redis | default dict) -}}
{{- $_ = set $r "mode" "none" -}}
{{- $_ = set $c "redis" $r -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/*
expected_replicas: what the `local` Redis fallback divides each rate by, until
tollgate has a live replica count. Set to the MOST replicas that can run (the
HPA's maxReplicas, else replicaCount), so that during a Redis outage the
fleet never allows more than the rate (fewer replicas: stricter).
*/}}
{{- define "tollgate.expectedReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* ---- the chart's own Redis (redis.deploy) ---------------------------------- */}}

{{/* standalone | cluster | external | none */}}
{{- define "tollgate.redisDeploy" -}}
{{- (.Values.redis | default dict).deploy | default "standalone" -}}
{{- end -}}

{{/* "true" when the chart runs a Redis of its own. */}}
{{- define "tollgate.redisOwn" -}}
{{- has (include "tollgate.redisDeploy" .) (list "standalone" "cluster") -}}
{{- end -}}

{{/* <fullname>-redis: the StatefulSet, the standalone Service, the generated Secret. */}}
{{- define "tollgate.redisName" -}}
{{- include "tollgate.suffixed" (list . "redis") -}}
{{- end -}}

{{/* The cluster's headless Service (every node's stable name). */}}
{{- define "tollgate.redisHeadless" -}}
{{- include "tollgate.suffixed" (list . "redis-headless") -}}
{{- end -}}

{{/* The Secret holding the Redis password and its key. */}}
{{- define "tollgate.redisSecretName" -}}
{{- default (include "tollgate.redisName" .) .Values.redis.auth.existingSecret -}}
{{- end -}}
{{- define "tollgate.redisSecretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecretKey | default "redis-password" -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{/* Number of cluster nodes (3 primaries + 1 replica each by default). */}}
{{- define "tollgate.redisClusterNodes" -}}
{{- int .Values.redis.cluster.nodes -}}
{{- end -}}

{{/* The nodes tollgate's redis.nodes lists for the chart's own Redis (JSON list). */}}
{{- define "tollgate.redisNodes" -}}
{{- $deploy := include "tollgate.redisDeploy" . -}}
{{- $nodes := list -}}
{{- if eq $deploy "standalone" -}}
{{- $nodes = append $nodes (printf "%s:6379" (include "tollgate.redisName" .)) -}}
{{- else if eq $deploy "cluster" -}}
{{- $sts := include "tollgate.redisName" . -}}
{{- $svc := include "tollgate.redisHeadless" . -}}
{{- range $i := until (include "tollgate.redisClusterNodes" . | int) -}}
{{- $nodes = append $nodes (printf "%s-%d.%s:6379" $sts $i $svc) -}}
{{- end -}}
{{- end -}}
{{- toJson $nodes -}}
{{- end -}}

{{- define "tollgate.redisSelectorLabels" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: shared-state
{{- end -}}

{{- define "tollgate.redisLabels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.redisSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tollgate.redisImage" -}}
{{- $i := .Values.redis.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{/* More than one tollgate replica can run (replicaCount > 1 or an HPA). */}}
{{- define "tollgate.multiReplica" -}}
{{- or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
{{- end -}}

{{/*
What only a restart applies (docs/configuration.md): listen, admin_listen,
threads, max_body_bytes, max_header_bytes, redis.*, audit.path, auth.jwt.cache_entries and
cache_bytes. Hashed into the pod template's checksum/config,
so a change of limits, tiers, routes, cors or auth leaves the pod template
byte-identical (the running pods reload the ConfigMap instead).
*/}}
{{- define "tollgate.restartChecksum" -}}
{{- $c := .Values.config | default dict -}}
{{- $audit := $c.audit | default dict -}}
{{- $jwt := (($c.auth | default dict).jwt | default dict) -}}
{{- $restart := dict
      "listen" (int .Values.ports.http)
      "admin_listen" (int .Values.ports.admin)
      "threads" (include "tollgate.threads" .)
      "redis" ((include "tollgate.configDict" . | fromJson).redis | default dict)
      "redis_secret" (ternary (list (include "tollgate.redisSecretName" .) (include "tollgate.redisSecretKey" .)) list (eq (include "tollgate.redisOwn" .) "true"))
      "max_body_bytes" (get $c "max_body_bytes" | default "")
      "max_header_bytes" (get $c "max_header_bytes" | default "")
      "audit_path" (get $audit "path" | default "-")
      "jwt_cache" (list (get $jwt "cache_entries" | default "") (get $jwt "cache_bytes" | default "")) -}}
{{- toJson $restart | sha256sum -}}
{{- end -}}

{{/*
"true" when a JWT provider fetches its keys (jwks_uri or discovery): the
NetworkPolicy then lets the pods reach the identity provider.
*/}}
{{- define "tollgate.fetchesJwks" -}}
{{- $jwt := ((((.Values.config | default dict).auth | default dict).jwt) | default dict) -}}
{{- range ($jwt.providers | default list) -}}
{{- if or .jwks_uri .discovery }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* ---- validation (fails rendering with a message) ------------------------- */}}

{{- define "tollgate.validate" -}}
{{- $c := .Values.config | default dict -}}
{{- range $k := list "listen" "admin_listen" "threads" "expected_replicas" -}}
{{- if hasKey $c $k -}}
{{- fail (printf "config.%s is set by the chart (listen/admin_listen from `ports`, threads from `threads`/resources.limits.cpu, expected_replicas from `replicaCount`): remove it from config" $k) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $c "admin_token" -}}
{{- fail "config.admin_token: never put a secret into the ConfigMap; use secrets.adminToken or existingSecret + existingSecretKeys [admin-token]" -}}
{{- end -}}
{{- if and (kindIs "map" $c.redis) (hasKey $c.redis "password") -}}
{{- fail "config.redis.password: never put a secret into the ConfigMap; use secrets.redisPassword or existingSecret + existingSecretKeys [redis-password]" -}}
{{- end -}}
{{- if kindIs "map" $c.auth -}}
{{- if hasKey $c.auth "api_keys_file" -}}
{{- fail "config.auth.api_keys_file is set by the chart (API_KEYS_FILE from the Secret key api-keys): use secrets.apiKeys or existingSecretKeys [api-keys]" -}}
{{- end -}}
{{- if and (kindIs "map" $c.auth.jwt) (hasKey $c.auth.jwt "secret") -}}
{{- fail "config.auth.jwt.secret: never put a secret into the ConfigMap; use secrets.jwtSecret or existingSecret + existingSecretKeys [jwt-secret]" -}}
{{- end -}}
{{- end -}}
{{- if .Values.existingSecret -}}
{{- range $k, $v := pick .Values.secrets "apiKeys" "jwtSecret" "adminToken" "adminTokens" "redisPassword" -}}
{{- if $v -}}
{{- fail (printf "secrets.%s is set together with existingSecret %q: put the value into that Secret and list its key in existingSecretKeys" $k $.Values.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- else if .Values.existingSecretKeys -}}
{{- fail "existingSecretKeys needs existingSecret (the name of your Secret)" -}}
{{- end -}}
{{- include "tollgate.validateRedis" . -}}
{{- include "tollgate.validateCredentials" . -}}
{{- $fileVars := include "tollgate.secretEnvNames" . | fromJson -}}
{{- $keys := include "tollgate.secretKeys" . | fromJsonArray -}}
{{- if eq (include "tollgate.redisOwn" .) "true" -}}
{{- $keys = append $keys "redis-password" -}}
{{- end -}}
{{- range $e := .Values.extraEnv -}}
{{- range $k := $keys -}}
{{- $fileVar := get $fileVars $k -}}
{{- if or (eq (toString $e.name) $fileVar) (eq (toString $e.name) (trimSuffix "_FILE" $fileVar)) -}}
{{- fail (printf "extraEnv %s: the chart sets %s from the Secret key %s (tollgate refuses NAME together with NAME_FILE)" $e.name $fileVar $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $delay := include "tollgate.shutdownDelaySeconds" . | int -}}
{{- if lt $grace (add $delay 15) -}}
{{- fail (printf "terminationGracePeriodSeconds %d is too short: tollgate needs config.shutdown_delay (%ds) + 10 s drain + 5 s margin = %d" $grace $delay (add $delay 15)) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas is larger than autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}

{{/*
Shared state: the chart's own Redis, one you run (external), or none -- and
none only when a single replica runs or the SRE says they mean it.
*/}}
{{- define "tollgate.validateRedis" -}}
{{- $deploy := include "tollgate.redisDeploy" . -}}
{{- $r := (.Values.config | default dict).redis | default dict -}}
{{- $keys := include "tollgate.secretKeys" . | fromJsonArray -}}
{{- $urlEnv := false -}}
{{- range $e := .Values.extraEnv }}{{ if eq (toString $e.name) "REDIS_URL" }}{{ $urlEnv = true }}{{ end }}{{ end -}}
{{- if has $deploy (list "standalone" "cluster") -}}
{{- range $k := list "mode" "nodes" -}}
{{- if hasKey $r $k -}}
{{- fail (printf "config.redis.%s is set by the chart when redis.deploy is %s (it points tollgate at the Redis it deploys): remove it, or set redis.deploy: external to use a Redis of your own" $k $deploy) -}}
{{- end -}}
{{- end -}}
{{- if $urlEnv -}}
{{- fail (printf "extraEnv REDIS_URL together with redis.deploy: %s: tollgate would not use the chart's Redis; set redis.deploy: external to use your own" $deploy) -}}
{{- end -}}
{{- if has "redis-password" $keys -}}
{{- fail (printf "redis.deploy: %s generates the Redis password (Secret %s) and gives it to tollgate itself: remove secrets.redisPassword / redis-password from existingSecretKeys, or bring your own with redis.auth.existingSecret" $deploy (include "tollgate.redisSecretName" .)) -}}
{{- end -}}
{{- if and .Values.redis.auth.existingSecret (not .Values.redis.auth.existingSecretKey) -}}
{{- fail "redis.auth.existingSecret needs redis.auth.existingSecretKey (the key holding the password)" -}}
{{- end -}}
{{- if eq $deploy "cluster" -}}
{{- $n := int .Values.redis.cluster.nodes -}}
{{- if or (lt $n 6) (ne (mod $n 2) 0) -}}
{{- fail (printf "redis.cluster.nodes %d: a cluster with one replica per primary needs an even number >= 6 (3 primaries + 3 replicas)" $n) -}}
{{- end -}}
{{- end -}}
{{- else if eq $deploy "external" -}}
{{- if not (or $r.nodes $urlEnv) -}}
{{- fail "redis.deploy: external needs your Redis: config.redis.mode (standalone | cluster) and config.redis.nodes [host:port, ...], or REDIS_URL in extraEnv; the password goes into secrets.redisPassword or existingSecret + existingSecretKeys [redis-password]" -}}
{{- end -}}
{{- if and $r.nodes (not (has ($r.mode | default "none") (list "standalone" "cluster"))) -}}
{{- fail (printf "redis.deploy: external with config.redis.mode %v: set config.redis.mode to standalone or cluster" ($r.mode | default "none")) -}}
{{- end -}}
{{- else if eq $deploy "none" -}}
{{- if and (hasKey $r "mode") (ne (toString $r.mode) "none") -}}
{{- fail (printf "config.redis.mode %v with redis.deploy: none: set redis.deploy: external to use your own Redis (or standalone / cluster for the chart's)" $r.mode) -}}
{{- end -}}
{{- if $urlEnv -}}
{{- fail "extraEnv REDIS_URL with redis.deploy: none: set redis.deploy: external" -}}
{{- end -}}
{{- if and (eq (include "tollgate.multiReplica" .) "true") (not .Values.allowPerReplicaLimits) -}}
{{- fail (printf "redis.deploy: none with %s: without shared Redis every replica keeps its own buckets, lockouts and revocations, so clients get up to %d times their limits and a revoked token still works on the other replicas. Keep the chart's Redis (redis.deploy: standalone, the default), use redis.deploy: external, run replicaCount: 1 without autoscaling, or set allowPerReplicaLimits: true if you mean it" (ternary (printf "autoscaling up to %d replicas" (int .Values.autoscaling.maxReplicas)) (printf "replicaCount %d" (int .Values.replicaCount)) .Values.autoscaling.enabled) (include "tollgate.expectedReplicas" . | int)) -}}
{{- end -}}
{{- else -}}
{{- fail (printf "redis.deploy %q: expected standalone, cluster, external or none" $deploy) -}}
{{- end -}}
{{- end -}}

{{/*
A tollgate that must start: an existingSecret lists its keys, and some
credential source exists for the auth mode (tollgate exits 1 otherwise).
*/}}
{{- define "tollgate.validateCredentials" -}}
{{- $auth := (.Values.config | default dict).auth | default dict -}}
{{- $mode := $auth.mode | default "any" -}}
{{- $providers := (($auth.jwt | default dict).providers | default list) -}}
{{- $keys := include "tollgate.secretKeys" . | fromJsonArray -}}
{{- if .Values.existingSecret -}}
{{- if not $keys -}}
{{- fail (printf "existingSecret %q with no existingSecretKeys: list the keys that Secret holds (api-keys, jwt-secret, admin-token, admin-tokens, redis-password); nothing of it is mounted otherwise and tollgate has no credential to check" .Values.existingSecret) -}}
{{- end -}}
{{- $hasKeys := has "api-keys" $keys -}}
{{- $hasJwt := or (has "jwt-secret" $keys) $providers -}}
{{- if and (eq $mode "api_key") (not $hasKeys) -}}
{{- fail (printf "auth.mode api_key but existingSecretKeys %v has no api-keys: tollgate would not start" $keys) -}}
{{- else if and (eq $mode "jwt") (not $hasJwt) -}}
{{- fail (printf "auth.mode jwt but existingSecretKeys %v has no jwt-secret (and no auth.jwt.providers): tollgate would not start" $keys) -}}
{{- else if and (eq $mode "any") (not (or $hasKeys $hasJwt)) -}}
{{- fail (printf "auth.mode any but existingSecretKeys %v has neither api-keys nor jwt-secret (nor auth.jwt.providers): tollgate would not start" $keys) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Label matchers for this release's series in alerts. */}}
{{- define "tollgate.alertSelector" -}}
{{- default (printf "namespace=%q,job=%q" .Release.Namespace (include "tollgate.suffixed" (list . "admin"))) .Values.prometheusRule.selector -}}
{{- end -}}
