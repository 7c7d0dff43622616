"""Claims are code: each claim recomputed by hand from a run, the documents rendered from the
claims and checked against them (a number edited by hand fails), the compact evidence runs,
and the committed claims table against the committed runs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.claims import compute_claims
from rsp_probe.claims.documents import check_document, update_documents
from rsp_probe.claims.evidence import EVIDENCE_FILE, check_evidence, compact_run
from rsp_probe.cli import main
from rsp_probe.runio.integrity import DamagedRunError, write_manifest
from rsp_probe.runs import RSP_FILE, find_runs, open_run

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "runs"
DOCUMENT = ("# doc\n\ntext 1.5 outside\n\n<!-- BEGIN GENERATED RESULTS -->\n"
            "<!-- END GENERATED RESULTS -->\n\n<!-- BEGIN GENERATED COMPARISON -->\n"
            "<!-- END GENERATED COMPARISON -->\n\n<!-- BEGIN GENERATED VERDICTS -->\n"
            "<!-- END GENERATED VERDICTS -->\n")


@pytest.fixture(scope="module")
def golden_runs():
    return {run.id: run for run in find_runs([GOLDEN])}


@pytest.fixture(scope="module")
def golden_claims(golden_runs):
    return compute_claims(golden_runs)


def test_entropy_lift_by_hand(golden_runs, golden_claims):
    """entropy.lift.early.k4: per prompt, entropy over steps 1-3 of each trajectory, averaged
    over trajectories, k4 minus k0; mean and bootstrap CI over prompts."""
    run = golden_runs["entropy"]
    steps = run.steps[run.steps["probe"] == "entropy"]
    per_condition = {}
    for record in run.trajectories.to_dict("records"):
        values = steps[(steps["trajectory"] == record["id"]) & (steps["step"] <= 3)]["value"]
        per_condition.setdefault(record["condition"], {}).setdefault(
            record["prompt_id"], []).append(values.to_numpy(float).mean())
    prompts = sorted(per_condition["k0"])
    diffs = [np.mean(per_condition["k4"][p]) - np.mean(per_condition["k0"][p]) for p in prompts]
    claim = golden_claims.by_id()["entropy.lift.early.k4"]
    assert claim.value == pytest.approx(np.mean(diffs), rel=1e-6)
    assert (claim.value, claim.ci_low, claim.ci_high) == pytest.approx(bootstrap_mean(diffs))
    assert claim.n == len(prompts) and claim.runs == ("entropy",)
    assert f"{claim.value:+.3f} nats" in claim.sentence


def test_late_window_follows_each_trajectory(golden_runs, golden_claims):
    run = golden_runs["attention"]
    steps = run.steps[run.steps["probe"] == "rsp_attention"]
    lengths = run.trajectories.set_index("id")["n_steps"]
    rows = steps[steps["step"] > steps["trajectory"].map(lengths) - 10]
    per_trajectory = rows.groupby("trajectory")["value"].mean()
    traj = run.trajectories.set_index("id").loc[per_trajectory.index]
    k4 = per_trajectory[traj["condition"] == "k4"].groupby(traj["prompt_id"]).mean()
    assert golden_claims.by_id()["attention.mass.late.k4"].value == pytest.approx(k4.mean())


@pytest.fixture(scope="module")
def committed_runs():
    return {run.id: run for run in find_runs([ROOT / "figures" / "runs"])}


def test_budget_split_is_the_pooled_mass_by_hand(committed_runs):
    """The golden runs predate the budget probes; the committed attention run has them. The
    split is redone from the raw budget masses: pooled (mean) RSP mass at step 16 minus at
    step 1, and the dilution counterfactual with each cell's own n."""
    run = committed_runs["attention"]
    claims = compute_claims({"attention": run}, only=["budget"]).by_id()
    steps = run.steps[run.steps["probe"] == "budget_rsp"]
    traj = run.trajectories.set_index("id")
    for condition in ("k4", "k16"):
        mine = steps[steps["trajectory"].map(traj["condition"]) == condition]
        cell = ["trajectory", "layer", "head"]
        last = mine[mine["step"] == 16].set_index(cell)["value"].astype(float).clip(0, 1)
        first = mine[mine["step"] == 1].set_index(cell)["value"].astype(float).clip(0, 1)
        first = first.reindex(last.index)
        n = last.index.get_level_values("trajectory").map(
            traj["prompt_token_ids"].map(len)).to_numpy(float)
        with np.errstate(divide="ignore"):
            counterfactual = expit(np.log(first) - np.log1p(-first) - np.log((n + 15) / n))
        claim = claims[f"theory.budget.split.k{condition.removeprefix('k')}"]
        assert claim.value == pytest.approx(last.mean() - counterfactual.mean())
        assert claim.fields["zero_s"] == int((last == 0).sum())
        assert claim.fields["rises"] == int((last.to_numpy() > first.to_numpy()).sum())
        assert claim.ci_low <= claim.value <= claim.ci_high


