"""Streaming runs under SIGKILL: a run killed at any point (while a batch is prefilled, with
a batch half written, between batches, while publishing) and then resumed equals the run
that was never interrupted, and the earlier completed run at the same path is intact at every
kill point. Shards merged equal the single-process run.

The killed runs are forked children of the test process (the model is already loaded there)
that SIGKILL themselves at a named point (RSP_PROBE_KILL_AT), as power loss would."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

import rsp_probe
from rsp_probe.cli import main
from rsp_probe.runs import EXECUTION_KEYS, KILL_POINT_ENV, open_run

# 3 prompts x (k0, k4) x 2 samples = 12 trajectories in 3 batches of 4
OPTIONS = dict(n_prompts=3, samples=2, rsp_tokens=(0, 4), max_new_tokens=6, batch_size=4,
               temperature=1.0, quiet=True)


def _entropy(model, out: Path, seed: int = 1, **extra):
    return rsp_probe.entropy(model=model, out=str(out), seed=seed, **{**OPTIONS, **extra})[0]


def _influence(model, out: Path, **extra):
    """3 prompts: the base continuations in part 0, then one teacher-forced part of 2 draws
    per prompt (parts 1-3)."""
    options = {**OPTIONS, "rsp_tokens": (4,), "temperature": 0.0, **extra}
    return rsp_probe.influence(model=model, out=str(out), seed=1, **options)[0]


def _killed_at(point: str, model, out: Path, run=_entropy, **extra) -> None:
    """Run in a forked child that SIGKILLs itself at `point`; assert it died there."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            torch.set_num_threads(1)
            os.environ[KILL_POINT_ENV] = point
            run(model, out, **extra)
        finally:
            os._exit(3)  # reached only if the kill point was never hit
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (point, status)


def _contract(path: Path) -> dict:
    """What makes two runs the same run: trajectories, vectors and step values."""
    run = open_run(path)
    steps = run.steps.sort_values(["trajectory", "probe", "step", "layer", "head"])
    return {"trajectories": (path / "trajectories.jsonl").read_bytes(),
            "rsp": {k: v.tobytes() for k, v in sorted(run.rsp_vectors().items())},
            "steps": steps.reset_index(drop=True),
            "config": {k: v for k, v in run.config.items()
                       if k not in (*EXECUTION_KEYS, "shard")}}


def _assert_same_run(a: Path, b: Path) -> None:
    left, right = _contract(a), _contract(b)
    assert left["trajectories"] == right["trajectories"]
    assert left["rsp"] == right["rsp"]
    pd.testing.assert_frame_equal(left["steps"], right["steps"])
    assert left["config"] == right["config"]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def reference(loaded_qwen2, tmp_path_factory):
    """The uninterrupted run, and an earlier completed run (another seed) to overwrite."""
    folder = tmp_path_factory.mktemp("reference")
    _entropy(loaded_qwen2, folder / "uninterrupted")
    _entropy(loaded_qwen2, folder / "earlier", seed=2)
    return folder


@pytest.mark.parametrize("point", ["batch-0-prefill", "batch-1-partial", "batch-1-done",
                                   "publish", "publish-exchange", "publish-exchanged"])
