"""Grading dataset answers: read as math-verify reads them, and no failed check counted wrong."""

import itertools
import json

import pandas as pd
import pytest

import rsp_probe
from rsp_probe.analysis.pass_at_k import pass_at_k
from rsp_probe.errors import GradingError
from rsp_probe.runs import Run
from rsp_probe.tasks.mathcheck import CheckResult, grade_texts

POWER_TOWER = "2^{2^{2^{2^{2^{2^{2^{2}}}}}}}"

# (reference, model text, the answer read, correct): the four kinds of issue #17, and neighbours
KINDS = [
    # several boxes are one answer, a set or a tuple list, as math-verify reads them
    ("(2, 2), (6, 2)", "$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$",
     "(2, 2),(6, 2)", True),
    ("\\{1,2,3\\}", "\\boxed{1},\\boxed{2},\\boxed{3}", "1,2,3", True),
    ("\\{1,2,3\\}", "so \\boxed{1} and \\boxed{2}", "1,2", False),
    ("(6, 2)", "$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$",
     "(2, 2),(6, 2)", False),
    # an escaped dollar is a dollar sign, not a math delimiter (in the text or the reference)
    ("16386.20", "worth $\\boxed{\\$16,\\!386.20}$ after 5 years.", "16,386.20", True),
    ("16386.21", "worth $\\boxed{\\$16,\\!386.20}$ after 5 years.", "16,386.20", False),
    ("\\$16.20", "The total is \\boxed{16.20}.", "16.20", True),
    # a final-answer sentence after an earlier box wins, as in math-verify
    ("10455", "So far \\boxed{255}. In all $10,200 + $255 = $10,455. Final Answer: The final "
     "answer is $10,455$. I hope it is correct.", "10,455", True),
    ("255", "So far \\boxed{255}. In all $10,200 + $255 = $10,455. Final Answer: The final "
     "answer is $10,455$. I hope it is correct.", "10,455", False),
    # the #### line wins over text the model ran on with, when there is no box
    ("1234", "3 boxes of 411 and 1 more.\n#### 1,234\n\nQuestion: what is 7+8? Answer: 15",
     "1234", True),
    # the answer recorded is math-verify's normalised string: 0.5 is read as \frac{1}{2}
    ("\\frac{1}{2}", "half of it: \\boxed{0.5}", "\\frac{1}{2}", True),
    ("3/4", "so \\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", True),
    ("7", "I do not know.", None, False),
]


@pytest.fixture(scope="module")
def kind_results() -> list[CheckResult]:
    return grade_texts([(ref, text) for ref, text, _, _ in KINDS], timeout_s=30.0, workers=2)


@pytest.mark.parametrize(("row", "case"), list(enumerate(KINDS)), ids=lambda v: str(v)[:40])
def test_answers_are_read_as_math_verify_reads_them(kind_results, row, case):
    _, _, answer, correct = case
    assert kind_results[row] == CheckResult(correct=correct, answer=answer)


def test_a_failed_check_is_ungraded_not_wrong():
    unreadable, hanging = "\\boxed{}", f"so $\\boxed{{{POWER_TOWER}}}$"
    results = grade_texts([(unreadable, "\\boxed{3}"), ("3", hanging), ("3", "\\boxed{3}")],
                          timeout_s=1.0, workers=2)
    assert results[0].correct is None and "could not be read" in results[0].error
    assert results[1].correct is None and results[1].timed_out
    assert results[2] == CheckResult(correct=True, answer="3")


def test_check_answer_returns_the_answer_and_the_verdict_and_raises_on_failure():
    answer, correct = rsp_probe.check_answer("so \\boxed{1} and \\boxed{2}", "\\{1,2\\}")
    assert (answer, correct) == ("1,2", True)
    with pytest.raises(GradingError, match="timed out"):
        rsp_probe.check_answer(f"$\\boxed{{{POWER_TOWER}}}$", "3", timeout_s=1.0)


def _brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_passk_table_leaves_ungraded_samples_out(tmp_path):
    from rsp_probe.analysis.passk import passk_table

    # problem a: 4 graded (2 right) + 0 ungraded; b: 2 graded (1 right) + 2 ungraded;
    # c: 1 graded (wrong) + 3 ungraded, so c has no pass@2
    verdicts = {"a": [True, False, True, False], "b": [True, None, False, None],
                "c": [None, None, False, None]}
    rows = [{"id": f"temp/{p}/{i}", "condition": "temp", "prompt_id": p, "answer": "x",
             "correct": v, "grade_error": "timed out" if v is None else None}
            for p, vs in verdicts.items() for i, v in enumerate(vs)]
    run = Run(tmp_path)
    run.__dict__["trajectories"] = pd.DataFrame.from_records(rows)
    table = passk_table(run, [1, 2]).set_index("k")
    graded = {p: [v for v in vs if v is not None] for p, vs in verdicts.items()}
    for k in (1, 2):
        usable = [g for g in graded.values() if len(g) >= k]
        expected = sum(_brute_pass_at_k(g, k) for g in usable) / len(usable)
        assert table.loc[k, "pass_at_k"] == pytest.approx(expected)
        assert table.loc[k, "n_problems"] == len(usable)
        assert table.loc[k, "ungraded"] == 5
    assert table.loc[1, "accuracy"] == pytest.approx((2 / 4 + 1 / 2 + 0 / 1) / 3)
    assert table.loc[1, "pass_at_k"] == pytest.approx(pass_at_k(4, 2, 1) / 3 + 0.5 / 3)


def test_grade_file_writes_each_line_with_its_verdict(tmp_path, capsys):
    from rsp_probe.cli import main

    source = tmp_path / "answers.jsonl"
    lines = [{"text": "so \\boxed{1} and \\boxed{2}", "answer": "\\{1,2\\}", "id": 1},
             {"text": "\\boxed{3}", "answer": "4"},
             {"text": "\\boxed{3}", "answer": "\\boxed{}"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["grade", str(source), "--out", str(tmp_path / "graded.jsonl")]) == 0
    graded = [json.loads(line) for line in (tmp_path / "graded.jsonl").read_text().splitlines()]
    assert [(g["extracted"], g["correct"]) for g in graded] == [("1,2", True), ("3", False),
                                                                 (None, None)]
    assert graded[0]["id"] == 1 and graded[2]["grade_error"].startswith("ValueError")
    err = capsys.readouterr().err
    assert "graded 2 of 3 lines: 1 correct, 1 incorrect; warning: 1 could not be graded" in err


@pytest.mark.parametrize("content, message", [
    ('{"text": "x"}\n', 'answers.jsonl:1: expected {"text": str, "answer": str}'),
    ('{"text": "x", "answer": "1"}\nnot json\n', "answers.jsonl:2: not JSON"),
])
def test_grade_file_bad_lines_are_one_line_and_exit_2(content, message, tmp_path, capsys):
    from rsp_probe.cli import main

    (tmp_path / "answers.jsonl").write_text(content)
    assert main(["grade", str(tmp_path / "answers.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
