"""The adversarial rounds: every case an adversarial session found, with the result it must
now give (a clean result, or one line and exit 2). One module that grows with every case;
each test names its case of issue 29 (`case<N>_...`).

Runs are written by the tiny Qwen2 of conftest (no default model load), damaged by hand, and
where a case is about a run *consistent* with its DONE, resealed with a fresh DONE
(`_reseal`), as a forger would."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import rsp_probe
from rsp_probe.cli import main
from rsp_probe.errors import UsageError
from rsp_probe.runio.integrity import DamagedRunError, read_manifest, write_manifest
from rsp_probe.runs import KILL_POINT_ENV, KILL_SIGNAL_ENV, find_runs, open_run

OPTIONS = dict(n_prompts=2, samples=2, rsp_tokens=(0, 4), max_new_tokens=4, quiet=True)


@pytest.fixture(scope="module")
def good_run(loaded_qwen2, tmp_path_factory):
    out = tmp_path_factory.mktemp("adversarial") / "good"
    rsp_probe.entropy(model=loaded_qwen2, out=str(out), **OPTIONS)
    return out


@pytest.fixture
def runs(good_run, tmp_path):
    """A folder with two intact copies of the run: `good` and `bad` (to be damaged)."""
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copytree(good_run, folder / "good")
    shutil.copytree(good_run, folder / "bad")
    return folder


def _reseal(run: Path, version: int = 1) -> None:
    write_manifest(run, version)


def _one_line_exit_2(argv, capsys, expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err, err


def _skipped_once(folder: Path, expected: str) -> list:
    with pytest.warns(UserWarning) as caught:
        found = find_runs([folder])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and expected in messages[0] and "\n" not in messages[0], messages
    return found


# -- case 1: a DONE that is not a valid manifest ----------------------------------------------

BAD_DONES = {
    "empty": b"",
    "cut-short": b'{"completed": "2026-01-01", "schema_version": 1, "files": {"config.j',
    "garbage": b"\x00\xffnot a manifest",
    "no-files": b'{"files": {}}',
    "legacy-timestamp": b"2026-11-29T04:18:04+0000\n",
    "empty-file-list": b'{"completed": "t", "schema_version": 1, "files": {}}',
}


@pytest.mark.parametrize("done", sorted(BAD_DONES))
def test_case1_an_invalid_done_is_damaged_never_complete(runs, capsys, done):
    bad = runs / "bad"
    (bad / "DONE").write_bytes(BAD_DONES[done])
    _one_line_exit_2(["show", str(bad)], capsys, "DONE is damaged")
    found = _skipped_once(runs, "DONE is damaged")
    assert [run.id for run in found] == ["good"]


def test_case1_edited_results_under_a_truncated_done_reach_no_claim(runs, capsys):
    """The issue's attack: `correct` edited, DONE cut short. The run is skipped, so the
    accuracy the claims would compute never moves."""
    bad = runs / "bad"
    lines = (bad / "trajectories.jsonl").read_text().splitlines()
    edited = [json.dumps({**json.loads(line), "correct": True}) for line in lines[:3]]
    (bad / "trajectories.jsonl").write_text("\n".join(edited) + "\n")
    done = (bad / "DONE").read_bytes()
    (bad / "DONE").write_bytes(done[: len(done) // 2])
    assert [run.id for run in _skipped_once(runs, "DONE is damaged")] == ["good"]
    _one_line_exit_2(["show", str(bad)], capsys, "DONE is damaged")


def test_case1_merge_refuses_a_shard_with_a_truncated_done(runs, tmp_path, capsys):
    done = (runs / "bad" / "DONE").read_bytes()
    (runs / "bad" / "DONE").write_bytes(done[:40])
    _one_line_exit_2(["merge", str(runs / "bad"), str(runs / "good"), "--out",
                      str(tmp_path / "merged")], capsys, "DONE is damaged")
    assert not (tmp_path / "merged").exists()


# -- case 2: a malformed DONE entry ----------------------------------------------------------

@pytest.mark.parametrize("entry", [5, None, [], "abc", {"sha256": "00", "size": 1},
                                   {"sha256": "0" * 64, "size": True}])
def test_case2_a_malformed_entry_is_skipped_not_a_crash(runs, capsys, entry):
    bad = runs / "bad"
    done = json.loads((bad / "DONE").read_text())
    done["files"]["config.json"] = entry
    (bad / "DONE").write_text(json.dumps(done))
    assert [run.id for run in _skipped_once(runs, "is not a sha256 and a size")] == ["good"]
    _one_line_exit_2(["show", str(bad)], capsys, "is not a sha256 and a size")
    with pytest.warns(UserWarning):
        assert main(["theory", str(runs)]) == 0
    capsys.readouterr()
    with pytest.warns(UserWarning):
        assert main(["figures", "--runs", str(runs), "--out", str(runs.parent / "fig")]) == 0


def test_case2_show_of_a_folder_skips_the_damaged_run(runs, capsys):
    done = json.loads((runs / "bad" / "DONE").read_text())
    done["files"]["config.json"] = None
    (runs / "bad" / "DONE").write_text(json.dumps(done))
    with pytest.warns(UserWarning, match="skipping damaged run"):
        assert main(["show", str(runs)]) == 0
    assert capsys.readouterr().out.count("entropy") >= 1
    shutil.rmtree(runs / "good")
    with pytest.warns(UserWarning, match="skipping damaged run"):
        _one_line_exit_2(["show", str(runs)], capsys, "no intact run below it")


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "DONE"])
def test_case2_an_entry_outside_the_run_is_damaged(runs, name):
    bad = runs / "bad"
    done = json.loads((bad / "DONE").read_text())
    done["files"][name] = {"sha256": "0" * 64, "size": 0}
    (bad / "DONE").write_text(json.dumps(done))
    with pytest.raises(DamagedRunError, match="is not a file of the run"):
        open_run(bad)


# -- case 3: torn reads while another process publishes with --overwrite --------------------

def _publish_alternately(out: str, rounds: int, ready) -> None:
    """Another process: publish runs of seed 1 and seed 2 over `out`, `rounds` times."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_runs import record

    from rsp_probe.runs import RunWriter

    for number in range(rounds):
        seed = 1 + number % 2
        records = [{**record("k0", f"p{i}", 0), "seed": seed, "text": "x" * (seed * 2000)}
                   for i in range(40)]
        writer = RunWriter(Path(out), {"command": "entropy", "seed": seed}, overwrite=True)
        writer.write_trajectories(records, {r["id"]: np.zeros((0, 4), np.float32)
                                            for r in records},
                                  {r["id"]: {"entropy": np.zeros(3, np.float32)}
                                   for r in records})
        writer.finish({})
        if number == 0:
            ready.set()


