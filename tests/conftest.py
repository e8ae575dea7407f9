"""Self-test wiring: make the repository root importable (sevkit/, fixtures/, benchmarks/)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest_plugins = ["pytester"]
