"""Read a final answer from model text the way math-verify reads it, and compare it with a
reference. No timeouts here: `mathcheck` runs these functions in worker processes it can kill.

    grade_text("\\{1,2\\}", "so \\boxed{1} and \\boxed{2}")   -> ("1,2", True)
    grade_text("16386.20", "worth $\\boxed{\\$16,\\!386.20}$")  -> ("16,386.20", True)
    grade_text("12", "... #### 12\\n\\nQuestion: 3+4? Answer: 7")  -> ("12", True)

The text is read by math-verify's own `parse` with the configuration of its regression suite:
LaTeX with boxed answers first, then plain expressions. So several boxes are one answer (a set),
`\\$` inside a box is a dollar sign, and "The final answer is $10,455$. I hope it is correct."
is read as math-verify reads it. The answer recorded is the string math-verify extracted, after
its normalisation (\\dfrac -> \\frac, 0.5 -> \\frac{1}{2}, 16,\\!386.20 -> 16,386.20).

The project's `####` convention is kept where it adds something: in text with no box, the
answer on the `####` line wins over whatever the model wrote after it (a small model often runs
on into a new "Question: ... Answer: 7")."""

from __future__ import annotations

import re
from functools import lru_cache

from rsp_probe.tasks.answers import extract_hash_answer

# A math delimiter: an unescaped $ (\$ is a dollar sign), a box, \( or \[.
_DELIMITER = re.compile(r"(?<!\\)\$|\\boxed|\\fbox|\\\(|\\\[")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


@lru_cache(maxsize=1)
def extraction_config() -> tuple:
    """math-verify's extraction targets, as its own test suite uses them."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _parse(text: str) -> list:
    from math_verify import parse

    # raise_on_error: an unexpected failure inside the parser is a checker failure (reported as
    # such), not "no answer"; a LaTeX string sympy cannot read still comes back as a string.
    return parse(text, extraction_config(), parsing_timeout=None, raise_on_error=True)


def as_answer(text: str) -> str:
    """Wrap a bare answer in \\boxed{} so math-verify reads it as LaTeX ("\\sqrt{2}/2").

    Text that already carries math delimiters or a box is left as it is.
    """
    return text if _DELIMITER.search(text) else f"\\boxed{{{text}}}"


def read_bare(answer: str) -> list:
    """math-verify's reading of an answer written on its own ("1/2", "\\{1,2\\}", "$x^2$")."""
    wrapped = as_answer(answer)
    parsed = _parse(wrapped)
    if not parsed and wrapped != answer:
        parsed = _parse(answer)  # e.g. prose: "the answer is 42"
    return parsed


@lru_cache(maxsize=4096)
def read_reference(gold: str) -> tuple:
    """The reference answer, parsed once per worker: every sample of a problem shares it."""
    parsed = read_bare(gold)
    if not parsed:
        raise ValueError(f"the reference answer {gold[:80]!r} could not be read")
    return tuple(parsed)


def read_answer(text: str) -> tuple[list, str | None]:
    """(math-verify's parsed answer, the answer string to record) for one model text.

    The parsed list is empty, and the string None, when the text holds no answer.
    """
    if _BOX.search(text) is None:
        hashed = extract_hash_answer(text)
        if hashed is not None:
            text = as_answer(hashed)
    parsed = _parse(text)
    if not parsed:
        return [], None
    shown = parsed[-1] if isinstance(parsed[-1], str) else str(parsed[0])
    return parsed, shown.strip() or None


def _verify(gold: tuple, parsed: list) -> bool:
    from math_verify import verify

    # An error inside a sympy comparison is math-verify's "not equal" (raise_on_error=False):
    # treating it as ungraded would drop wrong answers from the accuracy and bias it upwards.
    return bool(verify(list(gold), parsed, timeout_seconds=None))


def grade_text(gold: str, text: str) -> tuple[str | None, bool]:
    """(extracted answer, whether it equals `gold`) for one model text. Raises when the
    reference cannot be read or the parser fails; never times out on its own."""
    gold_parsed = read_reference(gold)
    parsed, shown = read_answer(text)
    if not parsed:
        return None, False
    return shown, _verify(gold_parsed, parsed)


def compare_answers(gold: str, prediction: str) -> tuple[None, bool]:
    """Equivalence of two bare answers (`prediction` already extracted): (None, verdict)."""
    parsed = read_bare(prediction) if prediction.strip() else []
    if not parsed:
        return None, False
    return None, _verify(read_reference(gold), parsed)
