"""docs/cli.md stays what the parser says (regenerate: python -m nanokube.cli.docs > docs/cli.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanokube.cli.docs import cli_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_cli_md_is_generated_from_the_parser():
    assert (DOCS / "cli.md").read_text() == cli_reference(), \
        "docs/cli.md is stale: python -m nanokube.cli.docs > docs/cli.md"


@pytest.mark.parametrize("command", ["server", "explain"])
def test_every_flag_of_the_real_help_is_documented(command):
    help_text = subprocess.run([sys.executable, "-m", "nanokube", command, "--help"], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text)) - {"--help"}
    section = (DOCS / "cli.md").read_text().split(f"## `nanokube {command}`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(--[a-z][a-z-]+)`", section))
    assert flags and flags == documented
