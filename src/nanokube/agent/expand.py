"""Kubernetes' $(VAR) expansion for env values, command and args.

Same rules as kubelet: ``$$`` is an escaped ``$``, ``$(NAME)`` is replaced when NAME is known and left as
written when it is not, an unterminated ``$(`` and a ``$`` before any other character stay literal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Lookup = Callable[[str], str | None]


def lookup_in(*maps: Mapping[str, str]) -> Lookup:
    def find(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None
    return find


def expand(text: str, lookup: Lookup) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            value = lookup(name)
            out.append(f"$({name})" if value is None else value)
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)
