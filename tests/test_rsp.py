"""The RSP law against numpy, its draws against their law, and placement into real prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.errors import UsageError
from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law, place_rsp, trajectory_draw_seed
from rsp_probe.tasks.prompts import encode_plain


def _random_table(rows=257, cols=48, seed=0):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.2, 2.0, cols)  # per-column spread, so per-dim != gaussian
    offsets = rng.normal(0.3, 0.5, cols)
    return torch.from_numpy((offsets + scales * rng.standard_normal((rows, cols)))
                            .astype(np.float32))


@pytest.fixture(params=["model", "random"])
def table(request):
    if request.param == "model":
        return request.getfixturevalue("loaded_qwen2").embedding_table.detach()
    return _random_table()


def _np(table):
    return table.detach().to(torch.float64).cpu().numpy()


def test_gaussian_law_equals_numpy_moments(table):
    law = fit_law(table, "gaussian")
    reference = _np(table)
    assert law.kind == "gaussian" and law.d_model == table.shape[1]
    np.testing.assert_allclose(float(law.mean), reference.mean(), rtol=1e-9)
    np.testing.assert_allclose(float(law.std) ** 2, reference.var(ddof=0), rtol=1e-9)


def test_per_dim_law_equals_numpy_column_moments(table):
    law = fit_law(table, "per-dim")
    reference = _np(table)
    np.testing.assert_allclose(law.mean.numpy(), reference.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(float(law.std) ** 2, reference.var(axis=0, ddof=0).mean(),
                               rtol=1e-9)


def test_moments_survive_chunking():
    """More rows than one chunk (8192): the chunked sums must still give numpy's moments."""
    table = _random_table(rows=20_000, cols=8, seed=3)
    law = fit_law(table, "gaussian")
    np.testing.assert_allclose(float(law.mean), _np(table).mean(), rtol=1e-9)
    np.testing.assert_allclose(float(law.std) ** 2, _np(table).var(), rtol=1e-9)


@pytest.mark.parametrize("kind", ["gaussian", "per-dim"])
@pytest.mark.parametrize("scale", [0.0, 0.5, 3.0])
def test_sigma_scale_multiplies_sigma(kind, scale):
    table = _random_table()
    plain, scaled = fit_law(table, kind), fit_law(table, kind, sigma_scale=scale)
    np.testing.assert_allclose(float(scaled.std), scale * float(plain.std), rtol=1e-12)
    np.testing.assert_array_equal(scaled.mean.numpy(), plain.mean.numpy())


def test_unknown_law_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown --law"):
        fit_law(_random_table(), "uniform")


@pytest.mark.parametrize("kind", ["gaussian", "per-dim"])
def test_draws_follow_the_law(kind):
    """100k vectors: per-dim means and the pooled variance within a few standard errors,
    no correlation across dimensions, no overall bias."""
    law = fit_law(_random_table(), kind, sigma_scale=1.3)
    n = 100_000
    draws = draw_rsp(law, n, seed=123)
    assert draws.shape == (n, law.d_model) and draws.dtype == torch.float32
    x = draws.double().numpy()
    mu = np.broadcast_to(law.mean.numpy(), (law.d_model,))
    sigma = float(law.std)
    column_se = sigma / np.sqrt(n)
    assert np.abs(x.mean(axis=0) - mu).max() < 5 * column_se
    assert abs(x.mean() - mu.mean()) < 4 * sigma / np.sqrt(x.size)
    pooled_var = ((x - x.mean(axis=0)) ** 2).mean()
    assert abs(pooled_var - sigma**2) < 4 * sigma**2 * np.sqrt(2 / x.size)
    column_var = x.var(axis=0)
    assert np.abs(column_var - sigma**2).max() < 5 * sigma**2 * np.sqrt(2 / n)  # isotropic
    corr = np.corrcoef(x, rowvar=False)
    off_diagonal = corr[~np.eye(law.d_model, dtype=bool)]
    assert np.abs(off_diagonal).max() < 5 / np.sqrt(n)


