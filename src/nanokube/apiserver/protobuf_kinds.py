"""Protobuf messages of the kinds kubectl's other typed commands send (`kubectl create job|cronjob|role|
rolebinding|clusterrole|clusterrolebinding|poddisruptionbudget|priorityclass|quota|ingress|serviceaccount`,
`kubectl autoscale`), in protobuf.py's descriptor form. Field numbers are those of k8s.io/api's
generated.proto (v1.32); "int0" keeps an optional field that was set to 0, as Go's pointer does.
"""

from __future__ import annotations

from nanokube.apiserver.protobuf import LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE, Desc

SELECTOR_REQUIREMENT: Desc = {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "list:string")}
FULL_LABEL_SELECTOR: Desc = {**LABEL_SELECTOR, 2: ("matchExpressions", ("list:msg", SELECTOR_REQUIREMENT))}

JOB_SPEC: Desc = {
    1: ("parallelism", "int0"), 2: ("completions", "int0"), 3: ("activeDeadlineSeconds", "int0"),
    7: ("backoffLimit", "int0"), 12: ("backoffLimitPerIndex", "int0"), 13: ("maxFailedIndexes", "int0"),
    4: ("selector", ("msg", FULL_LABEL_SELECTOR)), 5: ("manualSelector", "bool0"), 6: ("template", ("msg", POD_TEMPLATE)),
    8: ("ttlSecondsAfterFinished", "int0"), 9: ("completionMode", "string"), 10: ("suspend", "bool0"),
    14: ("podReplacementPolicy", "string"), 15: ("managedBy", "string"),
}
JOB: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", JOB_SPEC))}
JOB_TEMPLATE: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", JOB_SPEC))}
CRON_JOB_SPEC: Desc = {
    1: ("schedule", "string"), 8: ("timeZone", "string"), 2: ("startingDeadlineSeconds", "int0"),
    3: ("concurrencyPolicy", "string"), 4: ("suspend", "bool0"), 5: ("jobTemplate", ("msg", JOB_TEMPLATE)),
    6: ("successfulJobsHistoryLimit", "int0"), 7: ("failedJobsHistoryLimit", "int0"),
}
CRON_JOB: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", CRON_JOB_SPEC))}

POLICY_RULE: Desc = {1: ("verbs", "list:string"), 2: ("apiGroups", "list:string"), 3: ("resources", "list:string"),
                     4: ("resourceNames", "list:string"), 5: ("nonResourceURLs", "list:string")}
ROLE: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("rules", ("list:msg", POLICY_RULE))}
CLUSTER_ROLE: Desc = {**ROLE, 3: ("aggregationRule", ("msg", {
    1: ("clusterRoleSelectors", ("list:msg", FULL_LABEL_SELECTOR))}))}
SUBJECT: Desc = {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"), 4: ("namespace", "string")}
ROLE_REF: Desc = {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}
ROLE_BINDING: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("subjects", ("list:msg", SUBJECT)),
                      3: ("roleRef", ("msg", ROLE_REF))}

PDB_SPEC: Desc = {1: ("minAvailable", "intstr"), 2: ("selector", ("msg", FULL_LABEL_SELECTOR)),
                  3: ("maxUnavailable", "intstr"), 4: ("unhealthyPodEvictionPolicy", "string")}
PDB: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", PDB_SPEC))}
PRIORITY_CLASS: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("value", "int0"), 3: ("globalDefault", "bool"),
                        4: ("description", "string"), 5: ("preemptionPolicy", "string")}

SCOPED_REQUIREMENT: Desc = {1: ("scopeName", "string"), 2: ("operator", "string"), 3: ("values", "list:string")}
QUOTA_SPEC: Desc = {1: ("hard", "map:quantity"), 2: ("scopes", "list:string"),
                    3: ("scopeSelector", ("msg", {1: ("matchExpressions", ("list:msg", SCOPED_REQUIREMENT))}))}
RESOURCE_QUOTA: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", QUOTA_SPEC))}
OBJECT_REFERENCE: Desc = {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                          4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"),
                          7: ("fieldPath", "string")}
SERVICE_ACCOUNT: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("secrets", ("list:msg", OBJECT_REFERENCE)),
                         3: ("imagePullSecrets", ("list:msg", {1: ("name", "string")})),
                         4: ("automountServiceAccountToken", "bool0")}

SERVICE_BACKEND: Desc = {1: ("name", "string"), 2: ("port", ("msg", {1: ("name", "string"), 2: ("number", "int")}))}
INGRESS_BACKEND: Desc = {4: ("service", ("msg", SERVICE_BACKEND)), 3: ("resource", ("msg", {
    1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}))}
HTTP_PATH: Desc = {1: ("path", "string"), 3: ("pathType", "string"), 2: ("backend", ("msg", INGRESS_BACKEND))}
INGRESS_RULE: Desc = {1: ("host", "string"),  # IngressRuleValue is inlined in JSON: its http sits on the rule
                      2: ("ingressRuleValue", ("inline", {1: ("http", ("msg", {1: ("paths", ("list:msg", HTTP_PATH))}))}))}
INGRESS_SPEC: Desc = {4: ("ingressClassName", "string"), 1: ("defaultBackend", ("msg", INGRESS_BACKEND)),
                      2: ("tls", ("list:msg", {1: ("hosts", "list:string"), 2: ("secretName", "string")})),
                      3: ("rules", ("list:msg", INGRESS_RULE))}
INGRESS: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", INGRESS_SPEC))}

HPA_V1_SPEC: Desc = {1: ("scaleTargetRef", ("msg", {1: ("kind", "string"), 2: ("name", "string"),
                                                     3: ("apiVersion", "string")})),
                     2: ("minReplicas", "int0"), 3: ("maxReplicas", "int0"), 4: ("targetCPUUtilizationPercentage", "int0")}
HPA_V1: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", HPA_V1_SPEC))}

KINDS: dict[str, Desc] = {
    "Job": JOB, "CronJob": CRON_JOB, "Role": ROLE, "ClusterRole": CLUSTER_ROLE, "RoleBinding": ROLE_BINDING,
    "ClusterRoleBinding": ROLE_BINDING, "PodDisruptionBudget": PDB, "PriorityClass": PRIORITY_CLASS,
    "ResourceQuota": RESOURCE_QUOTA, "ServiceAccount": SERVICE_ACCOUNT, "Ingress": INGRESS,
    "HorizontalPodAutoscaler": HPA_V1,
}
