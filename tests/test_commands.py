"""The mechanism commands on a tiny real checkpoint: influence, branching, attention, passk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rsp_probe
from rsp_probe.analysis.summaries import describe
from rsp_probe.cli import main
from rsp_probe.probes.influence import influence_values
from rsp_probe.rsp import build_inputs_embeds
from rsp_probe.runs import open_run

SMALL = dict(n_prompts=2, max_new_tokens=10, quiet=True)


def _probe(run, name):
    steps = run.steps
    return steps[steps["probe"] == name]


def test_influence_is_exactly_zero_at_k0(loaded_qwen2, tmp_path):
    run, _ = rsp_probe.influence(model=loaded_qwen2, rsp_tokens=(0, 3), samples=2,
                                 out=str(tmp_path / "r"), **SMALL)
    zero = run.trajectories.query("condition == 'k0'")["id"]
    steps = run.steps[run.steps["trajectory"].isin(zero)]
    for name in ("kl", "tv", "entropy_delta"):
        assert (steps[steps["probe"] == name]["value"] == 0).all()
    assert (steps[steps["probe"] == "top1_agree"]["value"] == 1).all()
    with_rsp = run.steps[run.steps["trajectory"].isin(
        run.trajectories.query("condition == 'k3'")["id"])]
    assert (with_rsp[with_rsp["probe"] == "kl"]["value"] > 0).any()


def test_influence_equals_two_independent_forward_passes(loaded_qwen2, tiny_qwen2, tmp_path):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), attn_implementation="eager")
    run, _ = rsp_probe.influence(model=loaded_qwen2, rsp_tokens=(3,), samples=2,
                                 out=str(tmp_path / "r"), **SMALL)
    vectors = run.rsp_vectors()
    table = loaded_qwen2.embedding_table
    for record in run.trajectories.query("condition == 'k3'").to_dict("records"):
        continuation = torch.tensor(record["generated_token_ids"])
        prompt = record["prompt_token_ids"]
        slots = list(prompt)
        for position in record["rsp_positions"]:
            slots.insert(position, -1)
        base_in = torch.cat([table[torch.tensor(prompt)], table[continuation[:-1]]])
        rsp_in = torch.cat([build_inputs_embeds(table, slots, record["rsp_positions"],
                                                torch.from_numpy(vectors[record["id"]])),
                            table[continuation[:-1]]])
        with torch.no_grad():
            base = hf(inputs_embeds=base_in[None]).logits[0, len(prompt) - 1:]
            rsp = hf(inputs_embeds=rsp_in[None]).logits[0, len(slots) - 1:]
        expected = influence_values(base, rsp)
        for name, values in expected.items():
            measured = _probe(run, name).query("trajectory == @record['id']")
            np.testing.assert_allclose(measured.sort_values("step")["value"], values.numpy(),
                                       atol=1e-5)


def test_branching_with_one_sample_has_one_prefix(loaded_qwen2, tmp_path):
    _, frame = rsp_probe.branching(model=loaded_qwen2, samples=1, out=str(tmp_path / "r"),
                                   **SMALL)
    fractions = frame[frame["record"] == "distinct_prefix_fraction"]
    assert len(fractions) > 0 and (fractions["count"] == 1).all()


def test_greedy_with_a_fixed_draw_gives_identical_trajectories(loaded_qwen2, tmp_path):
    run, frame = rsp_probe.branching(model=loaded_qwen2, samples=4, fixed_draw=True,
                                     conditions=("greedy+rsp",), out=str(tmp_path / "r"),
                                     **SMALL)
    for _, group in run.trajectories.groupby("prompt_id"):
        assert len({tuple(t) for t in group["generated_token_ids"]}) == 1
    fractions = frame[frame["record"] == "distinct_prefix_fraction"]
    assert (fractions["value"] == 0.25).all()


def test_fresh_draws_branch_under_greedy_decoding(loaded_qwen2, tmp_path):
    run, _ = rsp_probe.branching(model=loaded_qwen2, samples=4, conditions=("greedy+rsp",),
                                 out=str(tmp_path / "r"), **SMALL)
    distinct = run.trajectories.groupby("prompt_id")["generated_token_ids"].apply(
        lambda lists: len({tuple(t) for t in lists}))
    assert (distinct > 1).any()


def test_attention_writes_dilution_fits_and_show_reprints(loaded_qwen2, tmp_path, capsys):
    run, summary = rsp_probe.attention(model=loaded_qwen2, rsp_tokens=(2, 5), samples=2,
                                       out=str(tmp_path / "r"), **SMALL)
    fits = run.json("dilution_fit.json")
    assert set(fits) == {"k2", "k5"}
    assert set(fits["k2"]["layers"]) == {"-1", "0", "1"}
    assert set(summary["layer"]) == {-1, 0, 1}
    assert main(["show", str(run.path)]) == 0
    shown = capsys.readouterr().out
    assert shown.strip() == describe(open_run(run.path)).strip()
    assert "dilution share" in shown
    _check_budget(run)


def _check_budget(run):
    """The five groups sum to 1 per (trajectory, step, layer, head); budget_rsp is the
    rsp_attention probe; each cell's split matches theory.logit_decomposition."""
    from rsp_probe.analysis.budget import budget_frame
    from rsp_probe.theory.budget import logit_decomposition

    frame = budget_frame(run)
    np.testing.assert_allclose(frame[["rsp", "bos", "prompt", "cue", "generated"]].sum(axis=1),
                               1.0, atol=1e-5)
    assert (frame["cue"] > 0).any() and (frame["generated"] > 0).any()
    mass = run.steps[run.steps["probe"] == "rsp_attention"].set_index(
        ["trajectory", "step", "layer", "head"])["value"]
    keys = pd.MultiIndex.from_frame(frame[["trajectory", "step", "layer", "head"]])
    np.testing.assert_allclose(frame["rsp"].to_numpy(), mass.loc[keys].to_numpy(), atol=1e-7)
    cell = frame[(frame["layer"] == 1) & (frame["head"] == 0)]
    cell = cell[cell["trajectory"] == cell["trajectory"].iloc[0]]
    parts = logit_decomposition(cell["rsp"].to_numpy(float), int(cell["k"].iloc[0]),
                                int(cell["n"].iloc[0]), cell["step"].to_numpy())
    for name in ("delta", "total", "dilution", "suppression"):
        np.testing.assert_allclose(cell[name], parts[name], rtol=1e-9)


