"""Answer checking for the arithmetic task, whose solutions end in "#### <integer>".

extract_answer("... 19 - 5 = 14. #### 14")      -> "14"
is_correct("... #### 014.", "14")               -> True
solution_is_consistent("Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14") -> True
"""

import operator
import re

ANSWER_MARK = "####"

_INTEGER = re.compile(r"-?\d+")
# "a op b = c"; the lookbehind stops "112 + 7" from being read as "12 + 7".
_EQUATION = re.compile(r"(?<!\d)(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")
_OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
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


def solution_is_consistent(solution: str) -> bool:
    """Whether a chain of "a op b = c." equations is right and ends in its own "#### c".

    Every equation must evaluate correctly, each one must start from the previous result,
    every "=" must belong to such an equation, and the final answer must be the last result.
    """
    final = extract_answer(solution)
    body = solution.rpartition(ANSWER_MARK)[0]
    equations = _EQUATION.findall(body)
    if final is None or not equations or len(equations) != body.count("="):
        return False
    previous: int | None = None
    for left, symbol, right, result in equations:
        if previous is not None and int(left) != previous:
            return False
        if _OPERATIONS[symbol](int(left), int(right)) != int(result):
            return False
        previous = int(result)
    return int(final) == previous
