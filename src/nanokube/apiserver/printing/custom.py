"""Tables of custom resources: Name, then the CRD version's additionalPrinterColumns (or Age when it has none),
each cell found with its JSONPath (apiextensions-apiserver pkg/registry/customresource/tableconvertor).

JSONPath subset: `.a.b`, `['a.b']`, `[n]`, `[*]` and `[?(@.key=="value")]`, which is what CRDs use.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from nanokube.apiserver.printing.base import Cell, Column, Obj, Printer, doc, name_column, name_of
from nanokube.apiserver.printing.duration import parse_timestamp, since

_TOKEN = re.compile(r"""\.([^.\[\]]+)|\[(\d+|\*)\]|\['([^']*)'\]|\[\?\(@\.([\w.-]+)\s*==\s*["']([^"']*)["']\)\]""")


def _steps(path: str) -> list[tuple[str, Any]] | None:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    pos, out = 0, []
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        field, index, quoted, fkey, fvalue = m.groups()
        if field is not None or quoted is not None:
            out.append(("field", field if field is not None else quoted))
        elif index is not None:
            out.append(("all", None) if index == "*" else ("index", int(index)))
        else:
            out.append(("filter", (fkey, fvalue)))
        pos = m.end()
    return out


def find(obj: Any, path: str) -> list[Any]:
    steps = _steps(path)
    if steps is None:
        return []
    current = [obj]
    for kind, arg in steps:
        nxt: list[Any] = []
        for value in current:
            if kind == "field" and isinstance(value, dict) and arg in value:
                nxt.append(value[arg])
            elif kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value):
                nxt.append(value[arg])
            elif kind == "all":
                nxt.extend(value if isinstance(value, list) else value.values() if isinstance(value, dict) else [])
            elif kind == "filter" and isinstance(value, list):
                key, wanted = arg
                for item in value:
                    got = find(item, "." + key)
                    if got and str(got[0]) == wanted:
                        nxt.append(item)
        current = nxt
    return current


def go_print(value: Any) -> str:
    """fmt.Fprint of a JSON value, as JSONPath's text output prints it (maps as map[k:v], lists as [a b])."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _cell(column_type: str, value: Any, now: datetime) -> Cell | None:
    if column_type == "string":
        return go_print(value)
    if column_type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if column_type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":  # cellForJSONValue: an RFC 3339 time becomes its age
        if isinstance(value, str):
            return since(value, now) if parse_timestamp(value) else value
        return None
    return None


def printer_for_columns(columns: list[Obj]) -> Printer:
    """The Table printer of one CRD version."""
    if not columns:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                    "description": doc("ObjectMeta.creationTimestamp")}]
    defs = (name_column(), *(Column(str(c.get("name") or ""), str(c.get("type") or "string"),
                                    str(c.get("description") or ""), int(c.get("priority") or 0),
                                    str(c.get("format") or "")) for c in columns))
    specs = [(str(c.get("jsonPath") or ""), str(c.get("type") or "string")) for c in columns]

    def row(obj: Obj, now: datetime) -> list[Cell]:
        cells: list[Any] = [name_of(obj)]
        for path, column_type in specs:
            found = find(obj, path)
            cells.append(_cell(column_type, found[0], now) if found else None)
        return cells

    return Printer(defs, row)
