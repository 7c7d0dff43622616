"""Seal runs written before DONE was a manifest (their DONE is a bare timestamp): check that
every file parses, then write the manifest DONE of today's format over the timestamp.

    python -m rsp_probe.runio.seal RUN [RUN ...]

This is the one migration path for such runs (the committed tests/data/runs were sealed with
it); readers refuse a timestamp DONE as damaged, since it cannot tell a complete run from a
truncated one. A run whose DONE is already a valid manifest is left as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rsp_probe.errors import UsageError
from rsp_probe.runio.integrity import DONE_FILE, DamagedRunError, parse_manifest, write_manifest


def _is_legacy_done(text: bytes) -> bool:
    """A timestamp such as 2026-11-29T04:18:04+0000, as the first versions wrote."""
    import re

    return re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}\s*", text) is not None


def seal(folder: Path) -> bool:
    """Seal one legacy run; False when it already has a valid manifest."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    data = (folder / DONE_FILE).read_bytes()
    try:
        parse_manifest(data, folder)
        return False
    except DamagedRunError:
        if not _is_legacy_done(data):
            raise
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    version = config.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or "command" not in config:
        raise DamagedRunError(f"{folder}: config.json is not an rsp-probe run config")
    json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    with open(folder / "trajectories.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not isinstance(json.loads(line), dict):
                raise DamagedRunError(f"{folder}: trajectories.jsonl line {number} is damaged")
    for table in sorted(folder.glob("*.parquet")):
        pq.read_table(table)
    write_manifest(folder, version)
    return True


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m rsp_probe.runio.seal RUN [RUN ...]", file=sys.stderr)
        return 2
    try:
        for path in argv:
            print(f"{path}: {'sealed' if seal(Path(path)) else 'already a manifest'}")
    except (UsageError, OSError, ValueError) as err:
        print(f"rsp-probe: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
