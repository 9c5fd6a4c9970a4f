"""resource.Quantity canonical strings, as capacities appear in PV and PVC tables."""

from __future__ import annotations

import pytest

from nanokube.apiserver.printing import canonical_quantity


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("10Gi", "10Gi"),
        ("500Mi", "500Mi"),
        ("1Ki", "1Ki"),
        ("0.5Ki", "512"),  # binary below 1024 prints as decimal
        ("0.1Gi", "107374182400m"),  # not a whole number of bytes: decimal, no rounding
        ("1000M", "1G"),
        ("1500M", "1500M"),
        ("5G", "5G"),
        ("1000", "1k"),
        ("2048", "2048"),
        ("512", "512"),
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("100m", "100m"),
        ("1e3", "1e3"),
        ("12e6", "12e6"),
        ("0", "0"),
        ("0Gi", "0"),
        (1073741824, "1073741824"),
        ("-1Gi", "-1Gi"),
        ("not-a-quantity", "not-a-quantity"),
    ],
)
def test_canonical_quantity(given: object, want: str) -> None:
    assert canonical_quantity(given) == want