def _publishing(out: Path, rounds: int):
    context = mp.get_context("fork")
    ready = context.Event()
    writer = context.Process(target=_publish_alternately, args=(str(out), rounds, ready))
    writer.start()
    assert ready.wait(60), "the publishing process did not start"
    return writer


def _read_whole(path: Path) -> tuple[int, set]:
    run = open_run(path)
    return run.config["seed"], set(run.trajectories["seed"])


def test_case3_no_torn_read_while_another_process_publishes(tmp_path, monkeypatch):
    """In the issue, 37 of 529 reads went wrong: 30 saw a healthy run as damaged, 7 mixed
    one seed's config with the other's trajectories. Every read here must be whole: the
    config's seed is every trajectory's seed, and no read fails."""
    import rsp_probe.runs as runs_module

    # patched before the fork: the publisher skips `git rev-parse` and publishes faster
    monkeypatch.setattr(runs_module, "provenance", lambda: {})
    out = tmp_path / "run"
    writer = _publishing(out, rounds=80)
    reads, problems = 0, []
    try:
        while writer.is_alive() or reads < 50:
            try:
                config_seed, seeds = _read_whole(out)
            except UsageError as err:
                problems.append(str(err))
            else:
                if seeds != {config_seed}:
                    problems.append(f"config seed {config_seed}, trajectories {seeds}")
            reads += 1
    finally:
        writer.join(120)
    assert writer.exitcode == 0
    assert reads >= 50 and not problems, (reads, problems[:5])