def test_every_claim_states_its_own_number(golden_claims):
    assert len(golden_claims.claims) > 50
    for claim in golden_claims.claims:
        record = claim.to_dict()
        assert record["sentence"] == claim.sentence and record["id"] == claim.id
        assert claim.runs and claim.statistic and claim.family


def _documents(tmp_path):
    paths = {"verdicts": tmp_path / "README.md", "results": tmp_path / "results.md",
             "theory": tmp_path / "theory.md"}
    for path in paths.values():
        path.write_text(DOCUMENT)
    return paths


def test_a_number_edited_by_hand_fails_the_check(tmp_path, golden_claims):
    paths = _documents(tmp_path)
    update_documents(golden_claims, paths)
    assert all(check_document(golden_claims, p, d) == [] for d, p in paths.items())
    assert "text 1.5 outside" in paths["results"].read_text()
    claim = golden_claims.by_id()["entropy.lift.early.k4"]
    number = f"{claim.value:+.3f}"
    edited = f"{claim.value + 0.01:+.3f}"
    text = paths["results"].read_text()
    assert text.count(number + " nats") == 1
    paths["results"].write_text(text.replace(number + " nats", edited + " nats"))
    problems = check_document(golden_claims, paths["results"], "results")
    assert len(problems) == 1 and "entropy.lift.early.k4" in problems[0]


def test_a_line_that_is_no_claim_fails_the_check(tmp_path, golden_claims):
    paths = _documents(tmp_path)
    update_documents(golden_claims, paths)
    text = paths["theory"].read_text()
    end = "<!-- END GENERATED COMPARISON -->"
    paths["theory"].write_text(text.replace(end, f"The slope is 2.00.\n{end}"))
    assert check_document(golden_claims, paths["theory"], "theory")


def test_missing_runs_are_said(golden_runs, tmp_path):
    table = compute_claims({"entropy": golden_runs["entropy"]})
    assert "knockout" in table.missing and "entropy" not in table.missing
    paths = _documents(tmp_path)
    update_documents(table, paths)
    text = paths["results"].read_text()
    assert "Not measured, their runs are missing: " in text
    assert "knockout (no run knockout)" in text


def test_evidence_is_a_run_without_its_vectors(tmp_path):
    kept = compact_run(GOLDEN / "entropy", tmp_path / "entropy")
    run = open_run(kept)
    assert not (kept / RSP_FILE).exists() and (GOLDEN / "entropy" / RSP_FILE).exists()
    assert json.loads((kept / EVIDENCE_FILE).read_text())["left_out"] == [RSP_FILE]
    check_evidence(kept)
    original = open_run(GOLDEN / "entropy")
    assert run.steps.equals(original.steps)
    with (kept / "steps.parquet").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(DamagedRunError, match="steps.parquet"):
        open_run(kept)


