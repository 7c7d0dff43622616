"""Extract and check final answers for whichever task a run used.

    grade(data, texts, references) -> [Grade(answer="1,2", correct=True, error=None), ...]
    check_answer("so \\boxed{1} and \\boxed{2}", "\\{1,2\\}") -> Verdict(answer="1,2", correct=True)

The built-in arithmetic task is graded in-process by its own exact rule; dataset tasks are read
and checked by math-verify (`reading`, run in killable workers by `mathcheck`). A check that
fails is ungraded (correct=None, error set), never counted as a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rsp_probe.config import DataConfig
from rsp_probe.errors import GradingError


@dataclass(frozen=True)
class Grade:
    answer: str | None  # the final answer read from the text, None if there is none
    correct: bool | None  # None when the check failed (then `error` says why)
    error: str | None = None


class Verdict(NamedTuple):
    answer: str | None
    correct: bool


def grade(data: DataConfig, texts: list[str], references: list[str],
          timeout_s: float = 5.0, answer_format: str = "####") -> list[Grade]:
    """One Grade per text. Raises CheckerUnavailableError when no check can run at all.

    answer_format: what the prompt asked for (config.json "prompt"); under "boxed" the
    built-in task reads the last \\boxed{} first, then "####" (math-verify, for datasets,
    reads both anyway)."""
    if not data.dataset:
        from rsp_probe.tasks.arithmetic import extract_answer, is_correct

        if answer_format == "boxed":
            return [_boxed_arithmetic(t, ref) for t, ref in zip(texts, references)]
        return [Grade(extract_answer(t), is_correct(t, ref)) for t, ref in zip(texts, references)]
    from rsp_probe.tasks.mathcheck import grade_texts

    checks = grade_texts(list(zip(references, texts)), timeout_s=timeout_s)
    return [Grade(c.answer, c.correct, c.error) for c in checks]


def _boxed_arithmetic(text: str, reference: str) -> Grade:
    """The arithmetic task's integer answer from the last \\boxed{}, else from "####"."""
    from rsp_probe.tasks.answers import extract_boxed
    from rsp_probe.tasks.arithmetic import extract_answer, is_correct

    boxed = extract_boxed(text)
    if boxed is None:
        return Grade(extract_answer(text), is_correct(text, reference))
    return Grade(boxed, is_correct(f"#### {boxed.strip()}", reference))


def check_answer(text: str, reference: str, timeout_s: float = 5.0) -> Verdict:
    """The answer math-verify reads in `text`, and whether it equals `reference`.

    Raises GradingError when the check fails (timeout, checker error) and
    CheckerUnavailableError when the checker cannot start. Each call starts a worker process
    (about a second): grade many texts at once with `grade_texts` or `rsp-probe grade FILE`.
    """
    from rsp_probe.tasks.mathcheck import grade_texts

    (result,) = grade_texts([(reference, text)], timeout_s=timeout_s, workers=1)
    if not result.graded:
        raise GradingError(f"could not check the answer: {result.error}")
    return Verdict(result.answer, bool(result.correct))
