"""etcd tests need Debian's etcd-server and etcd-client (scripts/install)."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "l2"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bgp"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        skip = pytest.mark.skip(reason="etcd/etcdctl not installed (scripts/install)")
        for item in items:
            item.add_marker(skip)
