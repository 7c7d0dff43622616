"""Knockouts through the real sampler against independent Hugging Face recomputations.

The reference is plain transformers with eager attention, a full forward per step (no KV
cache) and, at every layer, an additive mask built here: causal, plus the RSP keys blocked
for the query rows whose step is >= cut_after at the knocked-out layers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.backends import list_backends
from rsp_probe.interventions.knockout import knockout_factory
from rsp_probe.interventions.spec import PATHS, Knockout, check_layers, parse_cut_steps
from rsp_probe.sampler import Job, generate

K = 3
QUESTION = list(range(20, 31))
CUE = [40, 41, 42]
MAX_NEW = 12


def _jobs(model, n_draws=3, rsp_in_positions=True, temperature=0.0):
    generator = torch.Generator().manual_seed(0)
    bos = [model.tokenizer.bos_token_id] if model.tokenizer.bos_token_id is not None else []
    ids = bos + QUESTION + [-1] * K + CUE
    start = len(bos) + len(QUESTION)
    return [Job(f"d{i}", ids, list(range(start, start + K)),
                2.0 * torch.randn(K, model.info.d_model, generator=generator), temperature,
                1.0, seed=i, n_cue=len(CUE), rsp_in_positions=rsp_in_positions)
            for i in range(n_draws)]


@pytest.fixture(scope="module", params=list_backends())
def backend(request, tiny_qwen2):
    from rsp_probe.models import load_model

    return load_model(str(tiny_qwen2), backend=request.param)


@pytest.fixture(scope="module")
def hf(tiny_qwen2):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_qwen2),
                                                attn_implementation="eager").eval()


def _reference_mask(n_rows: int, job: Job, knockout: Knockout, knocked: bool) -> torch.Tensor:
    lowest = torch.finfo(torch.float32).min
    rows = torch.arange(n_rows)[:, None]
    keys = torch.arange(n_rows)[None, :]
    blocked = keys > rows
    if knocked and knockout.cut_after is not None:
        step = (rows - (len(job.input_ids) - 1) + 1).clamp(min=1)
        rsp = torch.zeros(n_rows, dtype=torch.bool)
        rsp[job.rsp_positions] = True
        blocked = blocked | (rsp[None, :] & (step >= knockout.cut_after))
    return torch.zeros(n_rows, n_rows).masked_fill(blocked, lowest)[None, None]


@torch.inference_mode()
def _hf_logits(hf, table, job: Job, tokens: list[int], knockout: Knockout) -> torch.Tensor:
    """Logits [len(tokens) + 1, V] of every step along `tokens`, one full forward."""
    embeds = table[[max(i, 0) for i in job.input_ids]].clone()
    embeds[job.rsp_positions] = job.rsp
    embeds = torch.cat([embeds, table[tokens]])[None]
    n_rows = embeds.shape[1]
    layers = knockout.layers or range(hf.config.num_hidden_layers)
    handles = []
    for index, layer in enumerate(hf.model.layers):
        mask = _reference_mask(n_rows, job, knockout, knocked=index in layers)

        def swap(module, args, kwargs, mask=mask):
            return args, {**kwargs, "attention_mask": mask}

        handles.append(layer.self_attn.register_forward_pre_hook(swap, with_kwargs=True))
    try:
        logits = hf(inputs_embeds=embeds).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    return logits[len(job.input_ids) - 1:]


def _hf_greedy(hf, table, job: Job, knockout: Knockout) -> list[int]:
    tokens: list[int] = []
    for _ in range(MAX_NEW):
        tokens.append(int(_hf_logits(hf, table, job, tokens, knockout)[-1].argmax()))
    return tokens


KNOCKOUTS = [Knockout(1), Knockout(2), Knockout(4), Knockout(None), Knockout(1, (0,)),
             Knockout(3, (1,))]


@pytest.mark.parametrize("knockout", KNOCKOUTS, ids=lambda k: k.name)
def test_knockout_matches_an_independent_hf_recomputation(backend, hf, knockout):
    from rsp_probe.interventions.teacher_forced import knockout_kl

    table = hf.get_input_embeddings().weight.detach()
    jobs = _jobs(backend)
    sampled = generate(backend, jobs, MAX_NEW, probes=(),
                       interventions=[knockout_factory(knockout)])
    full = generate(backend, jobs, MAX_NEW, probes=())
    changed = [a.generated_token_ids != b.generated_token_ids for a, b in zip(sampled, full)]
    assert any(changed) == (knockout.cut_after is not None)  # the mask bites, never is a no-op
    for job, trajectory, reference in zip(jobs, sampled, full):
        assert len(trajectory.generated_token_ids) == MAX_NEW  # no EOS in this toy
        assert trajectory.generated_token_ids == _hf_greedy(hf, table, job, knockout)
        tokens = reference.generated_token_ids
        kl = knockout_kl(backend, [job], tokens, knockout)[0]  # [S] KL(full || knocked)
        full_logp = torch.log_softmax(_hf_logits(hf, table, job, tokens[:-1], Knockout(None))
                                      .double(), -1)
        knocked_logp = torch.log_softmax(_hf_logits(hf, table, job, tokens[:-1], knockout)
                                         .double(), -1)
        expected = (full_logp.exp() * (full_logp - knocked_logp)).sum(-1).clamp(min=0)
        np.testing.assert_allclose(kl, expected.numpy(), atol=1e-4)


def test_cut_never_is_the_full_rsp_run(backend):
    jobs = _jobs(backend, temperature=1.0)
    full = generate(backend, jobs, MAX_NEW)
    never = generate(backend, jobs, MAX_NEW, interventions=[knockout_factory(Knockout(None))])
    for a, b in zip(full, never):
        assert a.generated_token_ids == b.generated_token_ids
        for name, values in a.steps.items():
            np.testing.assert_array_equal(values, b.steps[name])


def test_cut_from_step_one_without_rsp_positions_is_the_baseline(backend):
    jobs = _jobs(backend, rsp_in_positions=False)
    knocked = generate(backend, jobs, MAX_NEW, probes=(),
                       interventions=[knockout_factory(Knockout(1))])
    base_job = Job("base", [i for i in jobs[0].input_ids if i >= 0], [],
                   torch.zeros(0, backend.info.d_model), 0.0, 1.0, seed=0)
    baseline = generate(backend, [base_job], MAX_NEW, probes=())[0]
    for trajectory in knocked:
        assert trajectory.generated_token_ids == baseline.generated_token_ids
    # and with the RSP slots still advancing positions, rotary makes a difference somewhere
    shifted = generate(backend, _jobs(backend), MAX_NEW, probes=(),
                       interventions=[knockout_factory(Knockout(1))])
    assert shifted[0].generated_token_ids != baseline.generated_token_ids


@pytest.mark.parametrize("values,message", [(["0"], "below 1"), (["x"], "'never'")])
def test_bad_cut_steps(values, message):
    from rsp_probe.errors import UsageError

    with pytest.raises(UsageError, match=message):
        parse_cut_steps(values)
    assert parse_cut_steps(["1", "never"]) == (1, None)
    with pytest.raises(UsageError, match="outside 0..1"):
        check_layers([2], 2)


def test_knockout_command_end_to_end(loaded_qwen2, tmp_path, capsys):
    import rsp_probe
    from rsp_probe.analysis.knockout import first_divergence
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.cli import main
    from rsp_probe.runs import open_run

    run, table = rsp_probe.knockout(model=loaded_qwen2, rsp_tokens=(3,), samples=2,
                                    n_prompts=3, max_new_tokens=8, pass_k=(1, 2),
                                    cut_after=("1", "4", "never"), block_layers=(1,),
                                    out=str(tmp_path / "r"), quiet=True)
    assert list(table["condition"]) == ["full", "baseline", "cut1", "cut4", "cutnever",
                                        "layer1", "direct-only", "indirect-only"]
    rows = table.set_index("condition")
    paths = rows.loc[["direct-only", "indirect-only"]]
    assert (paths["kind"] == "path").all() and (paths["kl_mean"] > 0).all()
    # the paths are sampled conditions: every measure of the cuts, entropy included
    assert paths[["accuracy", "pass@2", "distinct_per_prompt", "same_as_full",
                  "entropy_mean"]].notna().all().all()
    assert set(run.trajectories["condition"]) >= {"direct-only", "indirect-only"}
    # never is the full run: identical trajectories, zero teacher-forced KL
    assert rows.loc["cutnever", "same_as_full"] == 1.0
    assert rows.loc["cutnever", "kl_mean"] == 0.0
    assert rows.loc["full", "same_as_full"] == 1.0
    assert rows.loc["cut1", "kl_step1"] > 0
    # the cut at step 4 leaves steps 1..3 untouched
    assert rows.loc["cut4", "kl_step1"] == rows.loc["cut4", "kl_step3"] == 0.0
    records = run.trajectories.set_index("id")
    for sample in range(2):
        pid = records["prompt_id"].iloc[0]
        cut4 = records.loc[f"cut4/{pid}/{sample}", "generated_token_ids"]
        full = records.loc[f"full/{pid}/{sample}", "generated_token_ids"]
        assert list(cut4[:3]) == list(full[:3])
        assert not first_divergence(cut4, full) <= 3
    assert run.config["cut_after"] == ["1", "4", "never"] and run.config["block_layers"] == [1]
    assert (run.path / "figure-knockout.png").exists()
    assert main(["show", str(run.path)]) == 0
    assert capsys.readouterr().out.strip() == describe(open_run(run.path)).strip()


@pytest.mark.parametrize("args,message", [
    (["--cut-after", "0"], "below 1"), (["--cut-after", "soon"], "'never'"),
    (["--block-layers", "7"], "outside 0..1"), (["--pass-k", "0"], "--pass-k values"),
    (["--paths", "sideways"], "--paths"), (["--law", "uniform"], "--law")])
def test_knockout_bad_input_exits_2_before_loading(tiny_qwen2, tmp_path, capsys, monkeypatch,
                                                    args, message):
    import rsp_probe.models
    from rsp_probe.cli import main

    def refuse(*_, **__):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(rsp_probe.models, "load_model", refuse)
    try:
        code = main(["knockout", "--model", str(tiny_qwen2), "--out", str(tmp_path / "r"),
                     *args])
    except SystemExit as exit:  # argparse's own choices (--law) exit from inside main
        code = exit.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _path_rows(n_rows: int, job: Job, path: str) -> torch.Tensor:
    """[n_rows] bool: the query rows blocked from the RSP keys when the last row is the
    newest query. Direct: every earlier non-RSP row; indirect: the newest row only."""
    rows = torch.zeros(n_rows, dtype=torch.bool)
    if path == "indirect":
        rows[-1] = True
    else:
        rows[:-1] = True
        rows[job.rsp_positions] = False
    return rows


@torch.inference_mode()
def _hf_path_logits(hf, table, job: Job, tokens: list[int], path: str) -> torch.Tensor:
    """Logits [V] (float64) of the newest query after `tokens`, recomputed from scratch:
    one full forward, eager attention, the 4D mask built here at every layer."""
    embeds = table[[max(i, 0) for i in job.input_ids]].clone()
    embeds[job.rsp_positions] = job.rsp
    embeds = torch.cat([embeds, table[tokens]])[None]
    n_rows = embeds.shape[1]
    keys = torch.zeros(n_rows, dtype=torch.bool)
    keys[job.rsp_positions] = True
    blocked = (torch.arange(n_rows)[None, :] > torch.arange(n_rows)[:, None]) | (
        _path_rows(n_rows, job, path)[:, None] & keys[None, :])
    mask = torch.zeros(n_rows, n_rows).masked_fill(blocked, torch.finfo(torch.float32).min)
    handles = [layer.self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: (args, {**kwargs, "attention_mask": mask[None, None]}),
        with_kwargs=True) for layer in hf.model.layers]
    try:
        return hf(inputs_embeds=embeds).logits[0, -1].double()
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("path", PATHS)
def test_path_kl_matches_an_independent_hf_recomputation(backend, hf, path):
    """The teacher-forced path KL along a full-RSP trajectory against the HF reference."""
    from rsp_probe.interventions.teacher_forced import path_kl

    table = hf.get_input_embeddings().weight.detach()
    job = _jobs(backend, n_draws=1)[0]
    tokens = generate(backend, [job], 6, probes=())[0].generated_token_ids
    measured = path_kl(backend, job, tokens, path)
    full = torch.log_softmax(_hf_logits(hf, table, job, tokens[:-1], Knockout(None)).double(),
                             -1)
    expected = []
    for step in range(1, len(tokens) + 1):
        logp = torch.log_softmax(_hf_path_logits(hf, table, job, tokens[:step - 1], path), -1)
        p_full = full[step - 1]
        expected.append(float((p_full.exp() * (p_full - logp)).sum().clamp(min=0)))
    np.testing.assert_allclose(measured, expected, atol=1e-4)
    assert max(expected) > 1e-4  # the path carries something on this toy


class _KeepLogits:
    """A StepProbe that keeps every step's logits (the sampler's own, [S, V] per row)."""

    def __init__(self, context):
        self.steps: list[torch.Tensor] = []

    def taps(self):
        return []

    def begin_step(self, step: int) -> None:
        pass

    def record(self, step: int, logits: torch.Tensor) -> None:
        self.steps.append(logits.double().clone())

    def check_step(self) -> None:
        pass

    def finalize(self, n_steps):
        stacked = torch.stack(self.steps, dim=1)  # [B, S, V]
        return [{"logits": stacked[row, :n].numpy()} for row, n in enumerate(n_steps)]


def _sampled(model, jobs, knockout: Knockout | None, max_new: int = MAX_NEW):
    return generate(model, jobs, max_new, probes=(), interventions=[_KeepLogits] + (
        [knockout_factory(knockout)] if knockout is not None else []))


@pytest.mark.parametrize("path", PATHS)
def test_sampled_path_matches_an_independent_hf_recomputation(backend, hf, path):
    """Every step's logits of a sampled path (two passes per step over the KV cache) equal
    a from-scratch HF forward along the sampled tokens with the path's 4D mask (1e-4); under
    greedy decoding (the first draw; the second samples at T = 1) the tokens are the
    reference's argmax at every step."""
    from dataclasses import replace

    table = hf.get_input_embeddings().weight.detach()
    greedy, hot = _jobs(backend, n_draws=2, temperature=0.0)
    jobs = [greedy, replace(hot, temperature=1.0)]
    sampled = _sampled(backend, jobs, Knockout(None, path=path))
    full, cut = _sampled(backend, jobs, None), _sampled(backend, jobs, Knockout(1))
    for job, trajectory, *twins in zip(jobs, sampled, full, cut):
        tokens = trajectory.generated_token_ids
        assert len(tokens) == MAX_NEW
        expected = torch.stack([_hf_path_logits(hf, table, job, tokens[:step], path)
                                for step in range(len(tokens))])
        np.testing.assert_allclose(trajectory.steps["logits"], expected.numpy(), atol=1e-4)
        if job.temperature == 0.0:
            assert tokens == expected.argmax(-1).tolist()
        # the path is neither the full run nor the cut from step 1: step 1 already differs
        for twin in twins:
            assert np.abs(trajectory.steps["logits"][0] - twin.steps["logits"][0]).max() > 1e-4


