"""The unit every task and dataset yields: one question with its reference answer."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    id: str  # stable across runs: the same problem always gets the same id
    question: str  # the text the model sees (no answer cue)
    answer: str  # the reference final answer, as a string ("14", "\\frac{1}{2}")
    solution: str | None = None  # a reference chain of thought, where the task has one
