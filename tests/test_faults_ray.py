"""--workers: the prompts as shards on a local Ray cluster (one model per worker), merged.
A worker SIGKILLed in the middle of its shard is retried by Ray, the retry resumes from the
shard's last complete batch, and the merged run equals the run of one process."""

from __future__ import annotations

import pytest
from test_faults_stream import OPTIONS, _assert_same_run, _entropy

import rsp_probe
from rsp_probe.cli import main
from rsp_probe.errors import UsageError
from rsp_probe.runs import KILL_ONCE_ENV, KILL_POINT_ENV, open_run


@pytest.mark.slow
def test_workers_survive_a_killed_worker_and_equal_the_single_run(
        tiny_qwen2, tmp_path, monkeypatch):
    single = _entropy(str(tiny_qwen2), tmp_path / "single")
    # 3 prompts in 2 shards: shard 0 (prompts 0 and 2) has two batches of 4 and its worker
    # dies as the second one starts; shard 1 (prompt 1) has one batch and is never killed
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_POINT_ENV, "batch-1-prefill")
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    out = tmp_path / "workers"
    run, table = rsp_probe.entropy(model=str(tiny_qwen2), out=str(out), seed=1, workers=2,
                                   **OPTIONS)
    assert marker.exists()  # a worker did die mid-shard
    _assert_same_run(single.path, out)
    assert run.config["workers"] == 2 and run.config["shard"] is None
    assert not (tmp_path / ".workers.shards").exists()
    assert set(table["condition"]) == {"k0", "k4"}  # the summary of the merged run
    assert (out / "figure-entropy.csv").exists()
    open_run(out)  # its DONE manifest lists every file, the figure included


def test_a_completed_shard_is_kept_when_the_workers_run_resumes(tiny_qwen2, tmp_path,
                                                                 monkeypatch):
    """A --workers run interrupted after some shards finished: with --resume their tasks
    return the finished shard runs instead of computing them again (no Ray needed here)."""
    from dataclasses import replace

    import rsp_probe.sampler as sampler
    from rsp_probe.experiments.base import get_experiment
    from rsp_probe.experiments.distributed import run_shard, shard_specs
    from rsp_probe.runs import DONE_FILE

    spec = get_experiment("entropy").spec(str(tiny_qwen2), seed=1, **OPTIONS)
    shard = shard_specs(spec, tmp_path / "out", 2)[0]
    path = run_shard("entropy", shard)
    done = (tmp_path / path / DONE_FILE).read_bytes()
    batches, real = [], sampler._generate_batch
    monkeypatch.setattr(sampler, "_generate_batch",
                        lambda *args: batches.append(1) or real(*args))
    assert run_shard("entropy", shard) == path and batches == []
    assert (tmp_path / path / DONE_FILE).read_bytes() == done  # not even republished
    other = replace(shard, sampling=replace(shard.sampling, seed=2))
    assert run_shard("entropy", other) == path and batches  # another run: computed
    assert open_run(path).config["seed"] == 2


def test_workers_refuse_shard_and_a_loaded_model(loaded_qwen2, tmp_path, capsys):
    code = main(["entropy", "--workers", "2", "--shard", "0/2", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "leave out --shard" in err and len(err.splitlines()) == 1, err
    with pytest.raises(UsageError, match="not a loaded model"):
        rsp_probe.entropy(model=loaded_qwen2, out=str(tmp_path / "r"), workers=2)
    assert not (tmp_path / "r").exists()
