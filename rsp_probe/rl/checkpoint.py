"""Checkpoints inside the staged run: the policy's weights, Adam's state and the training log
so far, written to a hidden folder and renamed into place, so a kill at any instant leaves
either the previous checkpoint or the new one whole. No pickle: tensors go to safetensors,
the rest to JSON. Every draw of the training derives from (seed, step), so weights, optimiser
state and step are all a resumed run needs to continue exactly as an uninterrupted one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

CHECKPOINTS_DIR = "checkpoints"
EVALS_DIR = "evals"
WEIGHTS_FILE = "model.safetensors"
OPTIMISER_FILE = "optimiser.safetensors"
STATE_FILE = "state.json"
_NAME = re.compile(r"step-(\d{6})")


def checkpoint_dir(staging: Path, step: int) -> Path:
    return Path(staging) / CHECKPOINTS_DIR / f"step-{step:06d}"


def save_checkpoint(staging: Path, step: int, model, optimiser, log: list[dict]) -> Path:
    """Write checkpoint `step`, then drop the older ones (their evaluations stay in evals/)."""
    final = checkpoint_dir(staging, step)
    temporary = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_model(model, str(temporary / WEIGHTS_FILE))
    save_file(_optimiser_tensors(optimiser), str(temporary / OPTIMISER_FILE))
    (temporary / STATE_FILE).write_text(json.dumps({"step": step, "log": log},
                                                   allow_nan=False) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    for older in _steps(staging):
        if older < step:
            shutil.rmtree(checkpoint_dir(staging, older))
    return final


def latest_checkpoint(staging: Path) -> int | None:
    steps = _steps(staging)
    return max(steps) if steps else None


def load_checkpoint(staging: Path, step: int, model, optimiser) -> list[dict]:
    """Restore weights and optimiser state in place; returns the training log so far."""
    folder = checkpoint_dir(staging, step)
    load_model(model, str(folder / WEIGHTS_FILE))
    _load_optimiser(optimiser, load_file(str(folder / OPTIMISER_FILE)))
    return json.loads((folder / STATE_FILE).read_text())["log"]


def _steps(staging: Path) -> list[int]:
    folder = Path(staging) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]


def _optimiser_tensors(optimiser) -> dict[str, torch.Tensor]:
    tensors = {}
    for index, state in optimiser.state_dict()["state"].items():
        for name, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
    return tensors


def _load_optimiser(optimiser, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    current = optimiser.state_dict()
    optimiser.load_state_dict({"state": state, "param_groups": current["param_groups"]})
