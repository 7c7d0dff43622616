"""Our grading path against math-verify's own regression cases.

tests/data/math_verify_boxed_cases.json holds every case of math-verify's test suite (commit
5d148cf; see the file's "source") whose prediction contains a \\boxed answer: 95 of them. Each
prediction is graded as a model text would be (`grade_texts`: read, then check against the
gold) and must give math-verify's own expected verdict. Before issue #17, 79 of 95 agreed.
"""

import json
from pathlib import Path

import pytest

from rsp_probe.tasks.mathcheck import grade_texts

CASES = json.loads((Path(__file__).parent / "data" / "math_verify_boxed_cases.json").read_text())
TABLE = CASES["cases"]


@pytest.fixture(scope="module")
def results():
    return grade_texts([(c["gold"], c["pred"]) for c in TABLE], timeout_s=60.0, workers=2)


def test_the_table_is_the_whole_selection():
    assert len(TABLE) == 95 and all("\\boxed" in c["pred"] for c in TABLE)


@pytest.mark.parametrize("index", range(len(TABLE)),
                         ids=[f"{c['source'].split('::')[1]}-{i}" for i, c in enumerate(TABLE)])
def test_agrees_with_math_verify(results, index):
    case = TABLE[index]
    assert results[index].graded, results[index].error
    assert results[index].correct == case["expected"], (case["gold"], case["pred"][-120:])
