"""The paper-scale plan (fixed in code, sized by the user), its dry run, and the sampler's
halving of a batch that runs out of device memory (an OOM injected through _generate_batch)."""

from __future__ import annotations

import logging

import pytest
import torch

from rsp_probe import sampler
from rsp_probe.cli import main
from rsp_probe.experiments.paper import PAPER_N, PaperSetting, paper_plan
from rsp_probe.experiments.reproduce import PLAN
from rsp_probe.rsp import draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.prompts import encode_plain


def test_the_paper_plan_is_fixed_and_sized_by_the_user():
    plan = paper_plan(PaperSetting(dataset="org/bench", split="test", limit=5,
                                   max_new_tokens=1500))
    assert {name for name, _, _ in plan} == {"entropy", "attention", "branching", "passk-k4",
                                             "passk-k16"}
    for _, command, options in plan:
        assert (options["dataset"], options["n_prompts"], options["max_new_tokens"]) == (
            "org/bench", 5, 1500)
        if command == "passk":
            assert options["samples"] == PAPER_N == max(options["pass_k"]) == 64
    assert all(options["max_new_tokens"] == 96 for _, command, options in PLAN
               if command == "entropy")  # the default plan stays the default model's


def test_dry_run_prints_the_plan_for_a_qwen2_checkpoint(tiny_qwen2, capsys):
    assert main(["reproduce", "--plan", "paper", "--model", str(tiny_qwen2), "--dry-run",
                 "--limit", "1", "--max-new-tokens", "4", "--batch-size", "8"]) == 0
    text = capsys.readouterr().out
    assert "Pass@64" in text and "token positions" in text
    # passk: temp (64) + rsp+temp (64) + greedy+rsp (64) + greedy (1) trajectories
    passk_line = next(line for line in text.splitlines() if line.startswith("passk-k16"))
    assert passk_line.split()[1:3] == ["193", f"{193 * 4:,}"]


@pytest.mark.parametrize("argv,message", [
    (["reproduce", "--dry-run"], "belong to --plan paper"),
    (["reproduce", "--plan", "paper", "--limit", "0", "--dry-run"], "--limit must be >= 1"),
])
def test_reproduce_misuse_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _jobs(model, n=5):
    law = fit_law(model.embedding_table)
    questions = ["Mia has 12 pencils.", "Leo bakes 3 trays.", "How many?", "Add 4 and 5.", "Go."]
    jobs = []
    for i in range(n):
        ids, positions = place_rsp(encode_plain(model.tokenizer, questions[i]), 2, "suffix")
        jobs.append(Job(str(i), ids, positions, draw_rsp(law, 2, seed=i), 0.0, 1.0, seed=i))
    return jobs


def test_an_out_of_memory_batch_is_halved_and_nothing_is_lost(tiny_qwen2, monkeypatch,
                                                               caplog):
    from rsp_probe.models import load_model

    model = load_model(str(tiny_qwen2), backend="hf")
    jobs = _jobs(model)
    expected = generate(model, jobs, max_new_tokens=5, batch_size=5)
    real = sampler._generate_batch

    def small_memory(model, batch_jobs, *args):
        if len(batch_jobs) > 2:  # as a device that holds two trajectories at a time
            raise torch.OutOfMemoryError("injected")
        return real(model, batch_jobs, *args)

    monkeypatch.setattr(sampler, "_generate_batch", small_memory)
    handed = []
    with caplog.at_level(logging.WARNING, logger="rsp_probe"):
        generate(model, jobs, max_new_tokens=5, batch_size=5,
                 on_batch=lambda number, rows, batch: handed.append((number, rows, batch)))
    ((number, rows, batch),) = handed  # still one batch, numbered as before
    assert number == 0 and sorted(rows) == list(range(5))
    got = {jobs[row].id: t.generated_token_ids for row, t in zip(rows, batch)}
    assert got == {job.id: t.generated_token_ids for job, t in zip(jobs, expected)}
    assert "retrying as 2 + 3" in caplog.text and "retrying as 1 + 2" in caplog.text


def test_a_single_trajectory_that_does_not_fit_is_an_error(tiny_qwen2, monkeypatch):
    from rsp_probe.models import load_model

    model = load_model(str(tiny_qwen2), backend="hf")

    def no_memory(*args):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(sampler, "_generate_batch", no_memory)
    with pytest.raises(torch.OutOfMemoryError):
        generate(model, _jobs(model, 2), max_new_tokens=2, batch_size=2)


def test_attention_figure_data_without_a_dilution_fit(tiny_qwen2, tmp_path):
    """A short attention run has too few steps for the dilution fit; its figure data still
    come back (the paper plan's --max-new-tokens 4 smoke run met a KeyError here)."""
    from rsp_probe.experiments.base import get_experiment
    from rsp_probe.figures import attention as attention_figure

    run, _ = get_experiment("attention")(
        str(tiny_qwen2), rsp_tokens=(4,), n_prompts=1, samples=1, max_new_tokens=4,
        out=str(tmp_path / "a"), quiet=True)
    frame = attention_figure.data([run])
    assert "delta" in frame.columns and len(frame) > 0
