"""How kubectl turns a Table into text: upper-cased headers, Go text/tabwriter columns.

kubectl's tabwriter: minwidth 6, padding 3, pad with spaces, left aligned; every cell but the last of a
line is tab-terminated, so the last column is never padded. Priority > 0 columns appear only with -o wide.
"""

from __future__ import annotations

from typing import Any

MIN_WIDTH = 6
PADDING = 3


def cell_text(cell: Any) -> str:
    if isinstance(cell, bool):
        return "true" if cell else "false"
    text = str(cell)
    if "\n" in text:  # kubectl cuts a cell at its first newline
        text = text.split("\n", 1)[0] + "..."
    return text


def tabwrite(lines: list[list[str]]) -> str:
    columns = max(len(line) for line in lines)
    widths = []
    for col in range(columns - 1):
        cells = [line[col] for line in lines if col < len(line) - 1]
        widths.append(max([MIN_WIDTH] + [len(c) + PADDING for c in cells]))
    out = []
    for line in lines:
        padded = [c.ljust(widths[i]) for i, c in enumerate(line[:-1])]
        out.append("".join(padded) + line[-1])
    return "\n".join(out) + "\n"


def render(table: dict, wide: bool = False) -> str:
    keep = [i for i, c in enumerate(table["columnDefinitions"]) if wide or c["priority"] == 0]
    header = [table["columnDefinitions"][i]["name"].upper() for i in keep]
    rows = [[cell_text(row["cells"][i]) for i in keep] for row in table["rows"]]
    return tabwrite([header, *rows])
