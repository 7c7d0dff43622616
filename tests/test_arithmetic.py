"""The arithmetic task: disjoint splits, determinism, knobs, layout variation, answer checking."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsp_probe.errors import UsageError
from rsp_probe.tasks.arithmetic import (
    SPLITS,
    TEMPLATE_IDS,
    ArithmeticConfig,
    extract_answer,
    generate,
    is_correct,
    solution_is_consistent,
)

EQUATION = re.compile(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)\.")
START = re.compile(r"starts with (\d+)\.")
SENTENCE_BREAK = re.compile(r"(?<=[.?]) ")
NO_LAYOUT = ArithmeticConfig(distractors=False, max_preamble_sentences=0)
REFERENCE = "Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14"


def equations(solution: str) -> list[tuple[int, str, int, int]]:
    return [(int(a), op, int(b), int(c)) for a, op, b, c in EQUATION.findall(solution)]


def content_hash(problem) -> str:
    return problem.id.rsplit("-", 1)[1]  # "arith-test-3f2a9c1b0d4e" -> the content part


@pytest.fixture(scope="module")
def by_split():
    return {split: generate(ArithmeticConfig(), split, 1000, seed=0) for split in SPLITS}


def test_splits_never_overlap_and_lists_are_deduplicated(by_split):
    hashes = {split: {content_hash(p) for p in problems} for split, problems in by_split.items()}
    for split, problems in by_split.items():
        assert len(hashes[split]) == len(problems) == 1000
        assert all(p.id.startswith(f"arith-{split}-") for p in problems)
    assert not hashes["train"] & hashes["validation"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["validation"] & hashes["test"]


def test_every_reference_solution_is_consistent_and_well_formed(by_split):
    for problem in (p for problems in by_split.values() for p in problems):
        assert solution_is_consistent(problem.solution), problem
        assert extract_answer(problem.solution) == problem.answer
        assert is_correct(problem.solution, problem.answer)
        assert problem.solution.endswith(f" #### {problem.answer}")
        assert "\n" not in problem.question and "\n" not in problem.solution
        assert problem.question.endswith("?")
        values = [v for eq in equations(problem.solution) for v in (eq[0], eq[2], eq[3])]
        assert min(values) >= 0 and int(problem.answer) >= 0


def test_same_seed_same_problems_and_other_seeds_differ():
    config = ArithmeticConfig()
    first = generate(config, "train", 50, seed=7)
    assert generate(config, "train", 50, seed=7) == first
    other = generate(config, "train", 50, seed=8)
    assert len({p.id for p in first} & {p.id for p in other}) < 5


def test_split_follows_the_content_not_the_layout():
    plain = generate(NO_LAYOUT, "test", 200, seed=3)
    laid_out = generate(ArithmeticConfig(), "test", 200, seed=3)
    assert [(p.id, p.answer, p.solution) for p in plain] == [
        (p.id, p.answer, p.solution) for p in laid_out
    ]
    assert sum(a.question != b.question for a, b in zip(plain, laid_out)) > 150


def added_sentences(plain: str, laid_out: str) -> tuple[list[str], list[str]]:
    """The preamble and the distractor sentences that laying out added to the plain question."""
    sentences = SENTENCE_BREAK.split(laid_out)
    own_positions, start = [], 0
    for sentence in SENTENCE_BREAK.split(plain):  # all present, in order, or .index raises
        start = sentences.index(sentence, start)
        own_positions.append(start)
        start += 1
    added = [i for i in range(len(sentences)) if i not in own_positions]
    return (
        [sentences[i] for i in added if i < own_positions[0]],
        [sentences[i] for i in added if i > own_positions[0]],
    )


def test_preamble_and_distractors_vary_the_layout():
    plain = generate(NO_LAYOUT, "train", 300, seed=5)
    laid_out = generate(ArithmeticConfig(), "train", 300, seed=5)
    added = [added_sentences(a.question, b.question) for a, b in zip(plain, laid_out)]
    assert {len(preamble) for preamble, _ in added} == set(
        range(ArithmeticConfig().max_preamble_sentences + 1))
    assert {len(distractors) for _, distractors in added} == {0, 1, 2}
    assert not any(re.search(r"\d", s) for preamble, _ in added for s in preamble)
    distractors = [s for _, ds in added for s in ds]
    numbered = sum(bool(re.search(r"\d", s)) for s in distractors) / len(distractors)
    assert 0.1 < numbered < 0.45
    question_positions = {len(SENTENCE_BREAK.split(p.question)) for p in laid_out}
    assert len(question_positions) > 5  # the final question is not at a fixed sentence index


@pytest.mark.parametrize("min_steps, max_steps", [(1, 1), (2, 2), (2, 4), (4, 4), (5, 6)])
def test_step_count_knob(min_steps, max_steps):
    config = ArithmeticConfig(min_steps=min_steps, max_steps=max_steps)
    counts = {len(equations(p.solution)) for p in generate(config, "train", 150, seed=1)}
    assert counts == set(range(min_steps, max_steps + 1))


@pytest.mark.parametrize("max_operand, max_multiplier", [(5, 2), (10, 3), (20, 5), (40, 9)])
def test_operand_and_multiplier_knobs(max_operand, max_multiplier):
    config = ArithmeticConfig(max_operand=max_operand, max_multiplier=max_multiplier)
    problems = generate(config, "train", 200, seed=2)
    for problem in problems:
        for left, operation, right, _ in equations(problem.solution):
            if operation == "*":  # "k packs of m" or "k times as many as (a small count)"
                assert 2 <= min(left, right) <= max_multiplier
                assert max(left, right) <= max_operand
            else:
                assert 2 <= right <= max_operand
        assert all(int(start) <= max_operand for start in START.findall(problem.solution))
    assert any(" * " in p.solution for p in problems)


def test_multiplier_below_two_turns_multiplication_off():
    problems = generate(ArithmeticConfig(max_multiplier=1), "train", 200, seed=2)
    assert not any(" * " in p.solution for p in problems)


@pytest.mark.parametrize("template", TEMPLATE_IDS)
def test_each_template_alone_gives_consistent_problems(template):
    problems = generate(ArithmeticConfig(templates=(template,)), "validation", 40, seed=4)
    assert all(solution_is_consistent(p.solution) for p in problems)
    assert len({p.question for p in problems}) == 40


def test_a_used_up_config_is_deduplicated_then_refused():
    tiny = ArithmeticConfig(templates=("bus",), max_operand=2, max_multiplier=1, max_steps=1,
                            min_steps=1)  # fmt: skip
    assert len({p.id for p in generate(tiny, "train", 5, seed=0)}) == 5
    with pytest.raises(UsageError, match="distinct train problems"):
        generate(tiny, "train", 50, seed=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"templates": ("nope",)},
        {"templates": ()},
        {"min_steps": 0},
        {"min_steps": 3, "max_steps": 2},
        {"max_operand": 1},
        {"max_distractors": -1},
    ],
)
def test_bad_configs_are_refused(overrides):
    with pytest.raises(UsageError):
        ArithmeticConfig(**overrides)


def test_unknown_split_is_refused():
    with pytest.raises(UsageError):
        generate(ArithmeticConfig(), "dev", 1, seed=0)


@pytest.mark.parametrize(
    "text, expected",
    [
        (REFERENCE, "14"),
        ("#### 14.", "14"),
        ("####14", "14"),
        ("#### -3", "-3"),
        ("#### 014 pencils", "14"),
        ("#### 1 and then #### 2", "2"),
        ("#### 14\nQuestion: Ben has 3 pencils.", "14"),
        ("Mia has 14 pencils.", None),
        ("#### ", None),
        ("#### fourteen", None),
        ("#### 14.5", None),
        ("#### 1,000", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, answer, expected",
    [
        (REFERENCE, "14", True),
        ("#### 014", "14", True),
        (REFERENCE.replace("#### 14", "#### 15"), "14", False),
        (REFERENCE.replace("#### ", ""), "14", False),
        ("#### 14.0", "14", False),
        ("#### -14", "14", False),
    ],
)
def test_is_correct(text, answer, expected):
    assert is_correct(text, answer) is expected


def test_is_correct_refuses_a_non_integer_reference():
    with pytest.raises(ValueError):
        is_correct(REFERENCE, "14.5")


@pytest.mark.parametrize(
    "solution, expected",
    [
        (REFERENCE, True),
        ("Leo starts with 3 groups of 4. 3 * 4 = 12. 12 + 2 = 14. #### 14", True),
        (REFERENCE.replace("#### 14", "#### 15"), False),  # wrong final number
        ("Mia starts with 12. 12 + 7 = 20. 20 - 5 = 15. #### 15", False),  # wrong sum
        (REFERENCE.replace("#### 14", "14"), False),  # missing ####
        (REFERENCE.replace("#### 14", "#### 14.5"), False),  # non-integer
        ("Mia has 14. #### 14", False),  # no equation
        ("Mia starts with 12. 12 + 7 = 19. 19 - = 14. #### 14", False),  # a broken equation
    ],
)
def test_solution_is_consistent(solution, expected):
    assert solution_is_consistent(solution) is expected


QUESTION = "Mia has 12 pencils. Mia buys 7 more and gives 5 to Leo. How many pencils now?"


@pytest.mark.parametrize(
    "solution, expected",
    [
        (REFERENCE, True),
        ("Let's combine the changes first. Mia starts with 12. 12 + 7 - 5 = 14. #### 14", True),
        ("Mia starts with 12. 12 + 7 = 19. 18 - 5 = 13. #### 13", False),  # broken chain
        ("Mia starts with 12. 12 + 8 = 20. 20 - 6 = 14. #### 14", False),  # numbers not given
        ("Check: 14 + 5 = 19. #### 14", False),  # a check alone is no solution
    ],
)
def test_with_the_question_every_operand_is_given_or_computed(solution, expected):
    assert solution_is_consistent(solution, QUESTION) is expected


@pytest.mark.parametrize(
    "solution, expected",
    [
        ("One equation: (12 + 7) * 2 - 5 = 33. #### 33", True),
        ("One equation: 12 + 7 * 2 - 5 = 33. #### 33", False),  # precedence ignored
        ("Two steps at a time: 12 + 7 - 5 = 14. #### 14", True),
        ("Mia starts with 12. 12 + 7 = 19. Check: 19 - 7 = 12. #### 19", True),
        ("Mia starts with 12. 12 + 7 = 19. Check: 19 - 7 = 11. #### 19", False),  # wrong check
        ("Mia starts with 12. 12 + 7 = 19. Check: 18 - 6 = 12. #### 19", False),  # not from 19
        ("Mia starts with 12. 12 * 3 = 36. Check: 36 / 3 = 12. #### 36", True),
        ("Mia starts with 12. 12 + 7 = 19. Check: 19 / 2 = 9. #### 19", False),  # inexact
    ],
)
def test_several_operations_brackets_and_check_lines(solution, expected):
    assert solution_is_consistent(solution) is expected


CORRUPTIONS = [
    lambda s, a: s.replace(f"#### {a}", f"#### {int(a) + 1}"),
    lambda s, a: s.replace(f"#### {a}", a),
    lambda s, a: s.replace(f"#### {a}", f"#### {a}.5"),
    lambda s, a: s.replace(f"#### {a}", "#### many"),
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_checker_rejects_corrupted_reference_solutions(by_split, corrupt):
    for problem in by_split["test"][:200]:
        corrupted = corrupt(problem.solution, problem.answer)
        assert not is_correct(corrupted, problem.answer)
        assert not solution_is_consistent(corrupted)


@given(st.integers(-(10**9), 10**9), st.text(alphabet=st.characters(exclude_characters="#")))
def test_extract_answer_reads_any_integer_after_the_mark(number, prefix):
    assert extract_answer(f"{prefix} #### {number}") == str(number)
    assert is_correct(f"{prefix} #### {number}", str(number))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(SPLITS))
def test_any_seed_gives_consistent_problems(seed, split):
    for problem in generate(ArithmeticConfig(), split, 5, seed=seed):
        assert solution_is_consistent(problem.solution)
        assert extract_answer(problem.solution) == problem.answer


def test_numbers_written_as_words_count_whatever_their_case():
    question = "Three boxes hold 4 pens each. How many pens?"
    assert solution_is_consistent("3 * 4 = 12. #### 12", question)
    assert solution_is_consistent("3 * 4 = 12. #### 12", question.lower())
    assert not solution_is_consistent("5 * 4 = 20. #### 20", question)  # five is not stated


@pytest.mark.parametrize("expression, value", [
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("12 / 4 / 3", 1), ("10 - 4 - 3", 3),
    ("-3 + 5", 2), ("2 * -3", -6), ("-(2 + 3) * 2", -10), ("- -4", 4),
    ("100000000000000002 / 2", 50000000000000001),  # exact integers, never a float
    ("2 3", None), ("2 + 3)", None), ("(2 + 3", None), ("7 / 2", None), ("1 / 0", None),
    ("2 ^ 3", None),
])
def test_evaluate_reads_signs_precedence_and_exact_division(expression, value):
    from rsp_probe.tasks.answers_arithmetic import evaluate

    result = evaluate(expression)
    assert result == value and type(result) is type(value)
