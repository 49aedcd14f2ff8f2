"""Where the Ansible tools are and the environment they run in (collection path, PATH)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible"
TOOLS = REPO / ".venv-ansible" / "bin"


def tool_env(tmp: Path) -> dict[str, str]:
    """ansible finds the collection through a collections path laid out for it, and the
    controller's `speaker` (the checks, router-config) on PATH."""
    root = tmp / "collections" / "ansible_collections" / "edgespeaker"
    root.mkdir(parents=True, exist_ok=True)
    link = root / "appliance"
    if not link.exists():
        link.symlink_to(COLLECTION)
    speaker_bin = Path(sys.executable).parent
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp / "collections"),
            "PATH": f"{TOOLS}:{speaker_bin}:{os.environ['PATH']}",
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOME": str(tmp / "ansible-home")}
