"""Shared test setup: the lab and VM tiers need root and Linux namespaces."""

from __future__ import annotations

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab and VM tests need root; say so instead of failing obscurely."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "lab" in item.keywords or "vm" in item.keywords:
            item.add_marker(skip)
