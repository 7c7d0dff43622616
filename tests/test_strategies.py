"""Several chains of thought per arithmetic problem: each one is right, reaches the problem's
answer and is named by the parser; corrupted ones fail; the expression evaluator agrees with
Python's own arithmetic."""

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsp_probe.tasks.answers_arithmetic import EQUATION, evaluate
from rsp_probe.tasks.arithmetic import (
    SPLITS,
    ArithmeticConfig,
    generate_with_plans,
    is_correct,
    solution_is_consistent,
)
from rsp_probe.tasks.strategies import (
    CHECK_RATE,
    OTHER,
    STRATEGIES,
    STRATEGY_WEIGHTS,
    random_solution,
    strategy_of,
    write_solution,
)

CONFIGS = [
    ArithmeticConfig(),
    ArithmeticConfig(min_steps=1, max_steps=1),
    ArithmeticConfig(min_steps=5, max_steps=6, max_multiplier=9),
    ArithmeticConfig(max_multiplier=1),
]


@pytest.fixture(scope="module")
def problems_and_plans():
    return [pair for config in CONFIGS for split in SPLITS
            for pair in generate_with_plans(config, split, 150, seed=11)]


def all_solutions(plan, seed: int):
    """Every strategy, with and without a check, in the reference and in random phrasings."""
    for strategy in STRATEGIES:
        for check in (False, True):
            for rng in (None, random.Random(seed), random.Random(seed + 1)):
                yield strategy, check, write_solution(plan, strategy, rng, check)


def test_every_strategy_is_right_reaches_the_answer_and_is_named(problems_and_plans):
    for i, (problem, plan) in enumerate(problems_and_plans):
        assert plan.answer == int(problem.answer)
        assert problem.solution == write_solution(plan, "steps")
        for strategy, check, solution in all_solutions(plan, i):
            assert solution_is_consistent(solution, problem.question), solution
            assert is_correct(solution, problem.answer)
            assert strategy_of(solution) == strategy, solution
            assert ("Check" in solution) is check
            assert "\n" not in solution


def test_strategies_write_different_chains_for_every_problem(problems_and_plans):
    for problem, plan in problems_and_plans:
        references = {write_solution(plan, s) for s in STRATEGIES}
        assert len(references) == len(STRATEGIES) >= 4, problem


def test_a_check_line_works_back_to_the_start(problems_and_plans):
    for _, plan in problems_and_plans:
        check = write_solution(plan, "steps", check=True).split("Check:")[1]
        results = [int(result) for _, result in EQUATION.findall(check)]
        expected_end = plan.packs[0] if plan.packs and not plan.steps else plan.start
        assert results[-1] == expected_end


def test_the_one_equation_strategy_really_is_one_equation(problems_and_plans):
    for _, plan in problems_and_plans:
        solution = write_solution(plan, "equation")
        assert solution.count("=") == 1
        pairs = write_solution(plan, "pairs")
        assert pairs.count("=") == (len(plan.steps) + 1) // 2 or not plan.steps


CORRUPTIONS = [
    # the last equation's result, and the answer with it, off by one
    lambda s: re.sub(r"= (\d+)\. #### (\d+)",
                     lambda m: f"= {int(m[1]) + 1}. #### {int(m[2]) + 1}", s),
    # the first equation's result off by one
    lambda s: re.sub(r"= (\d+)", lambda m: f"= {int(m[1]) + 1}", s, count=1),
    # an operation swapped
    lambda s: s.replace(" + ", " - ", 1) if " + " in s else s.replace(" - ", " + ", 1),
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_corrupted_solutions_fail_the_checker(problems_and_plans, corrupt):
    failures = total = 0
    for i, (problem, plan) in enumerate(problems_and_plans[:300]):
        for _, _, solution in all_solutions(plan, i):
            corrupted = corrupt(solution)
            if corrupted == solution:
                continue
            total += 1
            failures += not solution_is_consistent(corrupted, problem.question)
    assert total > 1000 and failures == total


@pytest.mark.parametrize(
    "text",
    [
        "",
        "#### 14",
        "Mia starts with 12. #### 12",  # no equation
        "Mia starts with 12. 12 + 7 - 5 = 14. #### 14",  # steps take one operation each
        "First, Mia has 12. 12 + 7 = 19. #### 19",  # first-then needs its connectives
        "One equation: 12 + 7 = 19. 19 - 5 = 14. #### 14",  # two equations
        "Two steps at a time: 12 + 7 - 5 * 2 = 2. 2 + 3 - 1 + 4 = 8. #### 8",  # too many at once
        "Let's think. 12 + 7 = 19. #### 19",
        "Mia starts with 12. 12 + 7 = 19. Mia starts with 12. #### 19",
    ],
)
def test_other_shapes_are_labelled_other(text):
    assert strategy_of(text) == OTHER


def test_the_parser_ignores_the_check_line_and_text_after_the_answer():
    text = "Mia starts with 12. 12 + 7 = 19. Check: 19 - 7 = 12. #### 19"
    assert strategy_of(text) == "steps"
    assert strategy_of(text + " Question: Ben has 3 pens.") == "steps"


def test_training_draws_strategies_and_checks_at_their_rates(problems_and_plans):
    rng = random.Random(0)
    draws = [random_solution(plan, rng) for _ in range(4) for _, plan in problems_and_plans]
    n = len(draws)
    for strategy, weight in STRATEGY_WEIGHTS.items():
        share = sum(s == strategy for s, _ in draws) / n
        assert abs(share - weight) < 4 * (weight * (1 - weight) / n) ** 0.5
    check_share = sum("Check" in text for _, text in draws) / n
    assert abs(check_share - CHECK_RATE) < 4 * (CHECK_RATE * (1 - CHECK_RATE) / n) ** 0.5
    assert all(strategy_of(text) == s for s, text in draws)


def expressions():
    leaf = st.integers(0, 50).map(str)

    def extend(children):
        return st.tuples(children, st.sampled_from("+-*"), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})")

    return st.recursive(leaf, extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_evaluate_agrees_with_python(expression):
    flat = expression[1:-1] if expression.startswith("(") else expression
    assert evaluate(flat) == eval(flat)  # noqa: S307 - digits, operators and brackets only


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(1, 12), st.integers(0, 50))
def test_evaluate_divides_exactly_or_refuses(a, b, c):
    assert evaluate(f"{a * b} / {b} + {c}") == a + c
    assert evaluate(f"{a * b + 1} / {b}") == (None if b > 1 else a * b + 1)


@pytest.mark.parametrize("text", ["12 +", "(12 + 3", "12 + 3)", "12 x 3", "", "()"])
def test_evaluate_refuses_malformed_expressions(text):
    assert evaluate(text) is None
