"""Answer checking for the arithmetic task, whose solutions end in "#### <integer>".

extract_answer("... 19 - 5 = 14. #### 14")      -> "14"
is_correct("... #### 014.", "14")               -> True
solution_is_consistent("Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14") -> True
solution_is_consistent("One equation: (12 + 7) * 2 - 5 = 33. #### 33")           -> True

A solution may follow any of the task's strategies (see rsp_probe.tasks.strategies): one
equation per step, several operations per equation, a whole-problem expression with
parentheses, and an optional "Check:" line that works backwards (so it may divide).
"""

import re

ANSWER_MARK = "####"
CHECK_MARK = "Check"

_INTEGER = re.compile(r"-?\d+")
# An equation: integers joined by + - * / with optional parentheses, then "= integer".
# The lookbehind stops "112 + 7" from being read as "12 + 7".
_TERM = r"\(*-?\d+\)*"
EQUATION = re.compile(rf"(?<![\d)])({_TERM}(?: [-+*/] {_TERM})*) = (-?\d+)")
_TOKEN = re.compile(r"\d+|[-+*/()]")
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "twice": 2}  # fmt: skip
_TRAILING_PUNCTUATION = ".,;:!?"


def extract_answer(text: str) -> str | None:
    """The integer that opens the text after the last "####", in canonical form ("014" -> "14").

    None when there is no "####" or its first token is not an integer ("14.5", "fourteen").
    A sentence's closing punctuation is allowed: "#### 14." gives "14".
    """
    _, mark, tail = text.rpartition(ANSWER_MARK)
    tokens = tail.split()
    if not mark or not tokens:
        return None
    token = tokens[0].rstrip(_TRAILING_PUNCTUATION)
    if _INTEGER.fullmatch(token) is None:
        return None
    return str(int(token))


def is_correct(text: str, answer: str) -> bool:
    """Whether the model text's final answer equals the reference integer `answer`."""
    if _INTEGER.fullmatch(answer.strip()) is None:
        raise ValueError(f"the arithmetic task's answers are integers, got {answer!r}")
    predicted = extract_answer(text)
    return predicted is not None and int(predicted) == int(answer)


def evaluate(expression: str) -> int | None:
    """The integer value of "a op b op (c op d) ..." with the usual precedence; None when it
    is malformed or a division is not exact (the task never divides with a remainder)."""
    tokens = _TOKEN.findall(expression)
    if "".join(tokens) != expression.replace(" ", ""):
        return None
    try:
        value, rest = _sum(tokens)
    except (IndexError, ValueError, ZeroDivisionError):
        return None
    return value if not rest else None


def _sum(tokens):
    value, tokens = _product(tokens)
    while tokens and tokens[0] in "+-":
        right, rest = _product(tokens[1:])
        value, tokens = (value + right if tokens[0] == "+" else value - right), rest
    return value, tokens


def _product(tokens):
    value, tokens = _atom(tokens)
    while tokens and tokens[0] in "*/":
        right, rest = _atom(tokens[1:])
        if tokens[0] == "/" and value % right:
            raise ValueError("inexact division")
        value, tokens = (value * right if tokens[0] == "*" else value // right), rest
    return value, tokens


def _atom(tokens):
    if tokens[0] == "(":
        value, rest = _sum(tokens[1:])
        if rest[0] != ")":
            raise ValueError("unbalanced")
        return value, rest[1:]
    if tokens[0] == "-":
        value, rest = _atom(tokens[1:])
        return -value, rest
    return int(tokens[0]), tokens[1:]


def solution_is_consistent(solution: str, question: str | None = None) -> bool:
    """Whether a solution's arithmetic is right and ends in its own "#### answer".

    Every equation must evaluate correctly and every "=" must belong to one; the answer must
    be the last result before the optional "Check:" part, and a check must start from the
    answer. With the question, every operand must also be a number the question states (in
    digits or words) or a result the solution computed earlier: a chain can then not jump.
    """
    final = extract_answer(solution)
    body = solution.rpartition(ANSWER_MARK)[0]
    main, _, check = body.partition(CHECK_MARK)
    main_equations, check_equations = EQUATION.findall(main), EQUATION.findall(check)
    if final is None or not main_equations:
        return False
    if len(main_equations) != main.count("=") or len(check_equations) != check.count("="):
        return False
    if any(evaluate(left) != int(result) for left, result in main_equations + check_equations):
        return False
    if int(main_equations[-1][1]) != int(final):
        return False
    if check_equations and _operands(check_equations[0][0])[0] != int(final):
        return False
    return question is None or _operands_are_known(main_equations + check_equations, question)


def _operands(expression: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", expression)]


def _operands_are_known(equations, question: str) -> bool:
    known = {int(n) for n in re.findall(r"\d+", question)}
    known |= {v for word, v in _NUMBER_WORDS.items() if re.search(rf"\b{word}\b", question, re.I)}
    for left, result in equations:
        if not set(_operands(left)) <= known:
            return False
        known.add(int(result))
    return True
