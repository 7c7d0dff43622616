"""The model card's targets: each holds or says by how much it misses, from the numbers."""

import pytest

from rsp_probe.toy.card_text import quality_table, target_checks, targets


def row(mean, low=None, high=None):
    value = {"mean": mean, "n_problems": 200}
    if low is not None:
        value.update(ci_low=low, ci_high=high)
    return value


def results(**overrides):
    values = {
        "greedy accuracy": row(0.70, 0.64, 0.76),
        "median per-token entropy at T=1 (nats)": row(0.02, 0.01, 0.03),
        "share of tokens above 0.5 nats at T=1": row(0.12, 0.10, 0.14),
        "mean entropy of steps 1-3 at T=1 (nats)": row(0.8, 0.7, 0.9),
        "distinct strategies among 8 samples at T=1": row(3.4, 3.2, 3.6),
        "pass@8 at T=1 (n=16)": row(0.90, 0.86, 0.94),
        "accuracy at T=1 (n=16)": row(0.60, 0.55, 0.65),
        "4 random real tokens after the question (greedy)": row(0.68, 0.62, 0.74),
        "robustness ratio (noise / clean greedy)": row(0.68 / 0.70),
        "Gaussian RSP k=16, prefix (greedy)": row(0.3, 0.2, 0.4),
        "accuracy per strategy": {
            "steps": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "share": 0.4, "n_samples": 400},
            "equation": {"mean": 0.3, "ci_low": 0.2, "ci_high": 0.4, "share": 0.1,
                         "n_samples": 100},
            "pairs": {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "share": 0.01, "n_samples": 5},
            "net": {"mean": float("nan"), "share": 0.0, "n_samples": 0},
        },
    }
    values.update(overrides)
    return values


def test_all_targets_hold_on_good_numbers():
    lines = targets(results())
    assert len(lines) == 10 and all(line.startswith("- holds") for line in lines)


def test_the_strategy_spread_ignores_strategies_with_few_samples():
    spread = dict((text, measured) for text, measured, _, _ in target_checks(results()))
    assert spread["strategies' accuracies differ, at least one pair by >= 0.1"] == \
        pytest.approx(0.5)  # steps 0.8 - equation 0.3; pairs (5 samples) left out


@pytest.mark.parametrize("name, value, target, miss", [
    ("greedy accuracy", 0.50, "greedy accuracy >= 0.55", 0.05),
    ("distinct strategies among 8 samples at T=1", 2.1, "distinct strategies", 0.4),
    ("share of tokens above 0.5 nats at T=1", 0.02, "share of tokens above 0.5 nats >= 5%",
     0.03),
    ("mean entropy of steps 1-3 at T=1 (nats)", 0.35, "mean entropy of steps 1-3", 0.15),
])
def test_a_missed_target_says_by_how_much(name, value, target, miss):
    lines = targets(results(**{name: row(value, value, value)}))
    failed = [line for line in lines if line.startswith("- DOES NOT HOLD")]
    assert len(failed) == 1 and target in failed[0]
    assert f"misses by {miss:.3f}" in failed[0]


def test_pass8_is_judged_against_greedy_plus_a_tenth():
    lines = targets(results(**{"pass@8 at T=1 (n=16)": row(0.75, 0.7, 0.8)}))
    assert any("DOES NOT HOLD: pass@8" in line and "misses by 0.050" in line for line in lines)


def test_the_table_has_every_row_and_the_strategies():
    table = quality_table(results())
    for name in results():
        assert f"| {name} |" in table or name == "accuracy per strategy"
    assert "| equation | 0.100 | 0.300 | [0.200, 0.400] |" in table
    assert "| net | 0.000 | - |" in table


def test_one_strategy_alone_cannot_show_a_spread():
    only = {"steps": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "share": 1.0,
                      "n_samples": 400}}
    lines = targets(results(**{"accuracy per strategy": only}))
    assert any("DOES NOT HOLD: strategies'" in line and "not measurable" in line
               for line in lines)
