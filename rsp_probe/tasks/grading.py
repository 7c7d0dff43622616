"""Extract and check final answers for whichever task a run used."""

from __future__ import annotations

from rsp_probe.config import DataConfig


def grade(data: DataConfig, texts: list[str], references: list[str]) -> list[tuple]:
    """(extracted answer or None, correct or None) per text."""
    if not data.dataset:
        from rsp_probe.tasks.arithmetic import extract_answer, is_correct

        return [(extract_answer(t), is_correct(t, ref)) for t, ref in zip(texts, references)]
    from rsp_probe.tasks.answers import extract_answer
    from rsp_probe.tasks.mathcheck import check_answers

    answers = [extract_answer(t) for t in texts]
    checks = check_answers([(ref, a or "") for a, ref in zip(answers, references)])
    return [(a, bool(a) and c.correct) for a, c in zip(answers, checks)]
