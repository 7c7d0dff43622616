"""Runs whose grading partly failed, re-grading a run, and a checker that cannot start."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rsp_probe
from rsp_probe.analysis.summaries import describe
from rsp_probe.cli import main
from rsp_probe.runio.integrity import write_manifest
from rsp_probe.runs import open_run

# The second problem's reference cannot be read, so each of its checks fails (quickly): a
# failure that must show up as ungraded, never as a wrong answer.
PROBLEMS = [{"problem": "What is 1 + 1?", "answer": "2"},
            {"problem": "What is 2 + 2?", "answer": "\\boxed{}"}]
SMALL = dict(n_prompts=2, max_new_tokens=8, quiet=True)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "two.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


@pytest.fixture(scope="module")
def partly_ungraded(loaded_qwen2, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "passk"
    run, _ = rsp_probe.passk(model=loaded_qwen2, dataset=str(dataset), samples=2, pass_k=(1, 2),
                             conditions=("temp", "greedy"), out=str(out), **SMALL)
    return run


def test_ungraded_trajectories_are_recorded_and_counted(partly_ungraded, capsys):
    frame = partly_ungraded.trajectories
    failed = frame["grade_error"].notna()
    assert set(frame.loc[failed, "reference_answer"]) == {"\\boxed{}"}
    assert frame.loc[failed, "correct"].isna().all() and failed.sum() == 3  # 2 temp + 1 greedy
    assert frame.loc[~failed, "correct"].notna().all()
    table = partly_ungraded.table("passk.parquet").set_index(["condition", "k"])
    assert table.loc[("temp", 1), "ungraded"] == 2 and table.loc[("greedy", 1), "ungraded"] == 1
    assert (table["n_problems"] == 1).all()  # the ungraded problem is left out of Pass@k
    graded = frame[~failed].groupby("condition")["correct"].mean()
    for condition in ("temp", "greedy"):
        assert table.loc[(condition, 1), "pass_at_k"] == pytest.approx(graded[condition])
    assert main(["show", str(partly_ungraded.path)]) == 0
    shown = capsys.readouterr().out
    assert ("warning: 3 of 6 trajectories could not be graded (e.g. ValueError: the reference "
            "answer '\\\\boxed{}' could not be read); they are excluded from accuracy and "
            "Pass@k") in shown
    assert "accuracy" in shown and "2 ungraded" in shown and "1 ungraded" in shown


def _digests(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.iterdir()}


def test_regrading_writes_a_new_run_and_leaves_the_original_alone(partly_ungraded, tmp_path,
                                                                  capsys):
    before = _digests(partly_ungraded.path)
    out = tmp_path / "regraded"
    assert main(["grade", str(partly_ungraded.path), "--out", str(out)]) == 0
    assert _digests(partly_ungraded.path) == before
    new = open_run(out)
    assert new.config["regraded_from"] == str(partly_ungraded.path)
    columns = ["id", "answer", "correct", "grade_error"]
    assert new.trajectories[columns].equals(partly_ungraded.trajectories[columns])
    assert new.table("passk.parquet").equals(partly_ungraded.table("passk.parquet"))
    assert _digests(out)["rsp.safetensors"] == before["rsp.safetensors"]
    assert "re-graded 6 trajectories: 0 changed verdict, 3 could not be graded" in \
        capsys.readouterr().err
    assert main(["grade", str(partly_ungraded.path), "--out", str(partly_ungraded.path)]) == 2


def test_regrading_an_arithmetic_run_keeps_its_verdicts(tmp_path):
    source = open_run(ROOT / "tests" / "data" / "runs" / "passk")
    assert main(["grade", str(source.path), "--out", str(tmp_path / "r")]) == 0
    new = open_run(tmp_path / "r")
    assert new.trajectories["correct"].tolist() == source.trajectories["correct"].tolist()
    assert new.trajectories["grade_error"].isna().all()


def _from_stdin(program: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `program` as `python - < program`: spawn cannot re-import such a main module."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-"], input=program, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("argv", [
    lambda run, dataset, model, out: ["grade", str(run.path), "--out", str(out)],
    lambda run, dataset, model, out: ["passk", "--dataset", str(dataset), "--model", str(model),
                                      "--n", "2", "--pass-k", "1", "--n-prompts", "1",
                                      "--max-new-tokens", "4", "--quiet", "--out", str(out)],
], ids=["grade", "passk"])
def test_a_checker_that_cannot_start_fails_in_one_line_with_exit_1(
        argv, partly_ungraded, dataset, tiny_qwen2, tmp_path):
    out = tmp_path / "out"
    args = argv(partly_ungraded, dataset, tiny_qwen2, out)
    program = f"import sys\nfrom rsp_probe.cli import main\nsys.exit(main({args!r}))\n"
    done = _from_stdin(program, tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"rsp-probe {args[0]}: error: the answer checker's worker processes could not start: "
        "multiprocessing spawn re-imports the main program, which a program read from standard "
        "input, or a script without an `if __name__ == '__main__':` guard, does not allow"]
    assert not (out / "DONE").exists()


def test_describe_of_a_run_without_grade_errors_has_no_warning():
    run = open_run(ROOT / "tests" / "data" / "runs" / "passk")  # written before grade_error
    assert "could not be graded" not in describe(run)


@pytest.mark.parametrize(("answer_format", "verdict"), [("boxed", True), ("####", False)])
def test_regrading_follows_the_recorded_prompts_answer_format(tmp_path, answer_format, verdict):
    """The same texts (the right number boxed, a wrong one after ####) are right under a
    prompt that asked for \\boxed{} and wrong under one that asked for ####: re-grading
    reads the answer format from config.json, as grading the run did."""
    import shutil

    source = tmp_path / "source"
    shutil.copytree(ROOT / "tests" / "data" / "runs" / "passk", source)
    config = json.loads((source / "config.json").read_text())
    config["prompt"] = {"name": "math-cot", "answer_format": answer_format}
    (source / "config.json").write_text(json.dumps(config))
    records = [json.loads(line) for line in (source / "trajectories.jsonl").open()]
    for record in records:
        right = int(record["reference_answer"])
        record["text"] = f" 5 + 7 is {right}. #### {right + 1}\nSo \\boxed{{{right}}}."
    (source / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_manifest(source, config["schema_version"])  # the edited run, sealed as written
    assert main(["grade", str(source), "--out", str(tmp_path / "r")]) == 0
    new = open_run(tmp_path / "r")
    assert new.trajectories["correct"].tolist() == [verdict] * len(records)
    assert new.trajectories["grade_error"].isna().all()
