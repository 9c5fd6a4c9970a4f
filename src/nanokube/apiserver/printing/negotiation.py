"""Does this Accept header ask for a Table, and in which meta.k8s.io version?

kubectl sends `application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,
application/json`: the first entry the server can serve wins, in the order given.
"""

from __future__ import annotations

_JSON_TYPES = ("application/json", "application/*", "*/*")
_TABLE_VERSIONS = {"v1": "meta.k8s.io/v1", "v1beta1": "meta.k8s.io/v1beta1"}


def _parse(entry: str) -> tuple[str, dict[str, str]]:
    media, *params = (part.strip() for part in entry.split(";"))
    options = {}
    for param in params:
        key, _, value = param.partition("=")
        options[key.strip().lower()] = value.strip().strip('"')
    return media.lower(), options


def table_api_version(accept: str | None) -> str | None:
    """"meta.k8s.io/v1" or "meta.k8s.io/v1beta1" when the preferred servable entry is a JSON Table, else None.

    Entries this server cannot produce (protobuf, other `as=` targets, Table versions other than v1 and
    v1beta1, q=0) are skipped; a plain JSON entry first, or nothing servable at all, means the ordinary object.
    """
    for entry in (accept or "").split(","):
        if not entry.strip():
            continue
        media, options = _parse(entry)
        if media not in _JSON_TYPES or options.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        target = options.get("as")
        if target is None:
            return None
        if target == "Table" and options.get("g") == "meta.k8s.io" and options.get("v") in _TABLE_VERSIONS:
            return _TABLE_VERSIONS[options["v"]]
    return None