def test_sigkill_then_resume_equals_the_uninterrupted_run(point, reference, loaded_qwen2,
                                                          tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference / "earlier", out)
    earlier = _snapshot(out)
    _killed_at(point, loaded_qwen2, out, overwrite=True)
    if point == "publish-exchanged":  # the new run was already swapped in: complete
        _assert_same_run(out, reference / "uninterrupted")
    else:
        assert _snapshot(out) == earlier  # the earlier run, byte for byte
    _entropy(loaded_qwen2, out, overwrite=True, resume=True)
    _assert_same_run(out, reference / "uninterrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging, no lock


def test_resume_skips_the_batches_already_done(reference, loaded_qwen2, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _killed_at("batch-2-prefill", loaded_qwen2, out)
    parts = sorted(p.name for p in (tmp_path / ".run.partial" / "parts").glob("*.done"))
    assert parts == ["00000.done", "00001.done"]
    ran = []
    import rsp_probe.sampler as sampler

    real = sampler._generate_batch
    monkeypatch.setattr(sampler, "_generate_batch",
                        lambda model, jobs, *a: ran.append(len(jobs)) or real(model, jobs, *a))
    _entropy(loaded_qwen2, out, resume=True)
    assert ran == [4]  # only the third batch
    _assert_same_run(out, reference / "uninterrupted")


def test_ctrl_c_keeps_the_finished_batches_for_resume(reference, loaded_qwen2, tmp_path,
                                                     monkeypatch):
    out = tmp_path / "run"

    def interrupt(point):
        if point == "batch-1-done":
            raise KeyboardInterrupt

    monkeypatch.setattr("rsp_probe.runs.kill_point", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _entropy(loaded_qwen2, out)
    monkeypatch.undo()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial"]  # lock released
    _entropy(loaded_qwen2, out, resume=True)
    _assert_same_run(out, reference / "uninterrupted")


def test_an_interrupted_run_is_not_discarded_without_asking(loaded_qwen2, tmp_path, capsys):
    out = tmp_path / "run"
    _killed_at("batch-1-done", loaded_qwen2, out)
    code = main(["entropy", "--model", loaded_qwen2.info.path, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith(
        f"--out {out}: an interrupted run is staged in .run.partial; --resume continues it, "
        f"--overwrite or `rsp-probe clean {tmp_path}` discards it"), err
    assert (tmp_path / ".run.partial" / "parts" / "00001.done").exists()


def test_resume_with_other_options_is_refused(loaded_qwen2, tmp_path):
    out = tmp_path / "run"
    _killed_at("batch-1-done", loaded_qwen2, out)
    with pytest.raises(rsp_probe.errors.UsageError, match="has a different seed"):
        _entropy(loaded_qwen2, out, seed=5, resume=True)


def test_shards_merged_equal_the_unsharded_run(reference, loaded_qwen2, tmp_path, capsys):
    shards = []
    for index in range(2):
        shards.append(tmp_path / f"shard{index}")
        _entropy(loaded_qwen2, shards[-1], shard=f"{index}/2")
    assert {r["prompt_id"] for r in open_run(shards[0]).trajectories.to_dict("records")} \
        .isdisjoint(r["prompt_id"] for r in open_run(shards[1]).trajectories.to_dict("records"))
    assert main(["merge", *map(str, reversed(shards)), "--out", str(tmp_path / "merged")]) == 0
    merged, single = _contract(tmp_path / "merged"), _contract(reference / "uninterrupted")
    assert merged["trajectories"] == single["trajectories"]  # same tokens, order and text
    assert merged["rsp"] == single["rsp"]
    # a shard batches other rows together: step values agree up to float rounding
    pd.testing.assert_frame_equal(merged["steps"], single["steps"], rtol=1e-4, atol=1e-6)
    assert merged["config"] == single["config"]
    assert open_run(tmp_path / "merged").config["shard"] is None


@pytest.fixture(scope="module")
def influence_reference(loaded_qwen2, tmp_path_factory):
    out = tmp_path_factory.mktemp("influence") / "uninterrupted"
    _influence(loaded_qwen2, out)
    return out


@pytest.mark.parametrize("point", ["batch-0-partial", "batch-0-done", "batch-2-prefill",
                                   "batch-3-partial", "publish"])
def test_influence_killed_then_resumed_equals_the_uninterrupted_run(
        point, influence_reference, loaded_qwen2, tmp_path, monkeypatch):
    """influence streams too: base continuations first (part 0), then teacher-forced parts;
    a resume redoes only what is missing (and reads the continuations back from part 0)."""
    out = tmp_path / "run"
    _killed_at(point, loaded_qwen2, out, run=_influence)
    if point == "batch-2-prefill":
        done = sorted(p.name for p in (tmp_path / ".run.partial" / "parts").glob("*.done"))
        assert done == ["00000.done", "00001.done"]
        import rsp_probe.probes.influence as probe

        forced, real = [], probe.influence_batch
        monkeypatch.setattr(probe, "influence_batch",
                            lambda model, jobs, *a, **kw: forced.append(len(jobs))
                            or real(model, jobs, *a, **kw))
    _influence(loaded_qwen2, out, resume=True)
    _assert_same_run(out, influence_reference)
    if point == "batch-2-prefill":
        assert forced == [2, 2]  # parts 2 and 3 only


def test_influence_shards_merged_equal_the_unsharded_run(influence_reference, loaded_qwen2,
                                                         tmp_path):
    """Each prompt's base line and its draws are contiguous (prompt-major), so the merge of
    shards, which interleaves prompts, gives the single-process file line for line."""
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for index, shard in enumerate(shards):
        _influence(loaded_qwen2, shard, shard=f"{index}/2")
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    merged, single = _contract(tmp_path / "merged"), _contract(influence_reference)
    assert merged["trajectories"] == single["trajectories"]
    assert merged["rsp"] == single["rsp"]
    pd.testing.assert_frame_equal(merged["steps"], single["steps"], rtol=1e-4, atol=1e-6)
    assert merged["config"] == single["config"]
    lines = [json.loads(line) for line in (influence_reference / "trajectories.jsonl")
             .read_text().splitlines()]
    assert [r["condition"] for r in lines] == ["base", "k4", "k4"] * 3


@pytest.mark.parametrize("command, extra", [
    ("knockout", {"cut_after": ("1", "never"), "block_layers": (1,)}),  # 5 conditions, not 10
    ("dose", {"rsp_tokens": (1, 4), "sigma_scales": ("0.5",)})])
def test_condition_major_shards_merge_into_the_single_run(loaded_qwen2, tmp_path, command,
                                                          extra):
    """knockout and dose write one block per condition, each in prompt order: the merge
    restores that order (not a prompt-major one) and carries the tables computed while
    running (dose's score_shift.parquet) in the same order; derived tables agree."""
    options = dict(n_prompts=3, samples=4, max_new_tokens=4, batch_size=4, quiet=True, seed=1,
                   **extra)
    experiment = getattr(rsp_probe, command)
    experiment(model=loaded_qwen2, out=str(tmp_path / "single"), **options)
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for index, shard in enumerate(shards):
        experiment(model=loaded_qwen2, out=str(shard), shard=f"{index}/2", **options)
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    merged, single = _contract(tmp_path / "merged"), _contract(tmp_path / "single")
    assert merged["trajectories"] == single["trajectories"]
    assert merged["rsp"] == single["rsp"]
    pd.testing.assert_frame_equal(merged["steps"], single["steps"], rtol=1e-4, atol=1e-6)
    tables = sorted(p.name for p in (tmp_path / "single").glob("*.parquet"))
    assert tables == sorted(p.name for p in (tmp_path / "merged").glob("*.parquet"))
    for name in set(tables) - {"steps.parquet"}:
        pd.testing.assert_frame_equal(open_run(tmp_path / "merged").table(name),
                                      open_run(tmp_path / "single").table(name),
                                      rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("which, message", [
    (lambda s: [s[0]], "merge needs shards 0..N-1 of one N"),
    (lambda s: [s[0], s[0]], "given twice"),
])
def test_merge_refuses_an_incomplete_set_of_shards(loaded_qwen2, tmp_path, capsys, which,
                                                   message):
    shards = [tmp_path / "s0", tmp_path / "s1"]
    _entropy(loaded_qwen2, shards[0], shard="0/2")
    code = main(["merge", *map(str, which(shards)), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


def _hoarding_writer(monkeypatch) -> None:
    """The pre-streaming behaviour: every finished batch stays in memory to the end."""
    from rsp_probe.runs import RunWriter

    held, write_part = [], RunWriter.write_part

    def hoard(self, number, records, vectors, steps):
        held.append((records, vectors, steps))
        write_part(self, number, records, vectors, steps)

    monkeypatch.setattr(RunWriter, "write_part", hoard)


def _streamed_peak(model, out: Path, samples: int) -> int:
    """Peak bytes of Python and numpy memory (tracemalloc) from the start of a run to the
    merge of its parts: the sampler loop and the run writer. torch's own buffers (the model,
    the KV cache: O(batch) by construction) are not traced, so trajectory data dominates."""
    import tracemalloc

    from rsp_probe.runs import RunWriter

    peak, merge_parts = [], RunWriter.merge_parts

    def measure_then_merge(self):
        peak.append(tracemalloc.get_traced_memory()[1])
        merge_parts(self)

    RunWriter.merge_parts = measure_then_merge
    tracemalloc.start()
    try:
        _entropy(model, out, samples=samples, n_prompts=2, rsp_tokens=(4,), max_new_tokens=8,
                 batch_size=100)
    finally:
        tracemalloc.stop()
        RunWriter.merge_parts = merge_parts
    assert len(open_run(out).trajectories) == samples * 4
    return peak[0]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_trajectories(loaded_qwen2, tmp_path,
                                                                    monkeypatch):
    """A 2,000-trajectory run's peak within 1.5x of a 200-trajectory one (2 prompts x (k0,
    k4) x 500 against 50 samples, batches of 100, so the same batch shapes), while the same
    runs with a writer that keeps every batch (the pre-streaming code) exceed 1.5x: the
    measure can tell the two apart. Two short questions keep the prefill cheap; what the
    runs hold per trajectory does not depend on the question."""
    from rsp_probe.tasks.problem import Problem

    monkeypatch.setattr("rsp_probe.experiments.common.load_problems", lambda data: [
        Problem("short-a", "2 + 3 = ?", "5"), Problem("short-b", "4 + 1 = ?", "5")])
    _entropy(loaded_qwen2, tmp_path / "warm-up", samples=2, n_prompts=2)  # lazy imports
    peaks = {}
    for mode in ("streaming", "hoarding"):
        if mode == "hoarding":
            _hoarding_writer(monkeypatch)
        for samples in (50, 500):  # x 2 prompts x 2 conditions
            peaks[mode, samples * 4] = _streamed_peak(loaded_qwen2, tmp_path / f"{mode}{samples}",
                                                      samples)
    ratio = {mode: peaks[mode, 2000] / peaks[mode, 200] for mode in ("streaming", "hoarding")}
    print("peak traced bytes:", peaks, "2000/200 ratios:", ratio)
    assert ratio["streaming"] <= 1.5, peaks
    assert ratio["hoarding"] > 1.5, peaks