def test_case3_an_opened_run_stays_whole_after_it_is_replaced(tmp_path):
    """In process: a run opened before a publish reads the old files, whole, after it."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_runs import record, write_run

    out = tmp_path / "run"
    write_run(out, {"command": "entropy", "seed": 1}, [{**record("k0", "p", 0), "seed": 1}])
    opened = open_run(out)
    from rsp_probe.runs import RunWriter

    writer = RunWriter(out, {"command": "entropy", "seed": 2}, overwrite=True)
    writer.write_trajectories([{**record("k0", "p", 0), "seed": 2}],
                              {"k0/p/0": np.zeros((0, 4), np.float32)},
                              {"k0/p/0": {"entropy": np.zeros(1, np.float32)}})
    writer.finish({})
    assert opened.config["seed"] == 1 and opened.records()[0]["seed"] == 1
    assert open_run(out).config["seed"] == 2


# -- case 4: tracebacks ----------------------------------------------------------------------

def _soft_prompt(path: Path, card, vectors=None) -> Path:
    from safetensors.numpy import save_file

    vectors = np.zeros((4, 8), np.float32) if vectors is None else vectors
    save_file({"prompt": vectors}, str(path), metadata={"card": json.dumps(card)})
    return path


@pytest.mark.parametrize("card", [None, [1, 2], "text"])
def test_case4_soft_prompt_card_not_an_object(tmp_path, card):
    from rsp_probe.soft_prompts.io import read_card

    with pytest.raises(UsageError, match="not a soft prompt written by"):
        read_card(_soft_prompt(tmp_path / "p.safetensors", card))


def test_case4_truncated_or_nan_soft_prompt_refused_before_the_model(tmp_path):
    from rsp_probe.soft_prompts.io import read_card

    card = {"k": 4, "d_model": 8}
    path = _soft_prompt(tmp_path / "p.safetensors", card)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UsageError, match="truncated"):
        read_card(path)
    nan = np.full((4, 8), np.nan, np.float32)
    with pytest.raises(UsageError, match="NaN or infinite"):
        read_card(_soft_prompt(tmp_path / "q.safetensors", card, nan))


def test_case4_a_huge_sigma_scale_is_one_line_and_leaves_no_failed_run(loaded_qwen2, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="--sigma-scale 1e\\+300: the RSP's sigma"):
        rsp_probe.entropy(model=loaded_qwen2, out=str(out), sigma_scale=1e300, **OPTIONS)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_case4_non_finite_logits_are_one_line():
    """A batch whose logits hold NaN (vectors that overflow the model) stops with a
    UsageError at the draw, never torch's multinomial RuntimeError."""
    from rsp_probe.sampler import _TokenChooser as Chooser

    chooser = Chooser.__new__(Chooser)
    chooser.temperature = torch.ones(1, 1)
    chooser.top_p = torch.ones(1, 1)
    chooser.generators = [torch.Generator().manual_seed(0)]
    chooser.sampled_rows, chooser.filters = [0], False
    with pytest.raises(UsageError, match="logits are not finite"):
        chooser.choose(torch.full((1, 5), float("nan")))


def test_case4_grade_of_a_latin1_file(tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    path.write_bytes('{"text": "caf\u00e9 #### 4", "answer": "4"}\n'.encode("latin-1"))
    _one_line_exit_2(["grade", str(path)], capsys, "not UTF-8 text")


def test_case4_a_billion_rsp_tokens_is_refused_before_building_them(loaded_qwen2, tmp_path):
    with pytest.raises(UsageError, match="--rsp-tokens 1000000000 does not fit"):
        rsp_probe.entropy(model=loaded_qwen2, out=str(tmp_path / "r"),
                          **{**OPTIONS, "rsp_tokens": (0, 10**9)})


def _rewrite_jsonl(run: Path, edit) -> None:
    lines = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    (run / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edit(lines)))


CONSISTENT_BUT_WRONG = {
    "no-value-column": (lambda run: pd.read_parquet(run / "steps.parquet").drop(
        columns="value").to_parquet(run / "steps.parquet"), "steps.parquet has no value column"),
    "empty-trajectories": (lambda run: (run / "trajectories.jsonl").write_text(""),
                           "trajectories.jsonl has no trajectories"),
    "text-not-a-string": (lambda run: _rewrite_jsonl(run, lambda rs: [
        {**r, "text": ["a", "list"]} for r in rs]), "'text' is a list"),
    "no-prompt-id": (lambda run: _rewrite_jsonl(run, lambda rs: [
        {k: v for k, v in r.items() if k != "prompt_id"} for r in rs]), "no valid 'prompt_id'"),
}


