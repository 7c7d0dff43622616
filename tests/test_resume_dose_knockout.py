"""dose, knockout and compare-prompts stream and resume like the sampling experiments: each
phase (dose, knockout, arm) is a block of parts, and a run SIGKILLed (or Ctrl-C'd) in a later
phase, then resumed with --resume, equals the uninterrupted run byte for byte, every file
but meta.json and DONE (config.json up to the execution keys), while only the batches left
undone are decoded and teacher-forced again.

The killed runs are forked children of the test process (the model is already loaded there)
that SIGKILL themselves at a named point (RSP_PROBE_KILL_AT), as in test_faults_stream."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from rsp_probe.experiments.base import get_experiment
from rsp_probe.runs import EXECUTION_KEYS, KILL_POINT_ENV, open_run

# 3 prompts x 2 samples per condition = 6 jobs: 2 parts each (4 + 2)
SMALL = dict(n_prompts=3, samples=2, max_new_tokens=4, batch_size=4, pass_k=(1, 2), seed=1,
             quiet=True)
# parts 0-1 k0, 2-3 k2, 4-5 k4-sigma2
DOSE = dict(rsp_tokens=(2,), sigma_scales=("2",))
# parts 0-1 full, 2-3 baseline, 4-5 cut2, 6-7 layer0, 8-9 direct-only
KNOCKOUT = dict(rsp_tokens=(2,), cut_after=("2",), block_layers=(0,), paths=("direct",))
# parts 0-1 none, 2 greedy-none (one per prompt), 3-4 rsp, 5-6 greedy-rsp, 7-8 trained,
# 9 greedy-trained
COMPARE = dict(rsp_tokens=(2,), arms=("none", "rsp", "trained"))


@pytest.fixture(scope="module")
def soft_prompt(tiny_qwen2, tmp_path_factory) -> str:
    from rsp_probe.models import weights_sha256
    from rsp_probe.soft_prompts.io import model_identity, save_soft_prompt

    path = tmp_path_factory.mktemp("prompt") / "prompt.safetensors"
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    save_soft_prompt(path, vectors, {"placement": "suffix", **model_identity(
        str(tiny_qwen2), weights_sha256(tiny_qwen2), None)})
    return str(path)


def _options(command: str, soft_prompt: str) -> dict:
    own = {"dose": DOSE, "knockout": KNOCKOUT,
           "compare-prompts": {**COMPARE, "soft_prompt": soft_prompt}}[command]
    return {**SMALL, **own}


def _run(command: str, model, out: Path, options: dict, **extra):
    return get_experiment(command)(model=model, out=str(out), **options, **extra)


@contextmanager
def _counting():
    """What the run decodes and teacher-forces: the size of every decoded batch, and the id
    of every trajectory teacher-forced (dose_kl, knockout_kl, compare_kl)."""
    import rsp_probe.interventions.teacher_forced as forced
    import rsp_probe.probes.influence as influence
    import rsp_probe.sampler as sampler

    seen = {"batches": [], "forced": []}
    real = {(sampler, "_generate_batch"): sampler._generate_batch,
            (influence, "influence_batch"): influence.influence_batch,
            (forced, "knockout_kl"): forced.knockout_kl, (forced, "path_kl"): forced.path_kl}

    def decoded(model, jobs, *args):
        seen["batches"].append(len(jobs))
        return real[sampler, "_generate_batch"](model, jobs, *args)

    def teacher_forced(module, name):
        def count(model, jobs, *args, **kwargs):
            seen["forced"] += [job.id for job in (jobs if isinstance(jobs, list) else [jobs])]
            return real[module, name](model, jobs, *args, **kwargs)
        return count

    sampler._generate_batch = decoded
    for module, name in list(real)[1:]:
        setattr(module, name, teacher_forced(module, name))
    try:
        yield seen
    finally:
        for (module, name), function in real.items():
            setattr(module, name, function)


@pytest.fixture(scope="module")
def references(loaded_qwen2, soft_prompt, tmp_path_factory):
    """Each experiment's uninterrupted run, and what it decoded and teacher-forced; named
    `run` like the resumed ones (the figure's data names its run)."""
    folder, found = tmp_path_factory.mktemp("uninterrupted"), {}
    for command in ("dose", "knockout", "compare-prompts"):
        with _counting() as seen:
            _run(command, loaded_qwen2, folder / command / "run", _options(command, soft_prompt))
        found[command] = folder / command / "run", seen
    return found


def _killed_at(point: str, run) -> None:
    """Run in a forked child that SIGKILLs itself at `point`; assert it died there."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            torch.set_num_threads(1)
            os.environ[KILL_POINT_ENV] = point
            run()
        finally:
            os._exit(3)  # reached only if the kill point was never hit
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (point, status)


def _assert_identical(run: Path, reference: Path) -> None:
    """Every file byte for byte but meta.json (times, commit) and DONE (its checksum);
    config.json up to how the run was executed (--resume, --out)."""
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in reference.iterdir())
    for name in set(names) - {"meta.json", "DONE", "config.json"}:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    config = [{k: v for k, v in json.loads((path / "config.json").read_text()).items()
               if k not in EXECUTION_KEYS} for path in (run, reference)]
    assert config[0] == config[1]


def _done_parts(out: Path) -> tuple[list[int], list[str]]:
    """The complete parts of the staged run at `out`, and their trajectory ids."""
    parts = out.parent / f".{out.name}.partial" / "parts"
    numbers = sorted(int(p.stem) for p in parts.glob("*.done"))
    ids = [json.loads(line)["id"] for n in numbers
           for line in (parts / f"{n:05d}.jsonl").read_text().splitlines()]
    return numbers, ids


@pytest.mark.parametrize("command, point, done", [
    ("dose", "batch-3-prefill", 3),  # in the second dose: its first part done
    ("knockout", "batch-5-partial", 5),  # the cut's second part half written
    ("compare-prompts", "batch-4-prefill", 4),  # in the rsp arm, the none twins done
])
def test_killed_in_a_later_phase_then_resumed_recomputes_nothing_done(
        command, point, done, references, loaded_qwen2, soft_prompt, tmp_path):
    reference, uninterrupted = references[command]
    options, out = _options(command, soft_prompt), tmp_path / "run"
    _killed_at(point, lambda: _run(command, loaded_qwen2, out, options))
    numbers, finished = _done_parts(out)
    assert numbers == list(range(done))
    with _counting() as resumed:
        _run(command, loaded_qwen2, out, options, resume=True)
    _assert_identical(out, reference)
    # only the parts not done are decoded again, and only their trajectories teacher-forced
    n_done_jobs = len(finished)
    assert sum(uninterrupted["batches"][:done]) == n_done_jobs
    assert resumed["batches"] == uninterrupted["batches"][done:]
    assert resumed["forced"] == [i for i in uninterrupted["forced"] if i not in finished]
    assert set(uninterrupted["forced"]) & set(finished)  # the test can tell


def test_ctrl_c_mid_run_keeps_the_parts_for_resume(references, loaded_qwen2, soft_prompt,
                                                   tmp_path, monkeypatch):
    reference, uninterrupted = references["knockout"]
    options, out = _options("knockout", soft_prompt), tmp_path / "run"

    def interrupt(point):
        if point == "batch-6-done":
            raise KeyboardInterrupt

    monkeypatch.setattr("rsp_probe.runs.kill_point", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run("knockout", loaded_qwen2, out, options)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial"]  # lock released
    assert _done_parts(out)[0] == list(range(7))
    with _counting() as resumed:
        _run("knockout", loaded_qwen2, out, options, resume=True)
    assert resumed["batches"] == uninterrupted["batches"][7:]
    _assert_identical(out, reference)


@pytest.mark.parametrize("point", ["merged", "parts-deleted"])
def test_dose_killed_after_the_merge_decodes_nothing_again(point, references, loaded_qwen2,
                                                           soft_prompt, tmp_path):
    """After the merge only the tables are left: score_shift.parquet (teacher-forced with
    the model, from the merged baseline) and dose.parquet come out the same."""
    reference, _ = references["dose"]
    options, out = _options("dose", soft_prompt), tmp_path / "run"
    _killed_at(point, lambda: _run("dose", loaded_qwen2, out, options))
    with _counting() as resumed:
        _run("dose", loaded_qwen2, out, options, resume=True)
    assert resumed == {"batches": [], "forced": []}
    _assert_identical(out, reference)


def test_dose_killed_in_the_score_shift_phase_shifts_only_the_doses_left(
        references, loaded_qwen2, soft_prompt, tmp_path, monkeypatch):
    """Killed after the first dose's score-shift rows were written: the resumed run shifts
    only the second dose's prompts, and its score_shift.parquet is the uninterrupted one."""
    import rsp_probe.interventions.score_shift as shift_module

    reference, _ = references["dose"]
    options, out = _options("dose", soft_prompt), tmp_path / "run"
    _killed_at("score-shift-k2", lambda: _run("dose", loaded_qwen2, out, options))
    shifted = []
    real = shift_module.score_shift

    def counting(model, job, *args, **kwargs):
        shifted.append(job.id)
        return real(model, job, *args, **kwargs)

    monkeypatch.setattr(shift_module, "score_shift", counting)
    with _counting() as resumed:
        _run("dose", loaded_qwen2, out, options, resume=True)
    assert resumed == {"batches": [], "forced": []}
    assert shifted and {job.split("/")[0] for job in shifted} == {"k4-sigma2"}
    _assert_identical(out, reference)


def test_the_phases_are_blocks_of_parts_in_the_old_file_order(references):
    """trajectories.jsonl keeps one block per condition, each in job order (prompt, then
    sample), as the experiments wrote it before they streamed."""
    for command, conditions in (
            ("dose", ["k0", "k2", "k4-sigma2"]),
            ("knockout", ["full", "baseline", "cut2", "layer0", "direct-only"]),
            ("compare-prompts", ["none", "greedy-none", "rsp", "greedy-rsp", "trained",
                                 "greedy-trained"])):
        run = open_run(references[command][0])
        records = run.records()
        assert list(dict.fromkeys(r["condition"] for r in records)) == conditions
        for condition in conditions:
            block = [(r["prompt_id"], r["sample"]) for r in records
                     if r["condition"] == condition]
            assert block == sorted(block, key=lambda key: (
                [r["prompt_id"] for r in records].index(key[0]), key[1]))
