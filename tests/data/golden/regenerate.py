"""Rewrite tests/data/golden from the current code (see README.md here for when)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from golden_runs import GOLDEN_COMMANDS, GOLDEN_DIR, KEPT_FILES  # noqa: E402

from rsp_probe.cli import main  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in GOLDEN_COMMANDS.items():
            out = Path(tmp) / name
            # the bridge writes them (eager attention); test_golden allows any CPU its rounding
            assert main([*argv, "--backend", "transformer-lens", "--out", str(out)]) == 0
            (GOLDEN_DIR / name).mkdir(parents=True, exist_ok=True)
            for file in KEPT_FILES:
                shutil.copy(out / file, GOLDEN_DIR / name / file)