def test_compacting_the_same_run_again_keeps_its_done(tmp_path):
    """reproduce compacts every run each time: an unchanged run keeps its DONE (and its
    timestamp) byte for byte, a changed one is replaced."""
    kept = compact_run(GOLDEN / "entropy", tmp_path / "entropy")
    done = (kept / "DONE").read_bytes()
    (kept / "DONE").write_bytes(done.replace(b'"completed": "', b'"completed": "x'))
    marked = (kept / "DONE").read_bytes()
    compact_run(GOLDEN / "entropy", kept)
    assert (kept / "DONE").read_bytes() == marked
    (kept / EVIDENCE_FILE).write_text("{}\n")
    compact_run(GOLDEN / "entropy", kept)
    assert (kept / "DONE").read_bytes() != marked
    check_evidence(kept)
    open_run(kept)


def test_evidence_check_sees_a_changed_value_under_a_fresh_done(tmp_path):
    """A value edited in the rewritten steps table, DONE rewritten to match: the run opens,
    the evidence check against the original's content digest does not pass."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept = compact_run(GOLDEN / "entropy", tmp_path / "entropy")
    table = pq.read_table(kept / "steps.parquet")
    values = table["value"].to_numpy().copy()
    values[7] += 1e-3
    table = table.set_column(table.column_names.index("value"), "value", pa.array(values))
    pq.write_table(table, kept / "steps.parquet")
    write_manifest(kept, 1)
    open_run(kept)
    with pytest.raises(ValueError, match="steps.parquet differs"):
        check_evidence(kept)


def test_cli_claims_writes_and_checks(tmp_path, monkeypatch, capsys):
    full = tmp_path / "full"
    shutil.copytree(GOLDEN / "entropy", full / "entropy")
    shutil.copytree(GOLDEN / "entropy", full / "not-in-the-plan")
    (tmp_path / "docs").mkdir()
    for name in ("README.md", "docs/results.md", "docs/theory.md"):
        (tmp_path / name).write_text(DOCUMENT)
    (tmp_path / "docs" / "train-rl.md").write_text(
        "# rl\n\n<!-- BEGIN GENERATED TRAIN-RL -->\n<!-- END GENERATED TRAIN-RL -->\n")
    monkeypatch.chdir(tmp_path)
    assert main(["claims", "--runs", "runs", "--out", "claims.json", "--update-docs",
                 "--keep-from", "full"]) == 0
    assert (tmp_path / "runs" / "entropy" / "EVIDENCE.json").exists()
    assert not (tmp_path / "runs" / "not-in-the-plan").exists()
    assert main(["claims", "--runs", "runs", "--check"]) == 0
    table = json.loads((tmp_path / "claims.json").read_text())
    sentence = next(c["sentence"] for c in table["claims"] if "k=" in c["sentence"])
    results = (tmp_path / "docs" / "results.md").read_text()
    (tmp_path / "docs" / "results.md").write_text(
        results.replace(sentence, sentence.replace("k=", "k =")))
    assert main(["claims", "--runs", "runs", "--check"]) == 1
    (tmp_path / "docs" / "results.md").write_text(results)
    assert main(["claims", "--runs", "runs", "--check"]) == 0
    readme = (tmp_path / "README.md").read_text()  # the verdict table is checked too
    assert "**supported**" in readme or "**inconclusive**" in readme
    (tmp_path / "README.md").write_text(readme.replace("**inconclusive**", "**supported**")
                                        .replace("**contradicted**", "**supported**"))
    assert main(["claims", "--runs", "runs", "--check"]) == 1
    capsys.readouterr()
    assert main(["claims", "--runs", "nowhere"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow  # recomputes every claim from the committed runs (~20-30 s on 2 cores)
def test_committed_documents_state_the_committed_runs(committed_runs, tmp_path):
    table = compute_claims(committed_runs)
    committed = json.loads((ROOT / "figures" / "claims.json").read_text())
    assert committed["missing"] == table.to_dict()["missing"]
    assert committed.get("unmeasured", {}) == table.to_dict()["unmeasured"]
    fresh = {claim["id"]: claim for claim in table.to_dict()["claims"]}
    assert [claim["id"] for claim in committed["claims"]] == list(fresh)
    for claim in committed["claims"]:  # to float rounding: other BLAS, other last bits
        assert claim["sentence"] == fresh[claim["id"]]["sentence"]
        for key in ("value", "ci_low", "ci_high"):
            expected = fresh[claim["id"]][key]
            assert claim[key] == (None if expected is None else
                                  pytest.approx(expected, rel=1e-9, abs=1e-12))
    readme = ROOT / "README.md"
    results = ROOT / "docs" / "results.md"
    for document, path in (("verdicts", readme), ("results", results),
                           ("theory", ROOT / "docs" / "theory.md")):
        assert check_document(table, path, document) == []
    for folder in sorted(p for p in (ROOT / "figures" / "runs").iterdir() if p.is_dir()):
        check_evidence(folder)
    # The results page itself, one number edited by hand: the check names that claim.
    claim = table.by_id()["entropy.lift.early.k16"]
    number = f"{claim.value:+.3f} nats"
    (tmp_path / "docs").mkdir()
    copy = tmp_path / "docs" / "results.md"
    lines = results.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.endswith(f"<!-- {claim.id} -->\n"))
    lines[at] = lines[at].replace(number, f"{claim.value + 0.1:+.3f} nats")
    copy.write_text("".join(lines))
    problems = check_document(table, copy, "results")
    assert len(problems) == 1 and "entropy.lift.early.k16" in problems[0]


def test_claims_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; from rsp_probe.claims import families; families(); "
            "from rsp_probe.claims import command, evidence; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_an_ablation_identical_to_the_main_run_differs_by_zero(golden_runs):
    run = golden_runs["entropy"]
    table = compute_claims({"ablation-prefix": run, "entropy": run}, only=["ablation-prefix"])
    claims = table.by_id()
    lift = claims["ablation-prefix.lift.early.k4"]
    assert lift.value == compute_claims({"entropy": run}, only=["entropy"]).by_id()[
        "entropy.lift.early.k4"].value
    assert lift.sentence.startswith("placement=prefix: Early (steps 1-3), k=4")
    difference = claims["ablation-prefix.lift_vs_main.early.k4"]
    assert (difference.value, difference.ci_low, difference.ci_high) == (0.0, 0.0, 0.0)


def test_knockout_paths_are_named_as_paths_not_as_the_intact_rsp():
    """Sampled paths have no cut and no layer: they must not read as "RSP kept throughout"."""
    from types import SimpleNamespace

    from rsp_probe.claims.outcomes import _knockout_label

    spec = lambda name, path=None, cut=None: {"name": name, "cut_after": cut, "layers": None,
                                              "path": path}
    trajectories = pd.DataFrame({
        "condition": ["cutnever", "cut2", "direct-only", "indirect-only"],
        "intervention": [spec("cutnever"), spec("cut2", cut=2), spec("direct-only", "direct"),
                         spec("indirect-only", "indirect")]})
    describe = _knockout_label(SimpleNamespace(trajectories=trajectories))
    labels = {c: describe(c)["what"] for c in trajectories["condition"]}
    assert labels["cutnever"] == "RSP kept throughout"
    assert labels["cut2"] == "RSP keys masked from step 2 on"  # the code masks from step s
    assert "direct path" in labels["direct-only"] and "indirect path" in labels["indirect-only"]


def test_family_order_does_not_depend_on_import_order():
    """The table's order is fixed: a process that imported the theory claims first (as
    test_claims_theory does) lists the families as the CLI does."""
    import subprocess
    import sys

    script = ("import rsp_probe.claims.{} ; from rsp_probe.claims.catalog import families; "
              "print([f.name for f in families()])")
    orders = {subprocess.run([sys.executable, "-c", script.format(module)], check=True,
                             capture_output=True, text=True).stdout
              for module in ("theory", "soft_prompts", "core", "outcomes")}
    assert len(orders) == 1
