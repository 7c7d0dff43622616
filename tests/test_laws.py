"""The laws behind one registry (rsp_probe.laws): every built-in law draws and describes itself
exactly as the code before the Law protocol did, declares what it blocks or adds, and is read
by --help without torch.

tests/data/law_draws.json was written by the code at commit 5f3bde0 (before rsp_probe.laws):
per law and sigma scale, fit_law on the default model (the tokenizer's special ids and length,
the committed default soft prompt), describe(), and for two seeds a draw of 16 vectors
(neftune: controls.prompt_noise over 20 input positions, alpha from the law) summarised by
its first six values and its projection on fixed normal weights (numpy default_rng(0)).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsp_probe.registry import LAWS

REFERENCE = json.loads((Path(__file__).parent / "data" / "law_draws.json").read_text())
# a draw is computed in float64 and rounded once to float32: two CPUs (or a float64 sum in
# another order) differ by at most one float32 rounding, a relative 2^-23 per value
ONE_ROUNDING = 2.0**-23
MOMENT_RTOL = 1e-9  # float64 moments of a 1.6M-entry table, summed in chunks
BUILTIN = ("gaussian", "per-dim", "tokens", "mean", "pc-in", "pc-out", "positions-only",
           "neftune", "trained", "trained+noise", "trained-fit")


@pytest.fixture(scope="module")
def fitting(default_model):
    """What fit_law needs beyond the law's name, as the experiments pass it."""
    from rsp_probe.soft_prompts.io import load_soft_prompt

    tokenizer = default_model.tokenizer
    return default_model.embedding_table, {
        "special_ids": set(tokenizer.all_special_ids), "n_real_tokens": len(tokenizer),
        "prompt": load_soft_prompt("default")[0]}


def _assert_same_describe(now: dict, then: dict) -> None:
    assert list(now) == list(then)  # the same keys in the same order: the same JSON text
    for key, value in then.items():
        if isinstance(value, float) and key != "alpha":
            np.testing.assert_allclose(now[key], value, rtol=MOMENT_RTOL, err_msg=key)
        else:
            assert now[key] == value and type(now[key]) is type(value), key


@pytest.mark.parametrize("case", list(REFERENCE))
def test_builtin_laws_draw_and_describe_as_before(case, fitting):
    from rsp_probe.rsp import draw_rsp, fit_law

    kind, scale = case.split("@")
    table, context = fitting
    law = fit_law(table, kind, float(scale), **context)
    _assert_same_describe(law.describe(), REFERENCE[case]["describe"])
    for reference in REFERENCE[case]["draws"]:
        n = reference["shape"][0]  # 16 slots, or neftune's 20 input positions
        vectors = draw_rsp(law, n, reference["seed"])
        assert vectors.dtype.is_floating_point and vectors.dtype.itemsize == 4
        values = vectors.double().numpy()
        assert list(values.shape) == reference["shape"]
        head = np.array(reference["head"])
        assert np.all(np.abs(values.reshape(-1)[:6] - head) <= ONE_ROUNDING * np.abs(head))
        weights = np.random.default_rng(0).standard_normal(values.shape)
        bound = ONE_ROUNDING * float(np.abs(weights * values).sum())
        assert abs(float((weights * values).sum()) - reference["projection"]) <= bound


def test_a_changed_draw_is_caught(fitting):
    """The comparison can fail: the Gaussian law at another seed misses the reference."""
    from rsp_probe.rsp import draw_rsp, fit_law

    table, context = fitting
    reference = REFERENCE["gaussian@1"]["draws"][0]
    values = draw_rsp(fit_law(table, "gaussian", **context), 16, reference["seed"] + 1)
    weights = np.random.default_rng(0).standard_normal(reference["shape"])
    moved = abs(float((weights * values.double().numpy()).sum()) - reference["projection"])
    assert moved > 1e3 * ONE_ROUNDING * float(np.abs(weights * values.double().numpy()).sum())


def test_every_builtin_is_registered_in_order_and_declares_itself():
    assert tuple(LAWS.names()[:len(BUILTIN)]) == BUILTIN
    laws = LAWS.entries()
    for name in BUILTIN:
        assert laws[name].name == name and laws[name].help, name
    assert [n for n in BUILTIN if not laws[n].slots] == ["neftune"]
    assert [n for n in BUILTIN if laws[n].blocks_rsp_keys] == ["positions-only"]
    assert [n for n in BUILTIN if laws[n].needs_soft_prompt] == [
        "trained", "trained+noise", "trained-fit"]
    assert [n for n in BUILTIN if not laws[n].attends_to_slots()] == ["positions-only",
                                                                      "neftune"]


def test_a_slotless_law_draws_one_vector_per_input_position(fitting):
    """neftune: draw(L) is the noise of L input positions, draw(0) is empty (k = 0)."""
    from rsp_probe.controls import prompt_noise
    from rsp_probe.rsp import fit_law

    table, context = fitting
    law = fit_law(table, "neftune", **context)
    assert tuple(law.draw(0, seed=3).shape) == (0, law.d_model)
    np.testing.assert_array_equal(law.draw(9, seed=3).numpy(),
                                  prompt_noise(9, law.d_model, law.alpha, seed=3).numpy())


def test_the_law_declarations_import_no_torch():
    """--help lists the laws with their help lines from the declarations alone."""
    code = ("import json, sys\nfrom rsp_probe.registry import LAWS\n"
            "laws = LAWS.entries()\n"
            "print(json.dumps([[n, law.help, law.slots, law.blocks_rsp_keys,\n"
            "                   law.needs_soft_prompt] for n, law in laws.items()]\n"
            "                 + ['torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    *declarations, torch_imported = json.loads(done.stdout)
    assert [row[0] for row in declarations][:len(BUILTIN)] == list(BUILTIN)
    assert torch_imported is False
