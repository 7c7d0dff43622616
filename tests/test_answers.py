"""Table-driven answer extraction."""

import pytest

from rsp_probe.tasks.answers import (
    exact_match,
    extract_answer,
    extract_boxed,
    extract_hash_answer,
    normalize_number,
)

BOXED = [
    ("so the answer is \\boxed{42}.", "42"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{\\frac{\\sqrt{2}}{\\sqrt{3}}} done", "\\frac{\\sqrt{2}}{\\sqrt{3}}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("\\fbox{7}", "7"),
    ("\\boxed{3} and finally \\fbox{x^{2}}", "x^{2}"),
    ("\\boxed {5}", "5"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{\\boxed{9}}", "\\boxed{9}"),
    ("\\boxed{3} then truncated \\boxed{4", None),
    ("no box here", None),
    ("", None),
]

HASH = [
    ("She has 3 apples.\n#### 3", "3"),
    ("#### 1,234", "1234"),
    ("#### 1,234,567.5", "1234567.5"),
    ("#### 7\n#### 8", "8"),
    ("#### 42.\n\nQuestion: next", "42"),
    ("####   -5  ", "-5"),
    ("#### ", None),
    ("no hashes", None),
]

AUTO = [
    ("\\boxed{2}\n#### 3", "auto", "2"),
    ("#### 3", "auto", "3"),
    ("\\boxed{2}\n#### 3", "hash", "3"),
    ("#### 3", "boxed", None),
    ("nothing", "auto", None),
]

NUMBERS = [
    ("42", "42"),
    ("1,000", "1000"),
    ("$3.50$", "7/2"),
    ("-0.5", "-1/2"),
    ("\\frac{2}{4}", "1/2"),
    ("-\\dfrac{3}{1}", "-3"),
    ("6/3", "2"),
    ("+7.", "7"),
    (".25", "1/4"),
    ("x+1", None),
    ("1/0", None),
]


@pytest.mark.parametrize(("text", "expected"), BOXED)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(("text", "expected"), HASH)
def test_extract_hash_answer(text, expected):
    assert extract_hash_answer(text) == expected


@pytest.mark.parametrize(("text", "style", "expected"), AUTO)
def test_extract_answer(text, style, expected):
    assert extract_answer(text, style) == expected


def test_extract_answer_rejects_unknown_style():
    with pytest.raises(ValueError):
        extract_answer("x", "last-line")


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("1,000", "1000", True),
        ("0.5", "\\frac{1}{2}", True),
        ("3", "4", False),
        (None, "4", False),
        ("x+1", " x+1 ", True),
        ("x+1", "1+x", False),
    ],
)
def test_exact_match(prediction, gold, expected):
    assert exact_match(prediction, gold) is expected