@pytest.mark.parametrize("case", sorted(CONSISTENT_BUT_WRONG))
def test_case4_runs_consistent_with_done_but_malformed(runs, capsys, case):
    damage, message = CONSISTENT_BUT_WRONG[case]
    damage(runs / "bad")
    _reseal(runs / "bad")
    _one_line_exit_2(["show", str(runs / "bad")], capsys, message)
    with pytest.warns(UserWarning):
        assert main(["theory", str(runs)]) == 0


API_INPUTS = {
    "rsp_tokens": ("4", "argument --rsp-tokens: expected a list of int, got '4'"),
    "rsp_tokens ": ((None,), "argument --rsp-tokens: expected a list of int, got (None,)"),
    "max_new_tokens": (2.5, "argument --max-new-tokens: invalid int value: 2.5"),
    "shard": ((0, 2), "argument --shard: invalid str value: (0, 2)"),
    "device": ("tpu", "argument --device: invalid choice: 'tpu' (choose from 'auto', 'cpu', "
                      "'cuda')"),
    "seed": ("abc", "argument --seed: invalid int value: 'abc'"),
    "law": ("bogus", "argument --law: invalid choice: 'bogus'"),
    "n_prompts": (True, "argument --n-prompts: invalid int value: True"),
    "out": ("", "--out must name a directory, got an empty string"),
}


@pytest.mark.parametrize("name", sorted(API_INPUTS))
def test_case4_api_inputs_are_checked_before_any_model_loads(name, monkeypatch, tmp_path):
    import rsp_probe.models

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(rsp_probe.models, "load_model", no_load)
    monkeypatch.chdir(tmp_path)
    value, message = API_INPUTS[name]
    options = {"out": str(tmp_path / "run"), name.strip(): value}
    with pytest.raises(UsageError) as caught:
        rsp_probe.entropy(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no run directory, no lock file


def _cli_status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit:  # argparse's own errors
        return exit.code


@pytest.mark.parametrize("argv,message", [
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu' (choose from 'auto', "
                          "'cpu', 'cuda')"),
    (["--law", "bogus"], "argument --law: invalid choice: 'bogus'"),
    (["--out", ""], "--out must name a directory, got an empty string")])
