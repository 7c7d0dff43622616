"""A run directory under faults: one writer per --out (the lock), atomic publish, leftovers
and `rsp-probe clean`, a full disk, and readers that turn a damaged or newer run into one line
(a single run: exit 2) or a one-line warning and a skip (a folder of runs)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import rsp_probe
from rsp_probe.cli import main
from rsp_probe.errors import UsageError
from rsp_probe.runio import publish as publish_module
from rsp_probe.runio.integrity import DamagedRunError, read_manifest
from rsp_probe.runio.lock import OutLock
from rsp_probe.runs import RunWriter, find_runs, open_run

TINY = ["--n-prompts", "2", "--samples", "1", "--max-new-tokens", "4", "--quiet"]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def _write(out: Path, note: str, **kwargs) -> Path:
    writer = RunWriter(out, {"command": "entropy", "note": note}, **kwargs)
    writer.write_trajectories([{"id": "t", "prompt_id": "p", "condition": "k0", "note": note}],
                              {"t": np.zeros((1, 4))},
                              {"t": {"entropy": np.ones(2, np.float32)}})
    return writer.finish({"device": "cpu"})


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- the lock ----------------------------------------------------------------------------------

def test_second_writer_is_refused_naming_the_holder_and_nothing_is_lost(tmp_path, tiny_qwen2,
                                                                        capsys):
    out = tmp_path / "run"
    _write(out, "first")
    before = _snapshot(out)
    first = RunWriter(out, {"command": "entropy", "note": "second"}, overwrite=True)
    code = main(["entropy", "--model", str(tiny_qwen2), "--out", str(out), "--overwrite", *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [
        f"rsp-probe entropy: error: --out {out}: another rsp-probe run (PID {os.getpid()}) is "
        "writing it; wait for it to finish or choose another --out"]
    assert _snapshot(out) == before  # the refused writer touched nothing
    first.write_trajectories([{"id": "t", "prompt_id": "p", "condition": "k0"}],
                             {"t": np.zeros((0, 4))}, {"t": {}})
    first.finish({"device": "cpu"})  # the holder still publishes
    assert open_run(out).config["note"] == "second"
    assert _hidden(tmp_path) == []  # lock released, staging gone


def test_a_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".run.lock").write_text(f"{dead.pid}\n")
    _write(tmp_path / "run", "after")
    err = capsys.readouterr().err
    assert f"taking over the stale lock of {tmp_path / 'run'} left by PID {dead.pid}" in err
    assert open_run(tmp_path / "run").config["note"] == "after"


def test_lock_is_exclusive_between_processes(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rsp_probe.runio.lock import OutLock;"
         f"OutLock(__import__('pathlib').Path({str(tmp_path / 'run')!r})).acquire();"
         "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=f"PID {holder.pid}"):
            OutLock(tmp_path / "run").acquire()
    finally:
        holder.kill()
        holder.wait()
    OutLock(tmp_path / "run").acquire().release()  # the kernel dropped the dead holder's lock


# -- publish and leftovers ---------------------------------------------------------------------

def test_publish_swaps_without_an_empty_moment_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _write(out, "first")
    seen = []
    real = publish_module.exchange

    def watching(a, b):
        seen.append(open_run(out).config["note"])  # just before the swap: still the old run
        return real(a, b)

    monkeypatch.setattr(publish_module, "exchange", watching)
    _write(out, "second", overwrite=True)
    assert seen == ["first"]
    assert open_run(out).config["note"] == "second"
    assert _hidden(tmp_path) == []


def test_fallback_crash_between_renames_is_put_back_by_clean(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _write(out, "first")
    before = _snapshot(out)
    monkeypatch.setattr(publish_module, "exchange", lambda a, b: False)  # no renameat2

    def crash(point):
        if point == "publish-renamed-away":
            raise KeyboardInterrupt

    monkeypatch.setattr("rsp_probe.runs.kill_point", crash)
    with pytest.raises(KeyboardInterrupt):
        _write(out, "second", overwrite=True)
    assert not out.exists() and _hidden(tmp_path) == [".run.previous"]
    monkeypatch.undo()
    _write(tmp_path / "other", "x")  # any later run in the folder points at the leftover
    assert "`rsp-probe clean" in capsys.readouterr().err
    assert main(["clean", str(tmp_path)]) == 0
    assert f"restored {out}" in capsys.readouterr().out
    assert _snapshot(out) == before and _hidden(tmp_path) == []


def test_clean_removes_staging_of_killed_runs_but_not_of_live_ones(tmp_path, capsys):
    (tmp_path / ".dead.partial").mkdir()
    (tmp_path / ".dead.partial" / "config.json").write_text("{}")
    (tmp_path / ".gone.lock").write_text("999999999\n")
    live = RunWriter(tmp_path / "live", {"command": "entropy"})
    assert main(["clean", str(tmp_path)]) == 0
    assert _hidden(tmp_path) == [".live.lock", ".live.partial"]
    live.abort({}, "test over")
    assert not (tmp_path / "live" / "DONE").exists()


def test_a_full_disk_is_one_line_and_leaves_no_staging(tmp_path, tiny_qwen2):
    """Files may not grow past 12 KiB (RLIMIT_FSIZE): the 16 KiB RSP file (4 draws of 16
    vectors) fails to write as on a full disk, after config.json was written."""
    out = tmp_path / "run"
    _write(out, "first")
    before = _snapshot(out)

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (12 * 1024, 12 * 1024))

    argv = ["entropy", "--model", str(tiny_qwen2), "--out", str(out), "--overwrite",
            "--rsp-tokens", "16", *TINY, "--n-prompts", "1", "--samples", "4"]
    done = subprocess.run([sys.executable, "-m", "rsp_probe.cli", *argv], preexec_fn=limit_files,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "rsp-probe entropy: error: [Errno 27] File too large"], done.stderr
    assert _snapshot(out) == before and _hidden(tmp_path) == []


# -- integrity ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def entropy_runs(loaded_qwen2, tmp_path_factory):
    """A folder with one small entropy run; tests copy it and damage the copy."""
    folder = tmp_path_factory.mktemp("runs")
    rsp_probe.entropy(model=loaded_qwen2, n_prompts=2, samples=2, max_new_tokens=6,
                      rsp_tokens=(0, 4), out=str(folder / "good"), quiet=True)
    return folder


def _truncate(name):
    def damage(run: Path):
        with open(run / name, "r+b") as handle:
            handle.truncate((run / name).stat().st_size // 2)
    return damage


def _bad_line(run: Path):
    lines = (run / "trajectories.jsonl").read_text().splitlines()
    lines[1] = lines[1][:-5]
    (run / "trajectories.jsonl").write_text("\n".join(lines) + "\n")


def _config(text_or_edit):
    def damage(run: Path):
        if callable(text_or_edit):
            config = json.loads((run / "config.json").read_text())
            text_or_edit(config)
            text = json.dumps(config)
        else:
            text = text_or_edit
        (run / "config.json").write_text(text)
    return damage


def _newer_run(run: Path):
    """What a future rsp-probe writes: a consistent run of a schema this version lacks."""
    from rsp_probe.runio.integrity import write_manifest

    _config(lambda c: c.update(schema_version=999))(run)
    write_manifest(run, 999)


def _legacy_done_and_bad_line(run: Path):
    (run / "DONE").write_text("2025-01-01T00:00:00+0000\n")  # what older versions wrote
    _bad_line(run)


DAMAGES = {
    "truncated-steps": (_truncate("steps.parquet"), "steps.parquet is damaged ("),
    "malformed-jsonl-line": (_bad_line, "trajectories.jsonl is damaged ("),
    "invalid-config": (_config("{not json"), "config.json is damaged ("),
    "newer-schema": (_newer_run,
                     "written by a newer rsp-probe (run schema 999; this version reads up to 1)"),
    # a timestamp DONE (what versions before manifests wrote) proves nothing: damaged
    "legacy-done-bad-line": (_legacy_done_and_bad_line,
                             "DONE is damaged (not a JSON manifest; a run older than manifests "
                             "is sealed with `python -m rsp_probe.runio.seal`)"),
    "missing-file": (lambda run: (run / "rsp.safetensors").unlink(),
                     "rsp.safetensors is missing"),
}


@pytest.fixture(params=sorted(DAMAGES))
def damaged(request, entropy_runs, tmp_path):
    damage, message = DAMAGES[request.param]
    folder = tmp_path / "runs"
    shutil.copytree(entropy_runs, folder)
    shutil.copytree(folder / "good", folder / "bad")
    damage(folder / "bad")
    return folder, message


def test_done_lists_every_file_with_its_sha256_and_size(entropy_runs):
    run = entropy_runs / "good"
    files = read_manifest(run)["files"]
    assert sorted(files) == sorted(p.name for p in run.iterdir() if p.name != "DONE")
    import hashlib

    for name, entry in files.items():
        data = (run / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_show_of_a_damaged_run_is_one_line_and_exit_2(damaged, capsys):
    folder, message = damaged
    assert main(["show", str(folder / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    with pytest.raises(DamagedRunError, match="bad"):  # the Python API says the same
        open_run(folder / "bad")


def test_a_damaged_run_in_a_folder_is_skipped_with_one_warning(damaged):
    folder, message = damaged
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [r.id for r in find_runs([folder])] == ["good"]
    assert len(caught) == 1, [str(w.message) for w in caught]
    text = str(caught[0].message)
    assert text.startswith(f"skipping damaged run: {folder / 'bad'}: ") and message in text


def test_figures_and_theory_draw_the_intact_runs_and_warn_in_one_line(entropy_runs, tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(entropy_runs, folder)
    shutil.copytree(folder / "good", folder / "bad")
    _truncate("steps.parquet")(folder / "bad")
    with warnings.catch_warnings(record=True):
        assert main(["figures", "--runs", str(folder), "--out", str(tmp_path / "figs")]) == 0
    done = subprocess.run([sys.executable, "-m", "rsp_probe.cli", "theory", str(folder)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"rsp-probe: warning: skipping damaged run: {folder / 'bad'}: steps.parquet is "
        f"damaged ({(folder / 'bad' / 'steps.parquet').stat().st_size} bytes, "
        f"{(folder / 'good' / 'steps.parquet').stat().st_size} when written)"]
    manifest = json.loads((tmp_path / "figs" / "MANIFEST.json").read_text())
    assert {i["run"] for i in manifest["figures"]["entropy"]["inputs"]} == {"good"}
