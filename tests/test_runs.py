"""The run directory contract: what RunWriter writes, how failed runs leave earlier ones
intact, what readers refuse, and an end-to-end entropy run checked against a Hugging Face
recomputation of every recorded step."""

from __future__ import annotations

import json
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rsp_probe
from rsp_probe.config import SCHEMA_VERSION
from rsp_probe.errors import UsageError
from rsp_probe.runs import DONE_FILE, RunWriter, find_runs, open_run, write_steps

D_MODEL, N_LAYERS, N_HEADS = 8, 2, 3
FILES = ("config.json", "meta.json", "trajectories.jsonl", "rsp.safetensors", "steps.parquet",
         "DONE")


def _synthetic(n_steps=(3, 5), k=(0, 2), seed=0):
    """Records, RSP vectors and float32 step values of two small trajectories."""
    rng = np.random.default_rng(seed)
    records, rsp, steps = [], {}, {}
    for index, (steps_i, k_i) in enumerate(zip(n_steps, k)):
        tid = f"k{k_i}/p{index}/0"
        records.append({"id": tid, "prompt_id": f"p{index}", "condition": f"k{k_i}",
                        "sample": 0, "text": "14", "answer": "3.10", "reference_answer": "007",
                        "temperature": 0.7, "correct": None, "generated_token_ids": [1, 2]})
        rsp[tid] = rng.standard_normal((k_i, D_MODEL))
        steps[tid] = {"entropy": rng.random(steps_i, dtype=np.float32),
                      "margin": rng.random(steps_i, dtype=np.float32)}
        if k_i:
            steps[tid]["rsp_attention"] = rng.random((steps_i, N_LAYERS, N_HEADS),
                                                     dtype=np.float32)
    return records, rsp, steps


def _write_run(out, overwrite=False, config=None, extra_file=None):
    records, rsp, steps = _synthetic()
    writer = RunWriter(out, config or {"command": "entropy", "note": "first"}, overwrite=overwrite)
    writer.write_trajectories(records, rsp, steps)
    if extra_file:
        writer.write_json(extra_file, {"extra": True})
    writer.finish({"device": "cpu"})
    return records, rsp, steps


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# -- writing -----------------------------------------------------------------------------------