def test_passk_table_matches_the_trajectories(loaded_qwen2, tmp_path):
    run, table = rsp_probe.passk(model=loaded_qwen2, samples=4, pass_k=(1, 2, 4),
                                 conditions=("temp", "rsp+temp", "greedy"),
                                 out=str(tmp_path / "r"), **SMALL)
    assert set(table["condition"]) == {"temp", "rsp+temp", "greedy"}
    greedy = run.trajectories.query("condition == 'greedy'")
    assert len(greedy) == 2  # greedy without an RSP is deterministic: one trajectory each
    accuracy = run.trajectories.groupby("condition")["correct"].mean()
    for row in table[table["k"] == 1].itertuples():
        assert row.pass_at_k == pytest.approx(accuracy[row.condition])


@pytest.mark.parametrize("argv, message", [
    (["passk", "--conditions", "temp,bogus"], "unknown condition 'bogus'"),
    (["branching", "--samples", "0"], "--samples must be >= 1"),
    (["branching", "--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["passk", "--n", "4", "--pass-k", "0,2"], "--pass-k values must be >= 1"),
    (["attention", "--rsp-tokens", "0"], "needs at least one --rsp-tokens value above 0"),
])
def test_bad_command_input_is_one_line_and_exit_2(argv, message, tiny_qwen2, tmp_path, capsys):
    code = main([*argv, "--model", str(tiny_qwen2), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r" / "DONE").exists()