def test_many_small_draws_follow_the_law_too():
    """Draws of k=4 under 5000 seeds are as good as one large draw (no seed-to-seed bias)."""
    law = fit_law(_random_table(), "gaussian")
    x = torch.cat([draw_rsp(law, 4, seed=s) for s in range(5000)]).double().numpy()
    sigma, mu = float(law.std), float(law.mean)
    assert abs(x.mean() - mu) < 4 * sigma / np.sqrt(x.size)
    assert abs(x.var() - sigma**2) < 4 * sigma**2 * np.sqrt(2 / x.size)
    first_rows = x.reshape(5000, 4, -1)[:, 0]  # the same slot across seeds: not correlated
    corr = np.corrcoef(first_rows, rowvar=False)
    assert np.abs(corr[~np.eye(corr.shape[0], dtype=bool)]).max() < 5 / np.sqrt(5000)


def test_same_seed_same_vectors_different_seed_different():
    law = fit_law(_random_table(), "gaussian")
    a, b, c = draw_rsp(law, 6, seed=7), draw_rsp(law, 6, seed=7), draw_rsp(law, 6, seed=8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.isclose(a, c).any()


def test_k_zero_draw_is_empty():
    law = fit_law(_random_table(cols=48), "gaussian")
    for kind in ("gaussian", "per-dim"):
        assert tuple(draw_rsp(fit_law(_random_table(), kind), 0, seed=1).shape) == (0, 48)
    assert tuple(draw_rsp(law, 0, seed=1).shape) == (0, 48)


def test_trajectory_seeds_depend_on_prompt_and_sample_only():
    seed = trajectory_draw_seed(0, "p1", 3, fixed=False)
    assert seed == trajectory_draw_seed(0, "p1", 3, fixed=False)
    others = {trajectory_draw_seed(0, "p2", 3, False), trajectory_draw_seed(0, "p1", 4, False),
              trajectory_draw_seed(1, "p1", 3, False)}
    assert seed not in others and len(others) == 3
    fixed = trajectory_draw_seed(0, "p1", 3, fixed=True)
    assert fixed == trajectory_draw_seed(0, "p2", 9, fixed=True)
    assert fixed != trajectory_draw_seed(1, "p1", 3, fixed=True)
    assert 0 <= seed < 2**63


def test_tokens_law_draws_real_non_special_rows():
    table = _random_table(rows=50, cols=16)
    special = {0, 7, 39}
    law = fit_law(table, "tokens", special_ids=special, n_real_tokens=40)  # rows 40+ = padding
    draws = draw_rsp(law, 2000, seed=5)
    assert draws.dtype == torch.float32
    matches = (draws[:, None, :] == table[None]).all(-1)  # [k, rows]
    assert (matches.sum(-1) == 1).all()  # every draw is exactly one row of the table
    picked = set(matches.float().argmax(-1).tolist())
    assert picked == set(range(40)) - special  # all real non-special rows, nothing else


def test_tokens_law_on_the_model_table(loaded_qwen2):
    tokenizer, table = loaded_qwen2.tokenizer, loaded_qwen2.embedding_table.detach()
    special = set(tokenizer.all_special_ids)
    assert special  # the tiny tokenizer has BOS and EOS
    law = fit_law(table, "tokens", special_ids=special, n_real_tokens=len(tokenizer))
    draws = draw_rsp(law, 3000, seed=0)
    matches = (draws[:, None, :] == table[None].float()).all(-1)
    assert (matches.sum(-1) >= 1).all()
    assert not (set(matches.float().argmax(-1).tolist()) & special)


QUESTION = "Mia has 12 pencils. She buys 7 more. How many pencils does Mia have now?"


@pytest.mark.parametrize("k", [0, 1, 4])
def test_suffix_placement_sits_right_before_the_answer_cue(loaded_qwen2, k):
    prompt = encode_plain(loaded_qwen2.tokenizer, QUESTION)
    assert prompt.head == [loaded_qwen2.tokenizer.bos_token_id] and prompt.cue
    ids, positions = place_rsp(prompt, k, "suffix")
    assert len(ids) == len(prompt.token_ids) + k
    cue_start = len(ids) - len(prompt.cue)
    assert positions == list(range(cue_start - k, cue_start))
    assert ids[cue_start:] == prompt.cue
    assert [ids[p] for p in positions] == [-1] * k
    assert [i for p, i in enumerate(ids) if p not in positions] == prompt.token_ids


@pytest.mark.parametrize("k", [0, 1, 4])
def test_prefix_placement_sits_right_after_bos(loaded_qwen2, k):
    prompt = encode_plain(loaded_qwen2.tokenizer, QUESTION)
    ids, positions = place_rsp(prompt, k, "prefix")
    assert ids[0] == loaded_qwen2.tokenizer.bos_token_id
    assert positions == list(range(1, 1 + k))
    assert ids[1 + k:] == prompt.question + prompt.cue
    assert [i for p, i in enumerate(ids) if p not in positions] == prompt.token_ids


def test_unknown_placement_is_a_usage_error(loaded_qwen2):
    prompt = encode_plain(loaded_qwen2.tokenizer, QUESTION)
    with pytest.raises(UsageError, match="placement"):
        place_rsp(prompt, 2, "middle")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_inputs_embeds_are_table_rows_and_rsp_rows(loaded_qwen2, dtype, placement):
    table = loaded_qwen2.embedding_table.detach().to(dtype)
    law = fit_law(table, "gaussian")
    prompt = encode_plain(loaded_qwen2.tokenizer, QUESTION)
    ids, positions = place_rsp(prompt, 3, placement)
    rsp = draw_rsp(law, 3, seed=11)
    embeds = build_inputs_embeds(table, ids, positions, rsp)
    assert embeds.dtype == dtype and embeds.shape == (len(ids), table.shape[1])
    for position, token in enumerate(ids):
        expected = rsp[positions.index(position)].to(dtype) if token == -1 else table[token]
        assert torch.equal(embeds[position], expected), position
    assert not torch.equal(embeds[positions[0]], table[0])  # the slot is not row 0 (id -1 -> 0)


def test_inputs_embeds_without_rsp_are_the_token_rows(loaded_qwen2):
    table = loaded_qwen2.embedding_table.detach()
    prompt = encode_plain(loaded_qwen2.tokenizer, QUESTION)
    ids, positions = place_rsp(prompt, 0, "suffix")
    embeds = build_inputs_embeds(table, ids, positions, torch.zeros(0, table.shape[1]))
    assert torch.equal(embeds, table[torch.tensor(prompt.token_ids)])


# -- draws recorded by real runs ---------------------------------------------------------------

def _entropy_run(model, out, **options):
    from rsp_probe import entropy

    defaults = {"n_prompts": 2, "samples": 2, "rsp_tokens": (3,), "max_new_tokens": 2,
                "quiet": True}
    return entropy(model=model, out=str(out), **{**defaults, **options})[0]


def test_run_records_the_draw_of_its_seed_whatever_the_batch(loaded_qwen2, tmp_path):
    """rsp.safetensors holds draw_rsp(law, k, trajectory_draw_seed(seed, prompt, sample)), and a
    different batch size, prompt count and sample count leaves shared trajectories' draws alone."""
    small = _entropy_run(loaded_qwen2, tmp_path / "small", batch_size=1)
    large = _entropy_run(loaded_qwen2, tmp_path / "large", batch_size=8, n_prompts=3, samples=3,
                         rsp_tokens=(3, 5))
    law = fit_law(loaded_qwen2.embedding_table, "gaussian")
    small_vectors, large_vectors = small.rsp_vectors(), large.rsp_vectors()
    k3 = [r for r in small.trajectories.to_dict("records") if r["rsp_tokens"] == 3]
    assert len(k3) == 4
    for record in k3:
        seed = trajectory_draw_seed(0, record["prompt_id"], record["sample"], fixed=False)
        assert record["rsp_seed"] == seed
        expected = draw_rsp(law, 3, seed).numpy()
        np.testing.assert_array_equal(small_vectors[record["id"]], expected)
        np.testing.assert_array_equal(large_vectors[record["id"]], expected)
    all_k3 = [large_vectors[i] for i in large.trajectories["id"] if i.startswith("k3/")]
    assert len({v.tobytes() for v in all_k3}) == len(all_k3) == 9  # fresh per trajectory


def test_fixed_draw_shares_one_vector_set(loaded_qwen2, tmp_path):
    run = _entropy_run(loaded_qwen2, tmp_path / "fixed", fixed_draw=True, rsp_tokens=(3,))
    vectors = run.rsp_vectors()
    with_rsp = [vectors[i] for i in run.trajectories["id"] if i.startswith("k3/")]
    assert len(with_rsp) == 4
    for v in with_rsp[1:]:
        np.testing.assert_array_equal(v, with_rsp[0])
    law = fit_law(loaded_qwen2.embedding_table, "gaussian")
    np.testing.assert_array_equal(
        with_rsp[0], draw_rsp(law, 3, trajectory_draw_seed(0, "any", 0, fixed=True)).numpy())
