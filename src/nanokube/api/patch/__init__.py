"""Patches as the API server applies them: JSON merge patch, JSON patch, strategic merge patch, server-side apply.

Semantics and error texts follow what kube-apiserver v1.32 runs: gopkg.in/evanphx/json-patch.v4 for JSON and
merge patches, k8s.io/apimachinery/pkg/util/strategicpatch (StrategicMergeMapPatch) for strategic merge,
driven by the x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key of the shipped schemas.
Server-side apply here is a subset of structured-merge-diff: see `server_side_apply`.

One module per algorithm (json_merge, json_patch, strategic_merge, server_side_apply); the patch content types
are declared here, once, and importing them does not load the algorithms.

All functions take and return plain JSON values and never modify their inputs.
"""

from __future__ import annotations

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
CONTENT_TYPES = (APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
MAX_JSON_PATCH_OPERATIONS = 10000
