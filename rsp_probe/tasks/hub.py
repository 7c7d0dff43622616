"""Benchmarks by Hub id, read from the local Hugging Face cache through `datasets`, offline.

    --dataset HuggingFaceH4/MATH-500 --split test

A dataset downloaded with `hf download ID --repo-type dataset` sits in the hub cache as a
snapshot folder; one loaded once with `datasets.load_dataset` sits in the datasets cache.
Both are read here without the network. Presets map a benchmark's fields and read its
reference answer: the `####` tail of GSM8K (rsp_probe.tasks.datasets), the last \\boxed{} of
a MATH solution. Minerva Math and College Math are read as the local files Qwen2.5-Math's
evaluation ships (`data/minerva_math/test.jsonl`, `data/college_math/test.jsonl`): a file
in a folder named like a FILE_PRESETS key gets that preset, with the reference that
evaluation's parser reads (`parse_ground_truth` in its evaluation/parser.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rsp_probe.errors import UsageError
from rsp_probe.tasks.answers import extract_boxed
from rsp_probe.tasks.problem import Problem


@dataclass(frozen=True)
class Preset:
    question: str
    answer: str
    data_dir: str | None = None  # the config's folder inside the snapshot
    boxed_answer: bool = False  # the reference is the last \boxed{} of the answer field
    strip_dollars: bool = False  # the reference is the answer field without its $ signs


BOXED = ":boxed"  # --answer-field solution:boxed reads the last \boxed{} of the field
PRESETS = {  # fields as published on the Hub
    "HuggingFaceH4/MATH-500": Preset("problem", "answer"),
    "openai/gsm8k": Preset("question", "answer", data_dir="main"),
    "HuggingFaceH4/aime_2024": Preset("problem", "answer"),
    "EleutherAI/hendrycks_math": Preset("problem", "solution", boxed_answer=True),
}
FILE_PRESETS = {  # a local file's folder name -> its preset (Qwen2.5-Math's evaluation data)
    "minerva_math": Preset("problem", "solution", boxed_answer=True),
    "college_math": Preset("question", "answer", strip_dollars=True),  # "answer": "$-2$"
}


def load_dataset_problems(dataset: str, split: str, limit: int | None,
                          question_field: str | None = None, answer_field: str | None = None
                          ) -> list[Problem]:
    """--dataset: a local .jsonl/.parquet file or a cached Hub id. An answer field written
    FIELD:boxed (e.g. solution:boxed, for MATH-style files such as Minerva Math's) keeps
    the field as the solution and its last \boxed{} as the reference answer."""
    from rsp_probe.tasks.datasets import load_dataset_file

    boxed = answer_field is not None and answer_field.endswith(BOXED)
    field = answer_field.removesuffix(BOXED) if boxed else answer_field
    if looks_like_hub_id(dataset):
        problems = load_hub_dataset(dataset, split, limit, question_field, field)
    else:
        preset = FILE_PRESETS.get(Path(dataset).parent.name)
        problems = load_dataset_file(
            dataset, question_field=question_field or (preset.question if preset else None),
            answer_field=field or (preset.answer if preset else None), limit=limit)
        if preset is not None and field is None:
            problems = _preset_references(problems, preset, dataset)
    return [_boxed_reference(p, dataset) for p in problems] if boxed else problems


def looks_like_hub_id(spec: str) -> bool:
    """org/name that is not a local path: no file suffix, no leading ./ or /, one slash."""
    return (spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
            and not Path(spec).exists() and Path(spec).suffix == "")


def load_hub_dataset(name: str, split: str, limit: int | None = None,
                     question_field: str | None = None, answer_field: str | None = None
                     ) -> list[Problem]:
    """Problems of a cached Hub dataset; one UsageError line when it is not cached."""
    from rsp_probe.tasks.datasets import load_cached_hf_dataset

    preset = PRESETS.get(name)
    own_reference = preset is not None and answer_field is None
    question_field = question_field or (preset.question if preset else None)
    answer_field = answer_field or (preset.answer if preset else None)
    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        problems = _load_snapshot(name, snapshot, preset, split, limit, question_field,
                                  answer_field)
    else:
        try:
            problems = load_cached_hf_dataset(name, split, question_field=question_field,
                                              answer_field=answer_field, limit=limit)
        except UsageError as err:
            if "not in the local" not in str(err):
                raise
            raise UsageError(f"dataset {name!r} is not in the local Hugging Face cache; "
                             f"download it first: `hf download {name} --repo-type dataset`"
                             ) from None
    return _preset_references(problems, preset, name) if own_reference else problems


def _preset_references(problems: list[Problem], preset: Preset, name: str) -> list[Problem]:
    """The reference answer as the preset reads it from its answer field."""
    if preset.boxed_answer:
        return [_boxed_reference(p, name) for p in problems]
    if preset.strip_dollars:
        return [replace(p, answer=p.answer.replace("$", "").strip()) for p in problems]
    return problems


def _hub_snapshot(name: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def _load_snapshot(name, snapshot, preset, split, limit, question_field, answer_field):
    import datasets

    from rsp_probe.tasks.datasets import _offline, records_to_problems

    data_dir = preset.data_dir if preset else None
    try:
        with _offline():
            ds = datasets.load_dataset(str(snapshot), data_dir=data_dir, split=split)
    except (ValueError, FileNotFoundError) as err:  # an unknown split, no data files
        raise UsageError(f"dataset {name!r} (cached at {snapshot}): "
                         f"{str(err).strip().splitlines()[0]}") from None
    rows = ((f"{name}[{split}] row {i}", row) for i, row in enumerate(ds))
    return records_to_problems(rows, f"{name.rsplit('/', 1)[-1]}-{split}", question_field,
                               answer_field, limit)


def _boxed_reference(problem: Problem, name: str) -> Problem:
    answer = extract_boxed(problem.answer)
    if answer is None:
        raise UsageError(f"{name} problem {problem.id}: its solution has no \\boxed{{}} answer")
    return replace(problem, answer=answer, solution=problem.answer)