def test_writer_stages_then_publishes_every_file(tmp_path):
    out = tmp_path / "run"
    records, rsp, steps = _synthetic()
    writer = RunWriter(out, {"command": "entropy", "seed": 3})
    writer.write_trajectories(records, rsp, steps)
    assert not out.exists()  # nothing visible until finish
    writer.finish({"device": "cpu"})
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert _leftovers(tmp_path) == []
    done = (out / DONE_FILE).stat().st_mtime_ns
    assert all((out / name).stat().st_mtime_ns <= done for name in FILES)

    config = json.loads((out / "config.json").read_text())
    assert config == {"schema_version": SCHEMA_VERSION, "command": "entropy", "seed": 3}

    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["device"] == "cpu"
    assert isinstance(meta["wall_time_s"], float) and 0 <= meta["wall_time_s"] < 60
    for package in ("rsp-probe", "torch", "transformers", "transformer-lens"):
        assert meta["versions"][package] == metadata.version(package)

    lines = (out / "trajectories.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records


def test_rsp_file_is_float32_k_by_d_per_trajectory(tmp_path):
    _, rsp, _ = _write_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    vectors = run.rsp_vectors()
    assert sorted(vectors) == sorted(rsp)
    for tid, expected in rsp.items():
        assert vectors[tid].dtype == np.float32
        assert vectors[tid].shape == (expected.shape[0], D_MODEL)
        np.testing.assert_array_equal(vectors[tid], expected.astype(np.float32))
    raw = (run.path / "rsp.safetensors").read_bytes()  # the header, read by hand
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    header.pop("__metadata__", None)
    assert {key: (v["dtype"], v["shape"]) for key, v in header.items()} == {
        key: ("F32", [value.shape[0], D_MODEL]) for key, value in rsp.items()}


def test_steps_table_is_tidy_and_round_trips(tmp_path):
    """Reference: the long table built by explicit loops over the nested dict."""
    _, _, steps = _write_run(tmp_path / "run")
    frame = open_run(tmp_path / "run").steps
    assert list(frame.columns) == ["trajectory", "step", "probe", "layer", "head", "value"]
    expected = []
    for tid, probes in steps.items():
        for probe, values in probes.items():
            for index in np.ndindex(values.shape):
                layer, head = (index[1], index[2]) if values.ndim == 3 else (-1, -1)
                expected.append((tid, index[0] + 1, probe, layer, head, values[index]))
    expected = pd.DataFrame(expected, columns=frame.columns)
    key = ["trajectory", "probe", "step", "layer", "head"]
    got = frame.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    for column in key:
        assert got[column].tolist() == expected[column].tolist(), column
    assert got["value"].dtype == np.float32
    np.testing.assert_array_equal(got["value"].to_numpy(), expected["value"].to_numpy())
    assert got["step"].min() == 1


def test_write_steps_without_attention_has_only_na_layers(tmp_path):
    write_steps(tmp_path / "s.parquet", {"t": {"entropy": np.arange(4, dtype=np.float32)}})
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert frame["step"].tolist() == [1, 2, 3, 4]
    assert set(frame["layer"]) == {-1} and set(frame["head"]) == {-1}


def test_write_steps_labels_a_per_layer_array_by_layer(tmp_path):
    """An [S, L] array: each value under its own step and layer, head -1."""
    values = np.arange(6, dtype=np.float32).reshape(3, 2)  # value = 2 * (step - 1) + layer
    write_steps(tmp_path / "s.parquet", {"t": {"per_layer": values}})
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert set(frame["head"]) == {-1}
    assert sorted(zip(frame["step"], frame["layer"], frame["value"])) == [
        (step, layer, 2 * (step - 1) + layer) for step in (1, 2, 3) for layer in (0, 1)]


@pytest.mark.parametrize("shape", [(), (2, 2, 2, 2)])
def test_write_steps_refuses_other_shapes_naming_the_probe(tmp_path, shape):
    with pytest.raises(ValueError, match=r"probe 'odd' has shape \[.*\]; expected \[S\]"):
        write_steps(tmp_path / "s.parquet", {"t": {"odd": np.zeros(shape, np.float32)}})
    assert not (tmp_path / "s.parquet").exists()


def test_completed_run_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    out = tmp_path / "run"
    _write_run(out, extra_file="old-only.json")
    before = _snapshot(out)
    with pytest.raises(UsageError, match="--overwrite"):
        RunWriter(out, {"command": "entropy"})
    assert _snapshot(out) == before and _leftovers(tmp_path) == []
    _write_run(out, overwrite=True, config={"command": "entropy", "note": "second"})
    assert open_run(out).config["note"] == "second"
    assert not (out / "old-only.json").exists()  # replaced, not merged
    assert _leftovers(tmp_path) == []


def test_non_run_directories_are_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(UsageError, match="not a run"):
            RunWriter(tmp_path / "mine", {"command": "entropy"}, overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        RunWriter(tmp_path / "file", {"command": "entropy"})


# -- failures ------------------------------------------------------------------------------------

def _session(model, out, overwrite):
    from rsp_probe.experiments.common import Session, build_spec

    spec = build_spec("entropy", out=str(out), overwrite=overwrite, n_prompts=1, quiet=True)
    return Session(spec, model)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_inside_a_session_leaves_the_earlier_run_intact(loaded_qwen2, tmp_path, error):
    out = tmp_path / "run"
    _write_run(out)
    before = _snapshot(out)
    session = _session(loaded_qwen2, out, overwrite=True)
    with pytest.raises(type(error)), session:
        session.writer.write_trajectories(*_synthetic(seed=1))
        raise error
    assert _snapshot(out) == before
    # Ctrl-C keeps the staged batches for --resume; an error discards them
    kept = [".run.partial"] if isinstance(error, KeyboardInterrupt) else []
    assert _leftovers(tmp_path) == kept
    assert open_run(out).config["note"] == "first"


def test_failure_without_an_earlier_run_keeps_it_for_inspection_not_as_done(loaded_qwen2,
                                                                           tmp_path):
    out = tmp_path / "runs" / "failed"
    session = _session(loaded_qwen2, out, overwrite=False)
    with pytest.raises(RuntimeError), session:
        raise RuntimeError("boom")
    assert not (out / DONE_FILE).exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "failed" and "RuntimeError: boom" in meta["error"]
    with pytest.raises(UsageError, match="did not complete"):
        open_run(out)
    _write_run(tmp_path / "runs" / "good")
    with pytest.warns(UserWarning, match="incomplete run"):
        found = find_runs([tmp_path / "runs"])
    assert [run.id for run in found] == ["good"]
    _write_run(out)  # a failed run may be replaced without --overwrite
    assert open_run(out).meta["status"] == "complete"


def test_readers_refuse_what_is_not_a_completed_run(tmp_path):
    with pytest.raises(UsageError, match="not a run directory"):
        open_run(tmp_path)
    with pytest.raises(UsageError, match="no such directory"):
        find_runs([tmp_path / "missing"])
    _write_run(tmp_path / "a" / "run1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when everything is complete
        assert [r.id for r in find_runs([tmp_path])] == ["run1"]
        assert [r.id for r in find_runs([tmp_path / "a" / "run1"])] == ["run1"]


def test_trajectories_frame_keeps_the_recorded_values(tmp_path):
    records, _, _ = _write_run(tmp_path / "run")
    frame = open_run(tmp_path / "run").trajectories
    for record, row in zip(records, frame.to_dict("records")):
        for field in ("text", "answer", "reference_answer", "temperature"):
            assert row[field] == record[field] and type(row[field]) is type(record[field]), field


# -- end to end: rsp_probe.entropy -----------------------------------------------------------

@pytest.fixture(scope="module")
def entropy_run(tiny_qwen2, tmp_path_factory):
    out = tmp_path_factory.mktemp("entropy") / "run"
    run, table = rsp_probe.entropy(model=str(tiny_qwen2), n_prompts=2, samples=2,
                                   rsp_tokens=(0, 3), max_new_tokens=8, out=str(out), quiet=True)
    records = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    return run, table, records


def test_entropy_returns_the_run_and_its_summary(entropy_run):
    run, table, records = entropy_run
    assert isinstance(run, rsp_probe.runs.Run) and isinstance(table, pd.DataFrame)
    own_figure = ("figure-entropy.png", "figure-entropy.csv")  # drawn into every run (#13)
    assert sorted(p.name for p in run.path.iterdir()) == sorted(FILES + own_figure)
    assert run.config["command"] == "entropy" and run.config["rsp_tokens"] == [0, 3]
    assert set(table["condition"]) == {"k0", "k3"}
    assert set(table["probe"]) == {"entropy", "top1_prob", "margin"}
    first = table[(table["condition"] == "k0") & (table["probe"] == "entropy")
                  & (table["step"] == 1)]["mean"].item()
    steps = run.steps
    k0_ids = [r["id"] for r in records if r["rsp_tokens"] == 0]
    per_prompt = steps[(steps["probe"] == "entropy") & (steps["step"] == 1)
                       & steps["trajectory"].isin(k0_ids)].merge(
        pd.DataFrame(records)[["id", "prompt_id"]], left_on="trajectory", right_on="id")
    assert first == pytest.approx(per_prompt.groupby("prompt_id")["value"].mean().mean())


def test_every_trajectory_carries_the_contract_fields(entropy_run, loaded_qwen2):
    from rsp_probe.tasks.prompts import encode_plain

    run, _, records = entropy_run
    assert len(records) == 2 * 2 * 2
    assert len({r["id"] for r in records}) == len(records)
    assert run.config["placement"] == "suffix" and run.config["chat_template"] == "auto"
    assert not getattr(loaded_qwen2.tokenizer, "chat_template", None)  # so: plain prompts
    cue = encode_plain(loaded_qwen2.tokenizer, "").cue
    for record in records:
        assert isinstance(record["id"], str) and isinstance(record["prompt_id"], str)
        assert record["condition"] in ("k0", "k3") and record["sample"] in (0, 1)
        assert isinstance(record["seed"], int) and isinstance(record["text"], str)
        assert "answer" in record and isinstance(record["correct"], bool)
        assert all(isinstance(i, int) for i in record["prompt_token_ids"])
        k = int(record["condition"][1:])
        positions = record["rsp_positions"]
        assert positions == (list(range(positions[0], positions[0] + k)) if k else [])
        prompt = record["prompt_token_ids"]
        assert prompt[0] == loaded_qwen2.tokenizer.bos_token_id and prompt[-len(cue):] == cue
        if k:  # suffix: k slots right before the cue, in an input of len(prompt) + k
            assert positions[0] == len(prompt) - len(cue)
            assert positions[-1] + 1 + len(cue) == len(prompt) + k
        assert record["n_steps"] == len(record["generated_token_ids"]) <= 8


def test_steps_have_one_row_per_key_and_every_step(entropy_run):
    run, _, records = entropy_run
    steps = run.steps
    key = ["trajectory", "step", "probe", "layer", "head"]
    assert not steps.duplicated(key).any()
    info = run.config["model_info"]
    assert set(steps["trajectory"]) == {r["id"] for r in records}
    for record in records:
        mine = steps[steps["trajectory"] == record["id"]]
        n = len(record["generated_token_ids"])
        for probe in ("entropy", "top1_prob", "margin", "collision"):
            rows = mine[mine["probe"] == probe]
            assert sorted(rows["step"]) == list(range(1, n + 1)), probe
            assert set(rows["layer"]) == {-1} and set(rows["head"]) == {-1}
        attention = mine[mine["probe"] == "rsp_attention"]
        if record["rsp_positions"]:
            assert len(attention) == n * info["n_layers"] * info["n_heads"]
            grid = attention.groupby("step").apply(lambda g: set(zip(g["layer"], g["head"])),
                                                   include_groups=False)
            full = {(layer, head) for layer in range(info["n_layers"])
                    for head in range(info["n_heads"])}
            assert list(grid.index) == list(range(1, n + 1)) and all(g == full for g in grid)
        else:
            assert attention.empty
        assert set(mine["probe"]) <= {"entropy", "top1_prob", "margin", "collision",
                                      "rsp_attention"}


def test_recorded_steps_equal_a_full_forward_of_the_recorded_input(entropy_run, tiny_qwen2):
    """Rebuild each model input from the record alone (prompt ids, RSP slots, vectors from
    rsp.safetensors, generated ids) and recompute every step's probes with HF eager attention.
    Wrong positions, vectors, prompt ids or step indexing all change these numbers."""
    import torch
    from transformers import AutoModelForCausalLM

    run, _, records = entropy_run
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), attn_implementation="eager").eval()
    table = hf.get_input_embeddings().weight.detach()
    vectors = run.rsp_vectors()
    steps = run.steps
    for record in records:
        prompt, positions = record["prompt_token_ids"], record["rsp_positions"]
        k = len(positions)
        assert vectors[record["id"]].shape == (k, table.shape[1])
        start = positions[0] if k else len(prompt)
        pieces = [table[torch.tensor(prompt[:start])],
                  torch.from_numpy(vectors[record["id"]]),
                  table[torch.tensor(prompt[start:] + record["generated_token_ids"])]]
        embeds = torch.cat(pieces)[None]
        n_input, n = len(prompt) + k, len(record["generated_token_ids"])
        with torch.no_grad():
            out = hf(inputs_embeds=embeds, output_attentions=True)
        logits = out.logits[0, n_input - 1:n_input - 1 + n].double()
        probs = logits.softmax(-1)
        entropy = -(probs * probs.clamp_min(1e-300).log()).sum(-1)
        mine = steps[steps["trajectory"] == record["id"]]
        recorded = mine[mine["probe"] == "entropy"].sort_values("step")["value"].to_numpy()
        np.testing.assert_allclose(recorded, entropy.numpy(), atol=1e-4)
        if k:
            attention = torch.stack(out.attentions)[:, 0]  # [L, H, Q, K]
            mass = attention[:, :, n_input - 1:n_input - 1 + n][..., positions].sum(-1)
            rows = mine[mine["probe"] == "rsp_attention"].sort_values(["step", "layer", "head"])
            np.testing.assert_allclose(rows["value"].to_numpy(),
                                       mass.permute(2, 0, 1).reshape(-1).numpy(), atol=1e-4)


def test_show_prints_what_the_command_printed(tiny_qwen2, tmp_path, capsys):
    from rsp_probe.cli import main

    out = tmp_path / "run"
    assert main(["entropy", "--model", str(tiny_qwen2), "--n-prompts", "2", "--samples", "2",
                 "--rsp-tokens", "0,3", "--max-new-tokens", "6", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# entropy") and "## mean entropy" in printed
    assert main(["show", str(out)]) == 0
    assert capsys.readouterr().out == printed
    assert main(["show", str(out), str(out)]) == 0
    assert capsys.readouterr().out == printed * 2


def _long_question(tokenizer, n_ctx, room):
    """A question whose plain prompt leaves about `room` positions of the context free."""
    from rsp_probe.tasks.prompts import encode_plain

    question = "Mia has 12 pencils."
    while len(encode_plain(tokenizer, question + " 7").token_ids) <= n_ctx - room:
        question += " 7"
    return question


def test_trajectories_do_not_depend_on_batch_size(loaded_qwen2):
    import torch

    from rsp_probe.rsp import draw_rsp, fit_law, place_rsp
    from rsp_probe.sampler import Job, generate
    from rsp_probe.tasks.prompts import encode_plain

    tokenizer, n_ctx, max_new = loaded_qwen2.tokenizer, loaded_qwen2.info.n_ctx, 12
    law = fit_law(loaded_qwen2.embedding_table)
    jobs = []
    for q, question in enumerate([_long_question(tokenizer, n_ctx, room=8),
                                  "Leo bakes 3 trays of 6 cookies."]):
        for k in (0, 3):
            ids, positions = place_rsp(encode_plain(tokenizer, question), k, "suffix")
            jobs.append(Job(f"k{k}/{q}", ids, positions, draw_rsp(law, k, seed=q), 1.0, 1.0,
                            seed=q))
    lengths = [len(job.input_ids) for job in jobs]
    assert max(lengths) + max_new > n_ctx >= min(lengths) + max_new  # the case this is about
    single = generate(loaded_qwen2, jobs, max_new, batch_size=1)
    batched = generate(loaded_qwen2, jobs, max_new, batch_size=len(jobs))
    for job, one in zip(jobs, single):
        assert len(one.generated_token_ids) == min(max_new, n_ctx - len(job.input_ids)) or (
            one.stop_reason == "eos"), job.id
    for a, b in zip(batched, single):
        assert a.generated_token_ids == b.generated_token_ids, a.id
        assert a.stop_reason == b.stop_reason, a.id
        for name in b.steps:
            torch.testing.assert_close(torch.from_numpy(a.steps[name]),
                                       torch.from_numpy(b.steps[name]), atol=1e-4, rtol=0)


def test_a_table_cut_short_by_a_kill_is_neither_read_nor_published(tmp_path):
    """write_table writes a temporary file and renames it: a kill mid-write leaves only the
    temporary, which --resume discards, so the run never lists a half-written table."""
    from rsp_probe.runs import PARTIAL_SUFFIX, RunWriter

    config = {"command": "entropy", "seed": 0}
    writer = RunWriter(tmp_path / "run", config)
    writer.write_table("t.parquet", pd.DataFrame({"x": [1, 2]}))
    assert sorted(p.name for p in writer.staging.iterdir()) == ["config.json", "t.parquet"]
    (writer.staging / f"u.parquet{PARTIAL_SUFFIX}").write_bytes(b"PAR1 cut")  # killed here
    writer.suspend()
    resumed = RunWriter(tmp_path / "run", config, resume=True)
    assert sorted(p.name for p in resumed.staging.iterdir()) == ["config.json", "t.parquet"]
    assert resumed.staged_run().table("t.parquet")["x"].tolist() == [1, 2]
    resumed.discard()
