"""Several valid chains of thought per arithmetic problem, and a parser that names them.

    write_solution(plan, "net", random.Random(0))
        -> "Let's combine the changes first. Mia starts with 12. Gains: 7 + 3 = 10. ..."
    strategy_of(model_text) -> "net" (or "other")

A problem's plan is its start and its steps in story order. Each strategy turns the plan into
a different chain of thought that reaches the same answer, and they differ in how hard they
are for a small model: step by step needs one small sum per sentence; `net` adds up the
gains and the losses first; `pairs` does two steps per equation; `equation` writes the whole
problem as one expression and evaluates it at once. Phrasings vary inside a strategy (the
opening clause, the connectives), and any solution may end with a check line that works
backwards from the answer to the start in one equation. Training draws the strategy, its
phrasing and the check at random per example, so the model learns a multi-modal
distribution at those forks.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rsp_probe.tasks.answers_arithmetic import ANSWER_MARK, CHECK_MARK, EQUATION

STRATEGIES = ("steps", "first-then", "net", "pairs", "equation")
OTHER = "other"
# How often training uses each: the easy story-order strategy is the most common, as the
# first thing a solver writes usually is; the one-equation strategy is the rarest.
STRATEGY_WEIGHTS = {"steps": 0.3, "first-then": 0.2, "net": 0.2, "pairs": 0.15, "equation": 0.15}
CHECK_RATE = 0.25

_STEPS_OPENINGS = ("{who} starts with {x}.", "{who} has {x} at the start.",
                   "At the start, {who} has {x}.")  # fmt: skip
_CONNECTIVES = ("Then", "Next,", "After that,")
_NET_OPENINGS = ("Let's combine the changes first.", "Let's add up the changes first.")
_PAIRS_OPENINGS = ("Two steps at a time:", "Two steps per line:")
_EQUATION_OPENINGS = ("One equation:", "As one equation:", "All in one equation:")
_CHECK_OPENINGS = ("Check:", "Check by working backwards:")
_INVERSE = {"+": "-", "-": "+", "*": "/"}


@dataclass(frozen=True)
class Plan:
    """What a solution must compute, in story order."""

    holder: str  # who holds the count at the start, as the story names it ("the red bus")
    start: int  # the count at the start (k * m when it opens with packs)
    packs: tuple[int, int] | None  # (k, m) for "k groups of m", else None
    steps: tuple[tuple[str, int], ...]  # (operation, operand), operation in "+", "-", "*"

    @property
    def answer(self) -> int:
        value = self.start
        for operation, operand in self.steps:
            value = _apply(operation, value, operand)
        return value


def write_solution(plan: Plan, strategy: str, rng: random.Random | None = None,
                   check: bool = False) -> str:
    """The chain of thought of `strategy`, then "#### answer". Without rng the first phrasing
    of everything is used (the reference solution)."""
    writer = {"steps": _steps, "first-then": _first_then, "net": _net, "pairs": _pairs,
              "equation": _equation}[strategy]
    pick = rng.choice if rng is not None else (lambda options: options[0])
    sentences = writer(plan, pick)
    if check:
        sentences += [pick(_CHECK_OPENINGS), *_check(plan)]
    return " ".join(sentences) + f" {ANSWER_MARK} {plan.answer}"


def random_solution(plan: Plan, rng: random.Random) -> tuple[str, str]:
    """(strategy, solution) drawn the way training draws them."""
    strategy = rng.choices(list(STRATEGY_WEIGHTS), list(STRATEGY_WEIGHTS.values()))[0]
    check = rng.random() < CHECK_RATE
    return strategy, write_solution(plan, strategy, rng, check)


def _opening_value(plan: Plan) -> str:
    return f"{plan.packs[0]} groups of {plan.packs[1]}" if plan.packs else str(plan.start)


def _pack_equations(plan: Plan) -> list[str]:
    return [f"{plan.packs[0]} * {plan.packs[1]} = {plan.start}."] if plan.packs else []


def _chain(plan: Plan) -> list[str]:
    """One "a op b = c." per step, each from the previous result."""
    equations, value = [], plan.start
    for operation, operand in plan.steps:
        result = _apply(operation, value, operand)
        equations.append(f"{value} {operation} {operand} = {result}.")
        value = result
    return equations


def _steps(plan: Plan, pick) -> list[str]:
    opening = pick(_STEPS_OPENINGS).format(who=plan.holder, x=_opening_value(plan))
    return [_capital(opening), *_pack_equations(plan), *_chain(plan)]


def _first_then(plan: Plan, pick) -> list[str]:
    opening = f"First, {plan.holder} has {_opening_value(plan)}."
    return [opening] + [f"{pick(_CONNECTIVES)} {eq}" for eq in _pack_equations(plan) + _chain(plan)]


def _net(plan: Plan, pick) -> list[str]:
    """Per run of gains and losses between multiplications: their totals, then one update."""
    opening = f"{_capital(plan.holder)} starts with {_opening_value(plan)}."
    sentences = [pick(_NET_OPENINGS), opening, *_pack_equations(plan)]
    value = plan.start
    for run in _runs(plan.steps):
        if run[0][0] == "*":
            result = value * run[0][1]
            sentences.append(f"{value} * {run[0][1]} = {result}.")
            value = result
            continue
        update = str(value)
        for label, sign in (("Gains", "+"), ("Losses", "-")):
            amounts = [operand for operation, operand in run if operation == sign]
            if amounts:
                total = sum(amounts)
                sums = f"{' + '.join(map(str, amounts))} = {total}" if len(amounts) > 1 else total
                sentences.append(f"{label}: {sums}.")
                update += f" {sign} {total}"
        value = _run_result(value, run)
        sentences.append(f"{update} = {value}.")
    return sentences


def _pairs(plan: Plan, pick) -> list[str]:
    sentences, value = [pick(_PAIRS_OPENINGS)], plan.start
    start = f"{plan.packs[0]} * {plan.packs[1]}" if plan.packs else str(plan.start)
    steps = list(plan.steps)
    if not steps:  # only the packs: one equation is all there is
        return sentences + _pack_equations(plan)
    for i in range(0, len(steps), 2):
        expression = _expression(start if i == 0 else str(value), steps[i:i + 2])
        value = _run_result(value, steps[i:i + 2])
        sentences.append(f"{expression} = {value}.")
    return sentences


def _equation(plan: Plan, pick) -> list[str]:
    start = f"{plan.packs[0]} * {plan.packs[1]}" if plan.packs else str(plan.start)
    return [pick(_EQUATION_OPENINGS), f"{_expression(start, plan.steps)} = {plan.answer}."]


def _check(plan: Plan) -> list[str]:
    """One equation that undoes the steps, last first, from the answer back to the start."""
    if not plan.steps:  # only the packs: undo the multiplication
        return [f"{plan.start} / {plan.packs[1]} = {plan.packs[0]}."]
    undo = [(_INVERSE[operation], operand) for operation, operand in reversed(plan.steps)]
    return [f"{_expression(str(plan.answer), undo)} = {plan.start}."]


def _expression(start: str, steps) -> str:
    """The steps applied to `start` left to right, with brackets where precedence needs them."""
    expression, additive = start, False
    for operation, operand in steps:
        if operation in "*/" and additive:
            expression, additive = f"({expression}) {operation} {operand}", False
        else:
            expression = f"{expression} {operation} {operand}"
            additive = additive or operation in "+-"
    return expression


def _runs(steps):
    """Maximal runs of + and - steps; each multiplication is a run of its own."""
    runs: list[list[tuple[str, int]]] = []
    for step in steps:
        if step[0] != "*" and runs and runs[-1][0][0] != "*":
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


def _run_result(value: int, steps) -> int:
    for operation, operand in steps:
        value = _apply(operation, value, operand)
    return value


def _apply(operation: str, left: int, right: int) -> int:
    if operation == "/":
        return left // right
    return {"+": left + right, "-": left - right, "*": left * right}[operation]


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------- the parser

_NAME = r"[A-Za-z][A-Za-z' ]*?"
_VALUE = r"\d+(?: groups of \d+)?"
_EQ = r"\S[^=]*? = -?\d+\."  # any equation; its arithmetic is the checker's business
_EQ1 = r"-?\d+ [-+*] \d+ = -?\d+\."  # a single operation
_SHAPES = {
    "steps": rf"(?:{_NAME} starts with {_VALUE}\.|{_NAME} has {_VALUE} at the start\."
             rf"|At the start, {_NAME} has {_VALUE}\.)(?: {_EQ1})+",
    "first-then": rf"First, {_NAME} has {_VALUE}\.(?: (?:Then|Next,|After that,) {_EQ1})+",
    "net": rf"Let's (?:combine|add up) the changes first\. {_NAME} starts with {_VALUE}\."
           rf"(?: (?:Gains: |Losses: )?(?:{_EQ}|\d+\.))+",
    "pairs": rf"Two steps (?:at a time|per line):(?: {_EQ})+",
    "equation": rf"(?:One|As one|All in one) equation: {_EQ}",
}
_COMPILED = {name: re.compile(shape) for name, shape in _SHAPES.items()}


def strategy_of(text: str) -> str:
    """The strategy a solution follows, judged by its shape before any check line and the
    answer mark, or "other". Its arithmetic is not judged here (see solution_is_consistent)."""
    body = text.rpartition(ANSWER_MARK)[0] if ANSWER_MARK in text else text
    body = body.partition(CHECK_MARK)[0].strip()
    for name, pattern in _COMPILED.items():
        if pattern.fullmatch(body) and _operations_fit(name, body):
            return name
    return OTHER


def _operations_fit(name: str, body: str) -> bool:
    """Operations per equation: net has Gains/Losses or a plain update; pairs at most two
    steps (three operations when it opens with packs)."""
    counts = [len(re.findall(r" [-+*/] ", left)) for left, _ in EQUATION.findall(body)]
    if not counts:
        return False
    if name == "net":
        return "Gains:" in body or "Losses:" in body or all(c == 1 for c in counts)
    if name == "pairs":
        return all(c <= 3 for c in counts[:1]) and all(c <= 2 for c in counts[1:])
    return True


def strategy_labels(data, texts: list[str]) -> list[str] | None:
    """Each text's strategy when the run used the built-in arithmetic task (no dataset);
    None otherwise, as other tasks' solutions have no strategies to name."""
    if getattr(data, "dataset", None):
        return None
    return [strategy_of(text) for text in texts]
