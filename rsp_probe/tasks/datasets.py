"""Problems from local files (JSONL, Parquet) or the local Hugging Face cache; never the network.

Record shapes recognised without options:
    MATH500  {"problem", "answer", "solution"?, "unique_id"?}
    GSM8K    {"question", "answer": "<rationale> #### 42"}  -> answer "42", solution the rationale
Anything else: name the fields (question_field=..., answer_field=...; --question-field on the
command line). An answer containing "####" is always split GSM8K style.

Ids are the record's own "id" or "unique_id" when it has one, else f"{file stem}-{index}" with
index the 0-based position of the record in the file.
"""

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rsp_probe.errors import UsageError
from rsp_probe.tasks.answers import extract_hash_answer
from rsp_probe.tasks.problem import Problem

SUPPORTED_SUFFIXES = (".jsonl", ".parquet")
QUESTION_FIELDS = ("problem", "question")  # tried in this order
ANSWER_FIELDS = ("answer",)
SOLUTION_FIELDS = ("solution",)
ID_FIELDS = ("id", "unique_id")


def load_dataset_file(
    path: str | Path,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from a local .jsonl or .parquet file, at most `limit` of them.

    Raises UsageError (one line, naming the file and line or row) for a missing file, an
    unsupported extension, a malformed JSONL line, or a record without the question/answer.
    """
    path = Path(path)
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise UsageError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, expected a .jsonl or .parquet file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    records = _jsonl_records(path) if path.suffix == ".jsonl" else _parquet_records(path)
    problems = records_to_problems(records, path.stem, question_field, answer_field, limit)
    if not problems and limit != 0:
        raise UsageError(f"{path}: no records")
    return problems


def load_cached_hf_dataset(
    name: str,
    split: str = "test",
    config_name: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
) -> list[Problem]:
    """Problems from a Hub dataset already in the local `datasets` cache, read offline.

    Offline mode is forced for the call whatever the environment says, so a dataset that is
    not cached fails at once with a UsageError naming it. Ids default to f"{name}-{split}-{i}"
    (name without its namespace).
    """
    import datasets

    try:
        with _offline():
            ds = datasets.load_dataset(
                name,
                config_name,
                split=split,
                cache_dir=None if cache_dir is None else str(cache_dir),
            )
    except (ConnectionError, FileNotFoundError) as err:
        where = cache_dir or datasets.config.HF_DATASETS_CACHE
        raise UsageError(
            f"dataset {name!r} is not in the local Hugging Face cache ({where}); load it once "
            f"with network access, or pass a local .jsonl/.parquet file ({_first_line(err)})"
        ) from None
    except ValueError as err:  # e.g. an unknown split or config of a cached dataset
        raise UsageError(f"dataset {name!r}: {_first_line(err)}") from None
    prefix = f"{name.rsplit('/', 1)[-1]}-{split}"
    rows = ((f"{name}[{split}] row {i}", row) for i, row in enumerate(ds))
    problems = records_to_problems(rows, prefix, question_field, answer_field, limit)
    if not problems and limit != 0:
        raise UsageError(f"dataset {name!r} split {split!r} has no records")
    return problems


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def records_to_problems(
    records: Iterable[tuple[str, Any]],
    id_prefix: str,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from (location, record) pairs; `location` ("data.jsonl:7") prefixes errors.

    Field names not given are detected from the first record and then required of all.
    """
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be >= 0; got {limit}")
    problems: list[Problem] = []
    fields: tuple[str, str] | None = None
    for index, (where, record) in enumerate(records):
        if limit is not None and index >= limit:
            break
        if not isinstance(record, dict):
            raise UsageError(f"{where}: expected an object, got {type(record).__name__}")
        if fields is None:
            fields = (
                question_field or _detect(record, QUESTION_FIELDS, "question", where),
                answer_field or _detect(record, ANSWER_FIELDS, "answer", where),
            )
        problems.append(_to_problem(record, fields, f"{id_prefix}-{index}", where))
    return problems


def _detect(record: dict, candidates: tuple[str, ...], role: str, where: str) -> str:
    for field in candidates:
        if field in record:
            return field
    looked = ", ".join(repr(f) for f in candidates)
    raise UsageError(
        f"{where}: no {role} field (looked for {looked}; fields are "
        f"{', '.join(map(repr, record))}); pass --{role}-field"
    )


def _field(record: dict, field: str, where: str) -> str:
    value = record.get(field)
    if value is None:
        raise UsageError(f"{where}: missing field {field!r}")
    return str(value)


def _checked_text(value, field: str, where: str, numbers: bool) -> None:
    """A question must be text; an answer text or a finite number. NaN (a Parquet/pandas
    missing value), lists and objects would otherwise run as "nan" or as their repr."""
    import math

    ok = isinstance(value, str) and value.strip() != "" or (
        numbers and isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value))
    if not ok:
        raise UsageError(f"{where}: field {field!r} is {type(value).__name__} {value!r:.40}, "
                         f"not {'text or a number' if numbers else 'text'}")


def _to_problem(record: dict, fields: tuple[str, str], default_id: str, where: str) -> Problem:
    question = _field(record, fields[0], where)
    answer = _field(record, fields[1], where)
    _checked_text(record[fields[0]], fields[0], where, numbers=False)
    _checked_text(record[fields[1]], fields[1], where, numbers=True)
    solution = next((str(record[f]) for f in SOLUTION_FIELDS if record.get(f) is not None), None)
    if "####" in answer:  # GSM8K: "<rationale> #### 42"
        rationale = answer.rpartition("####")[0].strip()
        final = extract_hash_answer(answer)
        if final is None:
            raise UsageError(f"{where}: field {fields[1]!r} has nothing after '####'")
        answer, solution = final, solution or rationale or None
    own_id = next((str(record[f]) for f in ID_FIELDS if record.get(f) is not None), None)
    return Problem(id=own_id or default_id, question=question, answer=answer, solution=solution)


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as f:  # bytes, so a non-UTF-8 line is reported with its number
        for lineno, raw in enumerate(f, start=1):
            where = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UsageError(f"{where}: not valid UTF-8 (byte {err.start + 1} of the line)"
                                 ) from None
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{where}: not valid JSON: {err}") from None


def _parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise UsageError(f"{path.name}: not a readable Parquet file: {err}") from None
    for row, record in enumerate(table.to_pylist()):
        yield f"{path.name} row {row}", record


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Force offline mode in `datasets` and `huggingface_hub` (read at call time), then restore.

    datasets 5.x reads `datasets.config.HF_HUB_OFFLINE` (HF_DATASETS_OFFLINE is only a kept
    alias); huggingface_hub's HTTP layer reads `huggingface_hub.constants.HF_HUB_OFFLINE`.
    """
    import datasets.config
    import huggingface_hub.constants

    saved = (
        datasets.config.HF_HUB_OFFLINE,
        datasets.config.HF_DATASETS_OFFLINE,
        huggingface_hub.constants.HF_HUB_OFFLINE,
    )
    datasets.config.HF_HUB_OFFLINE = True
    datasets.config.HF_DATASETS_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        (
            datasets.config.HF_HUB_OFFLINE,
            datasets.config.HF_DATASETS_OFFLINE,
            huggingface_hub.constants.HF_HUB_OFFLINE,
        ) = saved
