"""gcpause, in a child interpreter (it changes the garbage collector of the whole process)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from nanokube.aio import gcpause
gcpause.install(rescan_after=3600)
keep = [{"i": [i]} for i in range(10000)]  # containers of containers: tracked by the gc
gc.collect()
frozen = gc.get_freeze_count()
assert frozen >= 10000, frozen
gc.collect(1)
assert gc.get_freeze_count() == frozen  # only full collections freeze
gcpause.install(rescan_after=0)  # a second install is a no-op
gc.collect()
assert gc.get_freeze_count() >= frozen
print("ok")
"""

RESCAN = """
import gc
from nanokube.aio import gcpause
gcpause.install(rescan_after=0)
gc.freeze()
assert gc.get_freeze_count() > 0
gc.collect()
assert gc.get_freeze_count() == 0  # rescan due: everything goes back to be walked once
print("ok")
"""


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def test_full_collections_freeze_their_survivors():
    assert run(CHILD) == "ok"


def test_rescan_unfreezes():
    assert run(RESCAN) == "ok"