@pytest.fixture(scope="module")
def one_layer(tmp_path_factory, tokenizer_dir):
    from rsp_probe.models import load_model
    from rsp_probe.toy.checkpoint import ToyArchitecture, save_random_checkpoint

    arch = ToyArchitecture(family="qwen2", n_layers=1, d_model=64, n_heads=4, n_kv_heads=2,
                           d_mlp=128, n_ctx=256, initializer_range=0.4)
    path = save_random_checkpoint(tmp_path_factory.mktemp("one-layer"), arch, tokenizer_dir)
    return load_model(str(path), backend="hf")


def test_paths_in_a_one_layer_model(one_layer):
    """With one layer, a position's keys and values are computed before any attention, so
    which earlier rows read the RSP cannot matter: direct-only is the full run and
    indirect-only is the cut from step 1, token for token under sampling."""
    jobs = _jobs(one_layer, temperature=1.0)
    runs = {name: _sampled(one_layer, jobs, knockout) for name, knockout in (
        ("full", None), ("cut1", Knockout(1)), ("direct", Knockout(None, path="direct")),
        ("indirect", Knockout(None, path="indirect")))}
    for same, other in (("direct", "full"), ("indirect", "cut1")):
        for a, b in zip(runs[same], runs[other]):
            assert a.generated_token_ids == b.generated_token_ids
            np.testing.assert_allclose(a.steps["logits"], b.steps["logits"], atol=1e-5)
    assert any(a.generated_token_ids != b.generated_token_ids
               for a, b in zip(runs["full"], runs["cut1"]))


