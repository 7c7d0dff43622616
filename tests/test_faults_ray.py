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


def test_workers_refuse_shard_and_a_loaded_model(loaded_qwen2, tmp_path, capsys):
    code = main(["entropy", "--workers", "2", "--shard", "0/2", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "leave out --shard" in err and len(err.splitlines()) == 1, err
    with pytest.raises(UsageError, match="not a loaded model"):
        rsp_probe.entropy(model=loaded_qwen2, out=str(tmp_path / "r"), workers=2)
    assert not (tmp_path / "r").exists()
