"""The options of `rsp-probe tune-prompt` (no torch: `--help` reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.config import PLACEMENTS, _opt

INITS = ("rsp", "tokens")


@dataclass(frozen=True)
class TuneOptions:
    out: str = _opt("soft_prompt.safetensors", "file to write (the card goes beside it, .json)")
    rsp_tokens: int = _opt(16, "k, the number of trainable vectors (as --rsp-tokens of the "
                           "experiments)", renamed_from=("k",))
    placement: str = _opt("suffix", "where they sit, as for an RSP", choices=PLACEMENTS)
    init: str = _opt("rsp", "rsp: an RSP draw; tokens: random real token embeddings",
                     choices=INITS)
    steps: int = _opt(150, "optimiser steps")
    batch_size: int = _opt(16, "training examples per step")
    lr: float = _opt(0.1, "Adam step size, in units of the embedding table's fitted sigma")
    n_train: int = _opt(2000, "training problems (the built-in task's train split, or the "
                        "first problems of --dataset)")
    n_validation: int = _opt(32, "validation problems (the validation split, or the last "
                             "problems of --dataset), decoded greedily for the card")
    max_new_tokens: int = _opt(96, "tokens generated per validation problem")
    dataset: str | None = _opt(None, "local JSONL/Parquet file of problems with answers")
    question_field: str | None = _opt(None, "dataset field holding the question")
    answer_field: str | None = _opt(None, "dataset field holding the reference answer")
    chat_template: str = _opt("auto", "wrap prompts in the tokenizer's chat template",
                              choices=("auto", "on", "off"))
    seed: int = _opt(0, "seed of the initial draw and of the batches")
    log_every: int = _opt(25, "steps between loss lines on stderr")
    quiet: bool = _opt(False, "no progress bar or loss lines")
    overwrite: bool = _opt(False, "replace the file at --out")
