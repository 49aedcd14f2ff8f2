"""The migration lab test reuses the L2 lab kit (tests/l2/l2lab.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "l2"))
