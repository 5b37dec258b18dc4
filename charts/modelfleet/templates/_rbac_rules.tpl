{{/*
The operator's RBAC rules: exactly the (verb, resource) pairs it calls, no wildcard.
tests/chart/test_rbac_least_privilege.py records every request the operator (its own client and
kopf) makes on kubesim and fails when these rules grant more or less than that.
Argument: a dict with "peering" (kopfpeerings or clusterkopfpeerings, or "" without peering).
*/}}
{{- define "modelfleet.operatorRules" -}}
# Watch fleets (kopf's list + watch; the operator never reads one by name).
- apiGroups: ["modelfleet.dev"]
  resources: ["modeldeployments"]
  verbs: ["list", "watch"]
# Write the fleet's health back.
- apiGroups: ["modelfleet.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# One pod per well: create, re-annotate for in-place swaps, delete for recreation.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "list", "patch", "watch"]
# The bundle-current readiness gate condition.
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# Through the apiserver's pod proxy: read which bundle a new well's runtime serves (GET), and
# nudge a runtime to load its bundle after an in-place swap (POST).
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get", "create"]
# The headless Service that gives every well a DNS name.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "get"]
# Revision history for rollback (revisionHistoryLimit).
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["create", "delete", "get", "list"]
# Well inventories (spec.wellsFrom, spec.model.digestsFrom): the namespace's ConfigMaps are
# watched, and one a fleet newly names is read once. Never written.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Fleet-level Events (roll-out started, rolled back...).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- with .peering }}
# kopf peering: the replicas' keep-alives, to elect one active operator.
- apiGroups: ["kopf.dev"]
  resources: [{{ . | quote }}]
  verbs: ["list", "patch", "watch"]
{{- end }}
{{- end -}}

{{/* kopf's cluster-wide observation: new namespaces (namespaced mode only) and CRD changes. */}}
{{- define "modelfleet.scanningRules" -}}
{{- if not .allNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}