def test_case4_the_cli_says_the_same_line(argv, message, capsys):
    assert _cli_status(["entropy", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


# -- case 5: --out through a symbolic link ---------------------------------------------------

def test_case5_out_through_a_link_writes_where_it_points(loaded_qwen2, tmp_path, capsys):
    target = tmp_path / "target"
    link = tmp_path / "link"
    target.mkdir()
    link.symlink_to(target)
    for _ in range(2):  # the second replaces the first: through the link, every time
        rsp_probe.entropy(model=loaded_qwen2, out=str(link), overwrite=True, **OPTIONS)
        assert link.is_symlink() and open_run(target).config["command"] == "entropy"
    assert main(["clean", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_case5_a_dangling_link_is_refused_before_the_model(tmp_path, monkeypatch):
    import rsp_probe.models

    monkeypatch.setattr(rsp_probe.models, "load_model", lambda *a, **k: 1 / 0)
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="a symbolic link to .*nowhere, which does not exist"):
        rsp_probe.entropy(out=str(tmp_path / "link"), **OPTIONS)


def test_case5_clean_removes_a_staging_link_of_older_versions(tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / ".link.partial").symlink_to(tmp_path / "elsewhere")
    assert main(["clean", str(tmp_path)]) == 0
    assert not (tmp_path / ".link.partial").is_symlink() and (tmp_path / "elsewhere").is_dir()


# -- case 6: grade --timeout nan / inf -------------------------------------------------------

@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0"])
def test_case6_grade_timeout_must_be_finite_and_positive(tmp_path, capsys, timeout):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "#### 4", "answer": "4"}\n')
    _one_line_exit_2(["grade", str(path), "--timeout", timeout], capsys,
                     "--timeout must be positive")


# -- case 7: merge and grade read only what DONE lists ---------------------------------------

def test_case7_merge_ignores_a_stray_file(loaded_qwen2, tmp_path, capsys):
    shards = []
    for index in range(2):
        out = tmp_path / f"shard{index}"
        rsp_probe.entropy(model=loaded_qwen2, out=str(out), shard=f"{index}/2", **OPTIONS)
        pd.DataFrame({"junk": [1]}).to_parquet(out / "stray.parquet")  # not in DONE
        (out / "notes.txt").write_text("a stray file")
        shards.append(str(out))
    assert main(["merge", *shards, "--out", str(tmp_path / "merged")]) == 0
    merged = open_run(tmp_path / "merged")
    assert not {"stray.parquet", "notes.txt"} & set(merged.files())
    assert not (tmp_path / "merged" / "stray.parquet").exists()


def test_case7_grade_copies_no_junk(tmp_path, capsys):
    source = tmp_path / "passk"
    shutil.copytree(Path(__file__).parent / "data" / "runs" / "passk", source)
    (source / "junk.bin").write_bytes(b"\0" * 10)
    assert main(["grade", str(source), "--out", str(tmp_path / "regraded")]) == 0
    regraded = tmp_path / "regraded"
    assert "junk.bin" not in read_manifest(regraded)["files"]
    assert not (regraded / "junk.bin").exists()


# -- case 8: finished work kept around --resume ----------------------------------------------

def _in_child(point: str, run, signal_name: str | None = None) -> int:
    """Run `run()` in a forked child with a kill point; its exit status (or -signal)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            torch.set_num_threads(1)
            if point:
                os.environ[KILL_POINT_ENV] = point
            if signal_name:
                os.environ[KILL_SIGNAL_ENV] = signal_name
            run()
        except KeyboardInterrupt:
            code = 130
        except SystemExit as exit:  # the command line's status
            code = exit.code
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


STREAMED = dict(n_prompts=2, samples=2, rsp_tokens=(0, 4), max_new_tokens=4, batch_size=4,
                temperature=1.0, quiet=True, seed=3)


@pytest.mark.parametrize("point,how", [("merged", None), ("parts-deleted", None),
                                       ("publish", "INT"), ("merged", "INT")])
def test_case8_resume_after_the_merge_recomputes_nothing(loaded_qwen2, tmp_path, point, how):
    out = tmp_path / "run"

    def run(resume=False):
        rsp_probe.entropy(model=loaded_qwen2, out=str(out), resume=resume, **STREAMED)

    status = _in_child(point, run, how)
    # killed there, or (Ctrl-C) stopped there with KeyboardInterrupt: never swallowed
    assert status == (130 if how else -signal.SIGKILL), status
    assert not out.exists()
    # the resumed run would die at batch 0's prefill if it computed any batch again
    assert _in_child("batch-0-prefill", lambda: run(resume=True)) == 0
    reference = tmp_path / "reference"
    rsp_probe.entropy(model=loaded_qwen2, out=str(reference), **STREAMED)
    assert (out / "trajectories.jsonl").read_bytes() == (
        reference / "trajectories.jsonl").read_bytes()
    assert sorted(open_run(out).files()) == sorted(open_run(reference).files())


def test_case8_ctrl_c_in_the_cli_final_phase_exits_130(loaded_qwen2, tmp_path, monkeypatch,
                                                       capsys):
    """The command line's own path: a Ctrl-C while the run is published is exit 130."""
    import rsp_probe.experiments.common as common

    monkeypatch.setattr(common, "_load", lambda spec: loaded_qwen2)
    out = tmp_path / "run"
    argv = ["entropy", "--out", str(out), "--n-prompts", "2", "--samples", "2",
            "--max-new-tokens", "4", "--quiet", "--seed", "3"]
    assert _in_child("publish", lambda: sys.exit(main(argv)), "INT") == 130
    assert not out.exists()


# -- case 9: datasets with NaN or non-string questions ---------------------------------------

@pytest.mark.parametrize("question", [float("nan"), ["a", "list"], {"a": 1}, 5, None, "  "])
def test_case9_a_question_must_be_text(question):
    from rsp_probe.tasks.datasets import records_to_problems

    records = [("data.jsonl:1", {"question": question, "answer": "4"})]
    with pytest.raises(UsageError, match="data.jsonl:1"):
        records_to_problems(records, "data", question_field="question")


@pytest.mark.parametrize("answer", [float("nan"), ["4"], True])
def test_case9_an_answer_must_be_text_or_a_finite_number(answer):
    from rsp_probe.tasks.datasets import records_to_problems

    records = [("data.jsonl:1", {"question": "2 + 2?", "answer": answer})]
    with pytest.raises(UsageError, match="field 'answer'"):
        records_to_problems(records, "data")
    ok = records_to_problems([("d:1", {"question": "2 + 2?", "answer": 4})], "d")
    assert ok[0].answer == "4"


def test_case9_nan_in_a_parquet_dataset(tmp_path):
    from rsp_probe.tasks.datasets import load_dataset_file

    path = tmp_path / "data.parquet"
    pd.DataFrame({"question": ["2 + 2?", None], "answer": ["4", "5"]}).to_parquet(path)
    with pytest.raises(UsageError, match="data.parquet row 1"):
        load_dataset_file(path)


# -- case 10: small contract breaches --------------------------------------------------------

@pytest.mark.parametrize("version", [0, -1, True, "1", 2])
def test_case10_done_schema_version_is_checked(runs, version):
    bad = runs / "bad"
    done = json.loads((bad / "DONE").read_text())
    done["schema_version"] = version
    (bad / "DONE").write_text(json.dumps(done))
    message = "newer rsp-probe" if version == 2 else "schema_version"
    with pytest.raises(DamagedRunError, match=message):
        open_run(bad)


@pytest.mark.parametrize("version", [-1, True, 0, None])
def test_case10_config_schema_version_is_checked(runs, version):
    bad = runs / "bad"
    config = json.loads((bad / "config.json").read_text())
    config["schema_version"] = version
    (bad / "config.json").write_text(json.dumps(config))
    _reseal(bad)
    with pytest.raises(DamagedRunError, match="schema_version|schema"):
        open_run(bad)


def test_case10_config_and_done_must_agree_on_the_schema(runs):
    _reseal(runs / "bad", version=1)
    done = json.loads((runs / "bad" / "DONE").read_text())
    assert done["schema_version"] == 1
    from rsp_probe.runio.integrity import parse_manifest

    assert parse_manifest(json.dumps(done).encode(), runs / "bad")["schema_version"] == 1


def test_case10_out_dot_in_an_empty_folder(loaded_qwen2, tmp_path, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    run, _ = rsp_probe.entropy(model=loaded_qwen2, out=".", **OPTIONS)
    assert run.path == here and open_run(here).config["command"] == "entropy"
    assert not (here / "..lock").exists() and not list(here.glob(".*"))


def test_case10_the_run_figure_names_the_run(good_run):
    frame = pd.read_csv(good_run / "figure-entropy.csv")
    assert set(frame["run"]) == {"good"}


# -- case 11: no Ray process outlives a killed --workers driver ------------------------------

def _descendants(root: int) -> set[int]:
    """The live descendants of `root`, read from /proc (independently of the watchdog)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else None
        except OSError:
            continue
        if stat:
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found.update(children)
        frontier.extend(children)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie has exited; only its parent's wait is missing
            alive.add(pid)
    return alive


DRIVER = """
import ray, time
from rsp_probe.experiments.distributed import _connect
from rsp_probe.config import OutputConfig
_connect(ray, OutputConfig(workers=1))
ray.get(ray.remote(lambda: 1).remote())  # a worker started too
print("ready", flush=True)
time.sleep(600)
"""


def test_case11_ray_dies_with_a_killed_driver(tmp_path):
    """kill -9 of a driver that started a local Ray cluster: within a minute no process of
    that cluster (node processes, agents, workers) is left."""
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(Path(__file__).parents[1])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert driver.stdout.readline().strip() == "ready", "Ray did not start"
        ray_processes = _descendants(driver.pid)
        assert len(ray_processes) >= 3, ray_processes  # node processes, the watchdog, ...
    finally:
        driver.kill()  # as kill -9
        driver.wait()
    deadline = time.monotonic() + 60
    while _alive(ray_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _alive(ray_processes)
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the killed driver: {left}"
