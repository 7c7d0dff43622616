"""Final-answer extraction from model text, plus a cheap exact check for plain numbers.

    extract_boxed("so \\boxed{\\frac{1}{2}}.")   -> "\\frac{1}{2}"
    extract_hash_answer("... #### 1,234")         -> "1234"
    extract_answer(text, style="auto")            -> boxed first, then ####
    normalize_number("1,000.50")                  -> "2001/2"

Symbolic equivalence (fractions vs decimals, sets, intervals) belongs to `mathcheck`, which
calls math-verify; `exact_match` here only handles integers, decimals and simple fractions.
"""

import re
from fractions import Fraction
from typing import Literal

AnswerStyle = Literal["auto", "boxed", "hash"]

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_SLASH = re.compile(r"^(-?\d+)\s*/\s*(-?\d+)$")
_DECIMAL = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)$")


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the brace closing the group opened just before `start`, or None if unclosed.

    Escaped braces (\\{ and \\}) are literal characters and do not count.
    """
    depth = 1
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character, whatever it is
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last top-level \\boxed{...} or \\fbox{...}, braces balanced.

    Nested braces inside the box are kept. Returns None when there is no box, or when the
    last box is never closed (a truncated generation has no final answer).
    """
    found: str | None = None
    pos = 0
    while (m := _BOX_OPEN.search(text, pos)) is not None:
        end = _closing_brace(text, m.end())
        if end is None:
            return None
        found = text[m.end() : end].strip()
        pos = end + 1  # a box nested inside this one is not a separate answer
    return found


def extract_hash_answer(text: str) -> str | None:
    """GSM8K style: the rest of the line after the last '####', stripped.

    Thousands separators in numbers are removed ("1,234" -> "1234") and a trailing full stop
    dropped. Returns None when there is no '####' or nothing follows it.
    """
    _, sep, tail = text.rpartition("####")
    if not sep:
        return None
    answer = tail.strip().split("\n", 1)[0].strip()
    answer = _THOUSANDS_COMMA.sub("", answer).rstrip(".").strip()
    return answer or None


def extract_answer(text: str, style: AnswerStyle = "auto") -> str | None:
    """The final answer in `text`: 'boxed', 'hash' (####), or 'auto' (boxed, else ####)."""
    if style == "boxed":
        return extract_boxed(text)
    if style == "hash":
        return extract_hash_answer(text)
    if style == "auto":
        boxed = extract_boxed(text)
        return boxed if boxed is not None else extract_hash_answer(text)
    raise ValueError(f"unknown answer style {style!r}; expected 'auto', 'boxed' or 'hash'")


def _to_fraction(answer: str) -> Fraction | None:
    s = answer.strip().strip("$").strip()
    s = _THOUSANDS_COMMA.sub("", s).replace(" ", "").rstrip(".")
    s = s.removeprefix("+")
    if m := _FRAC.match(s):
        sign, num, den = m.groups()
        value = Fraction(int(num), int(den)) if int(den) != 0 else None
        return -value if (value is not None and sign) else value
    if m := _SLASH.match(s):
        num, den = m.groups()
        return Fraction(int(num), int(den)) if int(den) != 0 else None
    if _DECIMAL.match(s):
        return Fraction(s)
    return None


def normalize_number(answer: str) -> str | None:
    """Canonical form of a plain number, or None if `answer` is not one.

    Accepts integers, decimals, a/b and \\frac{a}{b}, with optional $...$, sign and thousands
    commas. Integers come back as "1000", other rationals in lowest terms as "p/q".
    """
    value = _to_fraction(answer)
    if value is None:
        return None
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def exact_match(prediction: str | None, gold: str) -> bool:
    """True when both are the same plain number, or (otherwise) the same stripped string."""
    if prediction is None:
        return False
    p, g = normalize_number(prediction), normalize_number(gold)
    if p is not None and g is not None:
        return p == g
    return prediction.strip() == gold.strip()
