"""Equivalence through math-verify in killable worker processes."""

import time

import pytest

from rsp_probe.tasks.mathcheck import CheckResult, check_answers, grade_texts

# (gold, prediction, equivalent)
TABLE = [
    ("\\frac{1}{2}", "0.5", True),
    ("\\frac{1}{2}", "1/2", True),
    ("1/2", "\\frac{1}{2}", True),
    ("0.5", "1/2", True),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("(0,1]", "(0, 1]", True),
    ("(0,1]", "[0,1]", False),
    ("3", "4", False),
    ("1000", "1,000", True),
    ("42", "so the final answer is $\\boxed{42}$.", True),
    ("42", "so the final answer is $\\boxed{41}$.", False),
    ("x^2+1", "1+x^2", True),
    ("7", "", False),
]

POWER_TOWER = "2^{2^{2^{2^{2^{2^{2^{2}}}}}}}"  # sympy evaluates this for ever


@pytest.fixture(scope="module")
def table_results() -> list[CheckResult]:
    return check_answers([(g, p) for g, p, _ in TABLE], timeout_s=20.0, workers=2)


@pytest.mark.parametrize(("row", "case"), list(enumerate(TABLE)), ids=lambda v: str(v))
def test_equivalence_table(table_results, row, case):
    equivalent = case[2]
    assert table_results[row] == CheckResult(correct=equivalent, timed_out=False, error=None)


def test_hanging_check_is_killed_and_the_rest_still_run():
    pairs = [("3", POWER_TOWER), ("\\frac{1}{2}", "0.5"), ("3", "4"), ("2", "2")]
    t0 = time.monotonic()
    results = check_answers(pairs, timeout_s=1.0, workers=2)
    # Bounded: unkilled, the tower never returns. Loose, because two pool start-ups (spawn and
    # the sympy import in each worker) took 45 s on the shared 2-core machine at load 11.
    assert time.monotonic() - t0 < 120.0
    assert results == [
        CheckResult(correct=None, timed_out=True,
                    error="timed out: the check ran longer than 1 s"),  # ungraded, not wrong
        CheckResult(correct=True),
        CheckResult(correct=False),
        CheckResult(correct=True),
    ]
    assert not results[0].graded and results[2].graded


def test_hanging_text_is_killed_when_read_from_a_model_text():
    texts = [f"so the answer is $\\boxed{{{POWER_TOWER}}}$", "so \\boxed{4}."]
    results = grade_texts([("3", t) for t in texts], timeout_s=1.0, workers=2)
    assert results[0].timed_out and results[0].correct is None
    assert results[1] == CheckResult(correct=False, answer="4")


def test_empty_and_bad_timeout():
    assert check_answers([]) == []
    with pytest.raises(ValueError):
        check_answers([("1", "1")], timeout_s=0)
