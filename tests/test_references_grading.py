"""Each record's `answer` and `correct` against an independent check of its text: on the
arithmetic task the reference answer is recomputed from the problem's own solution chain,
and the model's final answer is read from its text with a separate parser."""

from __future__ import annotations

import operator
import re

import pytest

import rsp_probe
from rsp_probe.config import DataConfig
from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate
from rsp_probe.tasks.grading import grade

N_PROMPTS = 4

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _recomputed_answer(solution: str) -> int:
    """Evaluate the worked solution's equations left to right; the last result is the answer.
    Only the left operand of the first equation and the right operands are read."""
    equations = re.findall(r"(-?\d+) ([-+*]) (-?\d+) = -?\d+", solution.split("####")[0])
    value = int(equations[0][0])
    for _, op, right, in ((e[0], e[1], e[2]) for e in equations):
        value = _OPS[op](value, int(right))
    return value


def _final_integer(text: str) -> int | None:
    """The integer right after the last '####', punctuation after it allowed."""
    if "####" not in text:
        return None
    match = re.match(r"\s*(-?\d+)[.,;:!?]?(\s|$)", text.split("####")[-1])
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def run(tmp_path_factory, default_model):
    return default_model_run(tmp_path_factory, default_model)


def default_model_run(tmp_path_factory, model=None):
    """Greedy trajectories of the default model: k=0 is mostly right and k=16 mostly wrong,
    so both outcomes occur."""
    out = tmp_path_factory.mktemp("grading") / "r"
    run, _ = rsp_probe.entropy(model=model, n_prompts=N_PROMPTS, rsp_tokens=(0, 16), samples=1,
                               temperature=0.0, max_new_tokens=96, out=str(out), quiet=True)
    return run


def test_every_record_is_graded_like_an_independent_check(run):
    check_records(run.trajectories.to_dict("records"))


def check_records(records):
    problems = {p.id: p for p in generate(DEFAULT_TASK, "test", N_PROMPTS, seed=0)}
    assert {r["prompt_id"] for r in records} == set(problems)
    for record in records:
        problem = problems[record["prompt_id"]]
        reference = _recomputed_answer(problem.solution)
        assert record["reference_answer"] == str(reference)
        predicted = _final_integer(record["text"])
        assert record["answer"] == (None if predicted is None else str(predicted))
        assert record["correct"] is (predicted == reference)
    outcomes = {r["correct"] for r in records}
    assert outcomes == {True, False}, "the check needs right and wrong trajectories"


@pytest.mark.parametrize("text, expected", [
    ("12 + 7 = 19. 19 - 5 = 14. #### 14", (14, True)),
    ("12 + 7 = 19. #### 19", (19, False)),
    ("#### 014.", (14, True)),
    ("14 #### fourteen", (None, False)),
    ("no mark 14", (None, False)),
])
def test_hand_made_texts(text, expected):
    check_hand_made(grade, text, expected)


def check_hand_made(grade, text, expected):
    [graded] = grade(DataConfig(), [text], ["14"])
    answer, correct = graded.answer, graded.correct
    assert (_final_integer(text), correct) == expected
    assert answer == (None if expected[0] is None else str(expected[0]))


def test_a_stray_equals_sign_breaks_a_solution_anywhere():
    from rsp_probe.tasks.arithmetic import solution_is_consistent

    good = "Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14"
    assert solution_is_consistent(good)
    assert not solution_is_consistent(good.replace("19 - 5", "x = 3. 19 - 5"))