def test_sampled_paths_record_one_value_per_step_and_compose(loaded_qwen2):
    """The attention probe sees only the logits pass: indirect-only's newest query has
    exactly zero RSP mass, direct-only's does not. Another intervention acts in both passes:
    indirect-only on top of the cut from step 1 is the cut from step 1 (were the cut
    silent in the cache pass, the earlier positions would read the RSP)."""
    from rsp_probe.probes.names import ATTENTION_PROBE

    jobs = _jobs(loaded_qwen2, n_draws=2, temperature=1.0)
    for path in PATHS:
        runs = generate(loaded_qwen2, jobs, 6, probes=(ATTENTION_PROBE,),
                        interventions=[knockout_factory(Knockout(None, path=path))])
        mass = np.stack([t.steps[ATTENTION_PROBE] for t in runs])  # [B, S, L, H]
        assert mass.shape == (2, 6, loaded_qwen2.info.n_layers, loaded_qwen2.info.n_heads)
        assert (mass.max() == 0.0) == (path == "indirect")
    both = generate(loaded_qwen2, jobs, MAX_NEW, probes=(), interventions=[
        _KeepLogits, knockout_factory(Knockout(None, path="indirect")),
        knockout_factory(Knockout(1))])
    for a, b in zip(both, _sampled(loaded_qwen2, jobs, Knockout(1))):
        assert a.generated_token_ids == b.generated_token_ids
        np.testing.assert_allclose(a.steps["logits"], b.steps["logits"], atol=1e-5)
