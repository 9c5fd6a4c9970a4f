"""resourceVersion, resourceVersionMatch and limit on lists and watches, as kube-apiserver reads them.

- a resourceVersion is an unsigned integer (a negative or non-numeric one is a 400, not a 410);
- `resourceVersionMatch=Exact` lists the snapshot at that revision (410 Expired once compacted);
  `NotOlderThan` (and a bare resourceVersion) lists now, once the store has reached that revision;
- a revision the store has not reached yet is waited for (the watch cache's 3 s), then answered
  "Too large resource version" (504 Timeout with a ResourceVersionTooLarge cause, retry after 1 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from nanokube.api import errors


class HasRevision(Protocol):
    """The store, or the registry in front of it."""

    @property
    def current_revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

FRESHNESS_WAIT = 3.0  # the cacher's blockTimeout
_POLL = 0.02
EXACT, NOT_OLDER_THAN = "Exact", "NotOlderThan"


def parse_revision(value: str) -> int:
    """The revision a resourceVersion names (0 for "" and "0"); 400 for anything but an unsigned integer."""
    if value in ("", "0"):
        return 0
    if not value.isascii() or not value.isdigit():
        raise errors.bad_request(f'resourceVersion: Invalid value: "{value}": strconv.ParseUint: parsing '
                                 f'{errors.go_quote(value)}: invalid syntax')
    return int(value)


def parse_limit(value: str | None) -> int:
    if not value:
        return 0
    try:
        limit = int(value)
        if limit >= 1 << 63:
            raise ValueError(value)
    except ValueError as exc:
        raise errors.bad_request(f'limit: Invalid value: "{value}": must be an integer') from exc
    if limit < 0:
        raise errors.bad_request(f"limit: Invalid value: {limit}: must be greater than or equal to 0")
    return limit


def check_list_options(rv: str, match: str, continue_token: str | None) -> None:
    """ValidateListOptions' rules on resourceVersionMatch (422 Invalid ListOptions)."""
    if not match:
        return
    problems: list[errors.FieldError] = []
    if not rv:
        problems.append(errors.forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden unless resourceVersion is provided"))
    if continue_token:
        problems.append(errors.forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden when continue is provided"))
    if match not in (EXACT, NOT_OLDER_THAN):
        problems.append(errors.not_supported("resourceVersionMatch", match, [EXACT, NOT_OLDER_THAN, ""]))
    if match == EXACT and rv == "0":
        problems.append(errors.forbidden("resourceVersionMatch",
                                         'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if problems:
        raise errors.invalid_object("meta.k8s.io", "ListOptions", "", problems)


def too_large(requested: int, current: int) -> errors.ApiError:
    return errors.ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                           {"causes": [{"reason": "ResourceVersionTooLarge",
                                        "message": "Too large resource version"}],
                            "retryAfterSeconds": 1})


async def wait_for_revision(store: HasRevision, revision: int, timeout: float = FRESHNESS_WAIT) -> bool:
    """Whether the store (or the registry in front of it) reaches `revision` within timeout."""
    deadline = time.monotonic() + timeout
    while store.current_revision < revision:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


def expired_list() -> errors.ApiError:
    return errors.gone("The resourceVersion for the provided list is too old.")


async def list_revision(store: HasRevision, rv: str, match: str, *, limit: int, continue_token: str | None) -> int:
    """The revision to list at (0 = now) for the request's resourceVersion and resourceVersionMatch."""
    check_list_options(rv, match, continue_token)
    revision = parse_revision(rv)
    if revision == 0 or continue_token:
        return 0
    if revision > store.current_revision and not await wait_for_revision(store, revision):
        raise too_large(revision, store.current_revision)
    # A bare resourceVersion with a limit is an exact read (the legacy paging contract).
    if match == EXACT or (not match and limit):
        if revision < store.compact_revision:
            raise expired_list()
        return revision
    return 0
