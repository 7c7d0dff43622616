"""A trained soft prompt on disk: `NAME.safetensors` holds one float32 tensor `prompt`
[k, d_model] and the card (JSON) in its metadata; `NAME.json` beside it is the same card for
people. The card is checked before any model is loaded (`check_soft_prompt`): the width, the
model it was trained for (weights hash), its placement and its k must match the run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from rsp_probe.errors import UsageError

TENSOR = "prompt"
CARD_KEY = "card"
# `--soft-prompt default`: the prompt committed for the embedded default model (k = 16,
# suffix), trained by the command in default/README.md
DEFAULT_NAME = "default"
DEFAULT_FILE = Path(__file__).parent / "default" / "k16-suffix.safetensors"


def resolve(path: str | Path) -> Path:
    return DEFAULT_FILE if str(path) == DEFAULT_NAME else Path(path)


def card_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save_soft_prompt(path: Path, vectors, card: dict) -> dict:
    """Write the vectors [k, d] (float32) and the card (k and d_model added); returns the
    card as written."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = vectors.detach().to("cpu").float().contiguous()
    card = {**card, "k": int(tensor.shape[0]), "d_model": int(tensor.shape[1])}
    save_file({TENSOR: tensor}, str(path), metadata={CARD_KEY: json.dumps(card)})
    card_path(path).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def read_card(path: str | Path) -> dict:
    """The card from the safetensors header, without torch; one line when unreadable."""
    path = resolve(path)
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
            card = json.loads(header["__metadata__"][CARD_KEY])
            shape, dtype = header[TENSOR]["shape"], header[TENSOR]["dtype"]
            start, stop = header[TENSOR]["data_offsets"]
            if not isinstance(card, dict) or dtype != "F32":
                raise ValueError("not a card, or not float32")
            handle.seek(8 + size + start)
            data = handle.read(stop - start)
    except FileNotFoundError:
        raise UsageError(f"--soft-prompt {path}: no such file") from None
    except (OSError, struct.error, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--soft-prompt {path}: not a soft prompt written by "
                         "`rsp-probe tune-prompt` (a safetensors file with a card)") from None
    _check_values(path, data, stop - start)
    if [card.get("k"), card.get("d_model")] != shape:
        raise UsageError(f"--soft-prompt {path}: its card says k={card.get('k')}, d_model="
                         f"{card.get('d_model')} but the tensor is {shape}")
    return card


def _check_values(path: Path, data: bytes, expected: int) -> None:
    """The whole tensor is there (a file cut short is refused here, before the model loads)
    and finite (NaN vectors would only give NaN logits mid-run)."""
    import numpy as np

    if len(data) != expected:
        raise UsageError(f"--soft-prompt {path}: truncated ({len(data)} of {expected} bytes "
                         "of vectors)")
    if not np.isfinite(np.frombuffer(data, dtype="<f4")).all():
        raise UsageError(f"--soft-prompt {path}: its vectors hold NaN or infinite values")


def load_soft_prompt(path: str | Path):
    """(vectors [k, d] float32 on the CPU, card)."""
    from safetensors.torch import load_file

    card = read_card(path)
    return load_file(str(resolve(path)))[TENSOR], card


def model_identity(name: str, sha256: str | None, revision: str | None) -> dict:
    return {"model_name": name, "model_sha256": sha256, "model_revision": revision}


def check_soft_prompt(path: str, d_model: int, identity: dict, placement: str,
                      ks: tuple[int, ...]) -> dict:
    """Refuse, in one line, a prompt of another width, for another model, trained at another
    placement, or of another k than the run's nonzero --rsp-tokens."""
    card = read_card(path)
    if d_model is not None and card["d_model"] != d_model:
        raise UsageError(f"--soft-prompt {path}: width {card['d_model']} does not match the "
                         f"model's d_model {d_model}")
    if not _same_model(card, identity):
        raise UsageError(f"--soft-prompt {path}: trained for another model ({_label(card)}), "
                         f"not {_label(identity)}")
    if card.get("placement") != placement:
        raise UsageError(f"--soft-prompt {path}: trained at placement {card.get('placement')}"
                         f", the run uses --placement {placement}")
    wrong = [k for k in ks if k not in (0, card["k"])]
    if wrong:
        raise UsageError(f"--soft-prompt {path} has k={card['k']} vectors; --rsp-tokens "
                         f"{','.join(map(str, ks))} asks for {wrong[0]}")
    return card


def _same_model(card: dict, identity: dict) -> bool:
    """The weights hash decides when both sides have one (models over the hashing limit
    have none); else the name and Hub revision."""
    if card.get("model_sha256") and identity.get("model_sha256"):
        return card["model_sha256"] == identity["model_sha256"]
    return (card.get("model_name"), card.get("model_revision")) == (
        identity.get("model_name"), identity.get("model_revision"))


def _label(identity: dict) -> str:
    sha = identity.get("model_sha256")
    return f"sha256 {sha[:12]}" if sha else f"{identity.get('model_name')}@" \
                                              f"{identity.get('model_revision')}"
