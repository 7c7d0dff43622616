"""The reading rules of `tasks.reading`, run in this process (the workers of `mathcheck` run the
same functions): fast enough for `make mutate`, and each rule checked against what math-verify's
own `parse`/`verify` give on the same strings, or against an answer written out by hand.

The pool route (timeouts, crashes, order of results) is tested in test_mathcheck.py and
test_grading.py; the regression table of math-verify in test_math_verify_cases.py.
"""

from __future__ import annotations

import pytest
from test_grading import KINDS

from rsp_probe.tasks import reading

MV = pytest.importorskip("math_verify")


@pytest.mark.parametrize(("reference", "text", "answer", "correct"), KINDS,
                         ids=[str(i) for i in range(len(KINDS))])
def test_grade_text_reads_and_checks_like_the_pool(reference, text, answer, correct):
    assert reading.grade_text(reference, text) == (answer, correct)


@pytest.mark.parametrize(("text", "wrapped"), [
    ("42", "\\boxed{42}"), ("\\sqrt{2}/2", "\\boxed{\\sqrt{2}/2}"),
    ("$x^2$", "$x^2$"), ("\\boxed{3}", "\\boxed{3}"), ("\\fbox{3}", "\\fbox{3}"),
    ("\\(1\\)", "\\(1\\)"), ("\\[1\\]", "\\[1\\]"),
    ("\\$16.20", "\\boxed{\\$16.20}"),  # an escaped dollar is not a delimiter
])
def test_as_answer_wraps_only_bare_answers(text, wrapped):
    assert reading.as_answer(text) == wrapped


def test_read_bare_reads_the_wrapped_answer():
    config = reading.extraction_config()
    assert reading.read_bare("1/2") == MV.parse("\\boxed{1/2}", config)
    wrapped, raw = MV.parse("\\boxed{x }{ 3}", config), MV.parse("x }{ 3", config)
    assert reading.read_bare("x }{ 3") == wrapped != raw
    assert reading.read_bare("}") == []


def test_an_unreadable_reference_raises_and_no_answer_is_wrong_not_an_error():
    with pytest.raises(ValueError, match="could not be read"):
        reading.grade_text("\\boxed{}", "\\boxed{3}")
    assert reading.grade_text("7", "I do not know.") == (None, False)
    assert reading.read_answer("I do not know.") == ([], None)


def test_the_hash_line_wins_only_when_there_is_no_box():
    ran_on = "3 + 4 = 7.\n#### 7\n\nQuestion: what is 2+2? Answer: 4"
    assert reading.grade_text("7", ran_on) == ("7", True)
    boxed = "so \\boxed{5}.\n#### 7"
    assert reading.grade_text("5", boxed) == ("5", True)
    assert reading.grade_text("7", boxed) == ("5", False)


def test_compare_answers_checks_bare_answers_both_ways():
    assert reading.compare_answers("\\frac{1}{2}", "0.5") == (None, True)
    assert reading.compare_answers("3", "4") == (None, False)
    assert reading.compare_answers("7", "   ") == (None, False)
    assert reading.compare_answers("x^2+1", "1+x^2") == (None, True)


def test_the_reference_is_parsed_once_and_kept_as_a_tuple():
    reading.read_reference.cache_clear()
    parsed = reading.read_reference("\\frac{3}{4}")
    assert isinstance(parsed, tuple) and list(parsed) == reading.read_bare("\\frac{3}{4}")
    assert reading.read_reference("\\frac{3}{4}") is parsed


def test_grade_routes_dataset_texts_through_math_verify_and_arithmetic_through_its_rule():
    from rsp_probe.config import DataConfig
    from rsp_probe.tasks.grading import Grade, grade

    texts = ["so \\boxed{0.5}.", "\\boxed{\\frac{1}{3}}", "I do not know. #### 1/2"]
    references = ["\\frac{1}{2}", "\\frac{1}{2}", "1/2"]
    expected = [Grade(*reading.grade_text(r, t)) for r, t in zip(references, texts)]
    assert [g.correct for g in expected] == [True, False, True]
    # a reference that cannot be read is ungraded, with the reason, not wrong
    graded = grade(DataConfig(dataset="problems.jsonl"), [*texts, "\\boxed{1}"], [*references, ""])
    assert graded == [*expected, Grade(None, None, "ValueError: the reference answer '' could "
                                                   "not be read")]
    # the built-in task's rule: only the integer after the last #### counts, no math-verify
    arithmetic = grade(DataConfig(), ["2 + 3 = 5\n#### 5", "\\boxed{5}"], ["5", "5"])
    assert arithmetic == [Grade("5", True), Grade(None, False)]


def test_a_latex_answer_sympy_cannot_read_is_recorded_as_its_string():
    """math-verify then returns the string alone, with no expression before it."""
    text = "so \\boxed{\\sqrt[]{2}}"
    assert MV.parse(text, reading.extraction_config(), parsing_timeout=None) == ["\\sqrt[]{2}"]
    assert reading.read_answer(text) == (["\\sqrt[]{2}"], "\\sqrt[]{2}")


def test_a_box_wins_over_a_later_final_answer_sentence():
    """The regression suite's configuration (boxed_match_priority=0), not math-verify's
    default, under which "the final answer is 3" would win."""
    text = "\\boxed{5} so the final answer is 3"
    assert MV.parse(text, parsing_timeout=None)[0] == 3  # the default configuration
    assert reading.read_answer(text)[1] == "5"


def test_grade_hands_its_timeout_to_the_pool(monkeypatch):
    from rsp_probe.config import DataConfig
    from rsp_probe.tasks import mathcheck
    from rsp_probe.tasks.grading import Grade, grade

    seen = {}

    def fake_pool(pairs, timeout_s=5.0, workers=None):
        seen.update(pairs=pairs, timeout_s=timeout_s)
        return [mathcheck.CheckResult(True, "1") for _ in pairs]

    monkeypatch.setattr(mathcheck, "grade_texts", fake_pool)
    assert grade(DataConfig(dataset="p.jsonl"), ["t"], ["1"], timeout_s=0.25) == [
        Grade("1", True, None)]
    assert seen == {"pairs": [("1", "t")], "timeout_s": 0.25}
