"""The fixed-seed commands behind tests/data/golden (shared by the test and the regenerator)."""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
COMMON = ["--n-prompts", "2", "--samples", "2", "--max-new-tokens", "12", "--quiet"]
GOLDEN_COMMANDS = {
    "entropy": ["entropy", "--rsp-tokens", "0,4", *COMMON],
    "attention": ["attention", "--rsp-tokens", "4", *COMMON],
    "influence": ["influence", "--rsp-tokens", "4", *COMMON],
}
KEPT_FILES = ("trajectories.jsonl", "steps.parquet", "rsp.safetensors", "config.json")
