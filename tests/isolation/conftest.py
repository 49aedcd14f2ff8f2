"""Lab tests of timing isolation and hostile input share the L2 lab kit (tests/l2/l2lab.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "l2"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
