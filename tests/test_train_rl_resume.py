"""`rsp-probe train-rl` end to end: a run killed by SIGKILL right after a checkpoint resumes
from it (--resume) and ends with the same policy, log and probes as an uninterrupted run;
bad options are one line on stderr and exit 2."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from safetensors.torch import load_file

from rsp_probe.runs import KILL_POINT_ENV, open_run

TINY = ["--steps", "3", "--checkpoint-every", "2", "--prompts-per-step", "2", "--group-size", "4",
        "--n-prompts", "2", "--samples", "2", "--pass-k", "1,2", "--max-new-tokens", "40",
        "--max-rounds", "2", "--lr", "1e-3", "--quiet"]


def train_rl(out, *extra, env=None):
    command = [sys.executable, "-m", "rsp_probe.cli", "train-rl", "--out", str(out), *TINY, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "whole"
    result = train_rl(out)
    assert result.returncode == 0, result.stderr
    return out


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, uninterrupted):
    out = tmp_path / "killed"
    killed = train_rl(out, env={KILL_POINT_ENV: "rl-checkpoint-2"})
    assert killed.returncode == -9  # SIGKILL right after checkpoint 2 was written
    assert not out.exists() and (tmp_path / ".killed.partial" / "checkpoints").is_dir()
    refused = train_rl(out)  # without --resume: refused, the staged run kept
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = train_rl(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole, again = open_run(uninterrupted), open_run(out)
    log = again.table("train_rl_log.parquet")
    assert log["step"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(log.drop(columns="seconds"),
                                  whole.table("train_rl_log.parquet").drop(columns="seconds"))
    pd.testing.assert_frame_equal(again.table("train_rl_eval.parquet"),
                                  whole.table("train_rl_eval.parquet"))
    policy = load_file(str(out.with_name("killed-policy") / "model.safetensors"))
    reference = load_file(str(uninterrupted.with_name("whole-policy") / "model.safetensors"))
    assert policy.keys() == reference.keys()
    assert all(bool((policy[k] == reference[k]).all()) for k in policy)


def test_the_run_holds_probes_of_every_checkpoint(uninterrupted):
    run = open_run(uninterrupted)
    frame = run.table("train_rl_eval.parquet")
    assert sorted(frame["step"].unique()) == [0, 2, 3]
    metrics = set(frame.loc[frame["condition"] == "rsp+temp", "metric"])
    assert {"pass@1", "pass@2", "rsp_attention", "influence_kl", "entropy_early",
            "distinct_strategies"} <= metrics
    assert "rsp_attention" not in set(frame.loc[frame["condition"] == "temp", "metric"])
    assert set(frame["condition"]) == {"temp", "rsp+temp", "greedy"}
    assert not any(p.name in ("checkpoints", "evals") for p in uninterrupted.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--rsp-tokens", "0"], "--rsp-tokens"),
    (["--backend", "transformer-lens"], "--backend hf"),
    (["--pass-k", "0,1"], "--pass-k"),  # a k above --samples is clipped, as in passk
    (["--group-size", "1"], "--group-size"),
    (["--overlong-cache", "500"], "--overlong-cache"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    from rsp_probe.cli import main

    assert main(["train-rl", "--out", str(tmp_path / "bad"), *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_any_hf_model_runs_and_its_policy_serves_other_commands(tmp_path, tiny_llama):
    """A random Llama checkpoint (untied embeddings, another family): every answer is wrong
    and every rollout runs to the token limit, so every group's rewards are equal and dynamic
    sampling keeps none; the updates are skipped, logged, and the run completes."""
    import rsp_probe

    out = tmp_path / "llama-rl"
    run, summary = rsp_probe.train_rl(
        model=str(tiny_llama), out=str(out), steps=2, checkpoint_every=1, prompts_per_step=2,
        group_size=4, n_prompts=2, samples=2, pass_k=(1, 2), max_new_tokens=12, overlong="penalty",
        overlong_cache=8, max_rounds=2, quiet=True)
    log = run.table("train_rl_log.parquet")
    assert log["step"].tolist() == [1, 2] and log["groups_kept"].eq(0).all()
    assert log["groups_sampled"].eq(4).all() and "loss" not in log  # two rounds, none kept
    assert set(summary["step"]) == {0, 1, 2}
    entropy_run, _ = rsp_probe.entropy(model=str(tmp_path / "llama-rl-policy"), n_prompts=1,
                                       samples=1, max_new_tokens=4, out=str(tmp_path / "e"),
                                       quiet=True)
    assert entropy_run.config["model"] == str(tmp_path / "llama-rl-policy")
