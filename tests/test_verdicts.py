"""The README's verdict table: each rule of rsp_probe/claims/verdicts.py decides supported,
contradicted and inconclusive on hand-made intervals (table-driven); a paper claim whose
evidence is missing is inconclusive and says so; every evidence id exists in the committed
claims table; the README states exactly the verdicts its runs give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsp_probe.claims.core import Claim, ClaimsTable
from rsp_probe.claims.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    PAPER_CLAIMS,
    SUPPORTED,
    Above,
    AtMost,
    Decreases,
    LostWithout,
    PaperClaim,
    Within,
    render_table,
    verdicts,
)

ROOT = Path(__file__).resolve().parent.parent


def claim(name: str, value: float, low: float, high: float) -> Claim:
    return Claim(id=name, section="s", runs=("r",), statistic="mean", value=value,
                 template="{value}", ci_low=low, ci_high=high, n=10)


def decide(rule, *intervals) -> str:
    return rule.decide([claim(f"c{i}", *interval) for i, interval in enumerate(intervals)])


@pytest.mark.parametrize("rule, intervals, expected", [
    (Above(0.0), [(0.1, 0.05, 0.15), (0.2, 0.01, 0.3)], SUPPORTED),
    (Above(0.0), [(0.1, 0.05, 0.15), (0.0, -0.1, 0.1)], INCONCLUSIVE),
    (Above(0.0), [(0.1, 0.05, 0.15), (-0.2, -0.3, -0.1)], CONTRADICTED),
    (AtMost(0.05), [(0.0, -0.02, 0.03)], SUPPORTED),
    (AtMost(0.05), [(0.0, -0.1, 0.1)], INCONCLUSIVE),
    (AtMost(0.05), [(0.2, 0.1, 0.3)], CONTRADICTED),
    (Within(0.1), [(0.0, -0.05, 0.05), (0.01, -0.08, 0.09)], SUPPORTED),
    (Within(0.1), [(0.0, -0.05, 0.15)], INCONCLUSIVE),
    (Within(0.1), [(0.3, 0.2, 0.4)], CONTRADICTED),
    (Decreases((("a", "b"),)), [(1.0, 0.8, 1.2), (0.1, 0.05, 0.2)], SUPPORTED),
    (Decreases((("a", "b"),)), [(1.0, 0.5, 1.2), (0.7, 0.4, 0.9)], INCONCLUSIVE),
    (Decreases((("a", "b"),)), [(0.1, 0.05, 0.2), (1.0, 0.8, 1.2)], CONTRADICTED),
    (LostWithout("c", "r", "z", 0.01), [(0.2, 0.1, 0.3), (0.9, 0.8, 1.0), (0, 0, 0)],
     SUPPORTED),
    (LostWithout("c", "r", "z", 0.01), [(0.9, 0.8, 1.0), (0.92, 0.82, 1.02), (0, 0, 0)],
     CONTRADICTED),
    (LostWithout("c", "r", "z", 0.01), [(0.9, 0.8, 1.0), (0.92, 0.82, 1.02), (0.3, 0.2, 0.4)],
     INCONCLUSIVE),  # the control still attends to its slots: it tests nothing
])
def test_each_rule_decides_on_the_intervals(rule, intervals, expected):
    assert decide(rule, *intervals) == expected


def test_missing_evidence_is_inconclusive_and_named():
    table = ClaimsTable(claims=[claim("a", 0.1, 0.05, 0.15)], missing={})
    rows = {v.claim.name: v for v in verdicts(table)}
    lift = rows["early entropy lift"]
    assert lift.verdict == INCONCLUSIVE and "entropy.lift.early.k4" in lift.missing
    assert "not measured: `entropy.lift.early.k4`" in render_table(table)


def test_the_rules_are_fixed_data_before_any_run():
    """Every paper claim names its evidence by id and a rule with its threshold; the rows
    cover the paper's qualitative claims listed in the README issue."""
    names = [c.name for c in PAPER_CLAIMS]
    assert names == ["early entropy lift", "early branching", "dilution of the influence",
                     "late commitment", "Pass@N widened with temperature",
                     "trained soft prompts no better",
                     "attention absorbs the random positions"]
    for paper in PAPER_CLAIMS:
        assert isinstance(paper, PaperClaim) and paper.evidence
        assert set(paper.rule.ids(paper)) <= set(paper.evidence)


def test_every_evidence_id_is_a_committed_claim():
    committed = {c["id"] for c in json.loads(
        (ROOT / "figures" / "claims.json").read_text())["claims"]}
    for paper in PAPER_CLAIMS:
        assert set(paper.evidence) <= committed, paper.name


def test_the_readme_states_the_verdicts_of_the_committed_claims():
    """The README's table against figures/claims.json (claims --check recomputes it from the
    runs themselves; tests/test_claims.py runs that)."""
    records = json.loads((ROOT / "figures" / "claims.json").read_text())["claims"]
    keys = ("id", "section", "runs", "statistic", "value", "template", "ci_low", "ci_high",
            "n", "fields", "family")
    table = ClaimsTable([Claim(**{**{k: r[k] for k in keys}, "runs": tuple(r["runs"])})
                         for r in records], missing={})
    readme = (ROOT / "README.md").read_text()
    for line in render_table(table).splitlines():
        assert line in readme
    assert len(readme.splitlines()) <= 250
