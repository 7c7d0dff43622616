"""Batched KV-cache sampling with read-only step probes.

Prefill the (left-padded) input embeddings once, then decode one token per step for every
row, stopping each row at EOS, at a stop string or at max_new_tokens. The loop owns the step
index; it calls whatever probes it is given (rsp_probe.probes), which record exactly one
value per (trajectory, step[, layer, head]) through the backend's sites.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rsp_probe.backends.base import Backend
from rsp_probe.errors import UsageError
from rsp_probe.key_groups import input_key_groups
from rsp_probe.probes.base import (
    DEFAULT_PROBES,
    BatchContext,
    ProbeContractError,
    StepProbe,
    check_finalized,
    named_probes,
)
from rsp_probe.rsp import job_embeds

LOG = logging.getLogger("rsp_probe")


@dataclass(frozen=True)
class Job:
    """One trajectory to generate."""

    id: str
    input_ids: list[int]  # the model input, -1 where RSP vectors sit
    rsp_positions: list[int]
    rsp: torch.Tensor  # [k, d_model] float32, k = len(rsp_positions)
    temperature: float
    top_p: float
    seed: int  # of this trajectory's sampling generator
    n_cue: int = 0  # template tokens after the question (the cue key group)
    rsp_in_positions: bool = True  # False: RSP slots do not advance the position ids
    rsp_added: bool = False  # rsp [T, d] is added to every input embedding: a law without
    # slots (Law.slots False, e.g. neftune), set by experiments.sampling.build_jobs


@dataclass
class Trajectory:
    id: str
    generated_token_ids: list[int]
    stop_reason: str  # "eos" | "stop_string" | "max_new_tokens" | "context"
    steps: dict[str, np.ndarray] = field(default_factory=dict)  # probe -> [S] or [S, L, H]


@torch.inference_mode()
def generate(model: Backend, jobs: list[Job], max_new_tokens: int, *,
             stop_strings: tuple[str, ...] = (), batch_size: int = 32,
             probes: Sequence[str] = DEFAULT_PROBES, progress=None, on_batch=None,
             prepare_batch=None, skip_batches=frozenset(),
             interventions: Sequence[Callable[[BatchContext], StepProbe]] = ()
             ) -> list[Trajectory]:
    """Generate every job; results come back in the order of `jobs`. `interventions` are
    per-batch factories of probes whose taps replace site values (rsp_probe.interventions).

    Rows are batched by input length (less padding); a row's result never depends on
    which rows share its batch beyond float rounding of the padded forward pass.

    Streaming hook points (rsp_probe.runio.parts): with `on_batch(b, indices, trajectories)`
    each finished batch b is handed over and not kept (the return value is then empty), so
    memory stays O(batch); `prepare_batch(b, indices, jobs)` may fill in a batch's jobs just
    before it runs (e.g. draw its RSP vectors); batches in `skip_batches` (done before an
    interruption) are not run. The batches are the same whatever is skipped.
    """
    order = sorted(range(len(jobs)), key=lambda i: len(jobs[i].input_ids))
    results: dict[int, Trajectory] = {}
    if progress is not None:  # rsp_probe.progress.Progress
        progress.expect(len(jobs), max_new_tokens)
    for number, start in enumerate(range(0, len(order), batch_size)):
        if number in skip_batches:  # done before the interruption: no longer to come
            if progress is not None:
                skipped = len(order[start:start + batch_size])
                progress.advance(0, finished=skipped, unused=skipped * max_new_tokens)
            continue
        chunk = order[start:start + batch_size]
        chunk_jobs = [jobs[i] for i in chunk]
        if prepare_batch is not None:
            chunk_jobs = prepare_batch(number, chunk, chunk_jobs)
        batch = _generate_halving(model, chunk_jobs, max_new_tokens,
                                  stop_strings, probes, progress, interventions)
        if on_batch is not None:
            on_batch(number, chunk, batch)
        else:
            results.update(zip(chunk, batch))
    return [results[i] for i in range(len(jobs))] if on_batch is None else []


def _generate_halving(model: Backend, jobs: list[Job], *args) -> list[Trajectory]:
    """_generate_batch, split in two halves (recursively) when the device runs out of
    memory: the batch keeps its number and its order, so streaming and --resume see one
    batch, and nothing already decoded is lost (finished batches are handed over before)."""
    try:
        return _generate_batch(model, jobs, *args)
    except torch.OutOfMemoryError:
        if len(jobs) == 1:
            raise
    # outside the except block, so the failed attempt's tensors can be freed
    half = len(jobs) // 2
    LOG.warning(f"out of memory decoding {len(jobs)} trajectories together; retrying as "
                f"{half} + {len(jobs) - half}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return (_generate_halving(model, jobs[:half], *args)
            + _generate_halving(model, jobs[half:], *args))


def _left_pad(model: Backend, jobs: list[Job]):
    table = model.embedding_table
    width = max(len(job.input_ids) for job in jobs)
    embeds = torch.zeros(len(jobs), width, table.shape[1], dtype=table.dtype, device=model.device)
    mask = torch.zeros(len(jobs), width, dtype=torch.long, device=model.device)
    rsp_keys = torch.zeros(len(jobs), width, device=model.device)
    groups = torch.full((len(jobs), width), -1, dtype=torch.long, device=model.device)
    counted = torch.zeros(len(jobs), width, dtype=torch.long, device=model.device)
    for row, job in enumerate(jobs):
        pad = width - len(job.input_ids)
        embeds[row, pad:] = job_embeds(table, job)  # slots, or prompt noise (neftune)
        mask[row, pad:] = 1
        rsp_keys[row, [pad + p for p in job.rsp_positions]] = 1.0
        groups[row, pad:] = torch.tensor(
            input_key_groups(len(job.input_ids), job.rsp_positions, job.n_cue))
        counted[row] = mask[row]
        if not job.rsp_in_positions:
            counted[row, [pad + p for p in job.rsp_positions]] = 0
    positions = (counted.cumsum(dim=-1) - 1).clamp(min=0)
    return embeds, mask, positions, rsp_keys, groups


def _generate_batch(model: Backend, jobs: list[Job], max_new_tokens: int,
                    stop_strings: tuple[str, ...], probe_names: Sequence[str], progress,
                    interventions=()):
    info = model.info
    embeds, mask, positions, rsp_keys, groups = _left_pad(model, jobs)
    budgets = [min(max_new_tokens, info.n_ctx - len(job.input_ids)) for job in jobs]
    steps_left = max(budgets)  # each row stops at its own budget, not the longest row's
    chooser = _TokenChooser(jobs, model.device)
    context = BatchContext(len(jobs), steps_left, info.n_layers, info.n_heads, model.device,
                           rsp_keys, chooser.temperature, groups)
    named = named_probes(probe_names, context)
    recorders = [probe for _, probe in named]
    acting = [make(context) for make in interventions]
    probes = recorders + acting
    rows = _RowState(jobs, model, stop_strings, budgets, max_new_tokens)
    passes = _TwoPasses(recorders, acting)
    # the attention mask of every step, as views of one buffer: the prompt's, then ones
    masks = torch.ones(len(jobs), mask.shape[1] + steps_left, dtype=mask.dtype,
                       device=mask.device)
    masks[:, :mask.shape[1]] = mask
    with model.tapped(passes.taps()):
        cache, tokens = None, None
        for step in range(1, steps_left + 1):
            for probe in probes:
                probe.begin_step(step)
            passes.begin(cache_pass=False)
            last, new_cache = _forward(model, embeds, tokens, mask, positions, cache)  # [B, V]
            if passes:  # the same inputs again, keeping only their keys and values
                passes.begin(cache_pass=True)
                new_cache = _forward(model, embeds, tokens, mask, positions,
                                     None if cache is None else model.rewind(new_cache, 1))[1]
            cache = new_cache
            for probe in probes:
                probe.record(step, last)
                probe.check_step()
            tokens = chooser.choose(last)
            active_before = rows.active.copy()
            rows.append(tokens.tolist())
            if progress is not None:
                ended = np.flatnonzero(active_before & ~rows.active)
                progress.advance(int(active_before.sum()), finished=len(ended), unused=sum(
                    max_new_tokens - len(rows.tokens[row]) for row in ended))
            if not rows.active.any():
                break
            mask = masks[:, :mask.shape[1] + 1]
            positions = positions[:, -1:] + 1
    return rows.trajectories(named, acting, context)


def _forward(model: Backend, embeds, tokens, mask, positions, cache):
    """The prefill when there is no cache yet, else one decode step."""
    if cache is None:
        return model.prefill(embeds, mask, positions)
    return model.decode(tokens[:, None], mask, positions, cache)


class _TwoPasses:
    """Interventions that rewrite the cache (`rewrites_cache`, e.g. a sampled path) need
    each step run twice: a logits pass, then a cache pass over the same inputs that
    replaces the newest positions' keys and values. Every intervention acts in both passes;
    the read-only probes' taps are silent in the cache pass, so each records one value per
    step."""

    def __init__(self, recorders: Sequence[StepProbe], interventions: Sequence[StepProbe]):
        self.recorders = recorders
        self.interventions = interventions
        self.rewriters = [p for p in interventions if getattr(p, "rewrites_cache", False)]
        self.cache_pass = False

    def __bool__(self) -> bool:
        return bool(self.rewriters)

    def begin(self, cache_pass: bool) -> None:
        self.cache_pass = cache_pass
        for probe in self.rewriters:
            probe.begin_pass(cache_pass)

    def taps(self) -> list:
        recorded = [tap for probe in self.recorders for tap in probe.taps()]
        if self.rewriters:
            recorded = [self._silent_in_cache_pass(tap) for tap in recorded]
        return recorded + [tap for probe in self.interventions for tap in probe.taps()]

    def _silent_in_cache_pass(self, tap):
        def fn(layer, value):
            return None if self.cache_pass else tap.fn(layer, value)

        return replace(tap, fn=fn)


class _TokenChooser:
    """Greedy or temperature/top-p sampling, with one generator per trajectory."""

    def __init__(self, jobs: list[Job], device: torch.device):
        self.temperature = torch.tensor([j.temperature for j in jobs], device=device)[:, None]
        self.top_p = torch.tensor([j.top_p for j in jobs], device=device)[:, None]
        self.generators = [torch.Generator(device=device).manual_seed(j.seed) for j in jobs]
        # known before the first step, so that choosing needs no extra host synchronisation
        self.sampled_rows = (self.temperature[:, 0] > 0).nonzero().flatten().tolist()
        self.filters = not bool((self.top_p >= 1).all())

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        greedy = logits.argmax(dim=-1)
        if not self.sampled_rows:
            return greedy
        probs = torch.softmax(logits.float() / self.temperature.clamp(min=1e-6), dim=-1)
        if self.filters:
            probs = _top_p_filter(probs, self.top_p)
        try:
            for row in self.sampled_rows:
                greedy[row] = torch.multinomial(probs[row], 1, generator=self.generators[row])[0]
        except RuntimeError:  # checked only here: a check per step would cost a host sync
            if bool(torch.isfinite(logits).all()):
                raise
            raise UsageError("the model's next-token logits are not finite (NaN or inf): the "
                             "injected vectors overflow it; lower --sigma-scale") from None
        return greedy


def _top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of tokens whose mass reaches top_p (at least one token)."""
    if bool((top_p >= 1).all()):
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # mass before this token
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


class _RowState:
    """Per-row generated tokens and stop bookkeeping."""

    def __init__(self, jobs: list[Job], model: Backend, stop_strings: tuple[str, ...],
                 budgets: list[int], max_new_tokens: int):
        self.jobs = jobs
        self.tokenizer = model.tokenizer
        self.eos = model.eos_token_ids
        self.stop_strings = stop_strings
        self.tokens: list[list[int]] = [[] for _ in jobs]
        self.budgets = budgets
        # for rows that never stop by themselves
        self.reasons = ["context" if b < max_new_tokens else "max_new_tokens" for b in budgets]
        self.active = np.ones(len(jobs), dtype=bool)

    def append(self, tokens: list[int]) -> None:
        for row in np.flatnonzero(self.active):
            self.tokens[row].append(tokens[row])
            if tokens[row] in self.eos:
                self._stop(row, "eos")
            elif self.stop_strings and self._hits_stop_string(row):
                self._stop(row, "stop_string")
            elif len(self.tokens[row]) >= self.budgets[row]:
                self.active[row] = False  # keeps its limit reason

    def _hits_stop_string(self, row: int) -> bool:
        text = self.tokenizer.decode(self.tokens[row])
        return any(stop in text for stop in self.stop_strings)

    def _stop(self, row: int, reason: str) -> None:
        self.active[row] = False
        self.reasons[row] = reason

    def trajectories(self, recorders: list[tuple[str, StepProbe]], acting: list[StepProbe],
                     context: BatchContext) -> list[Trajectory]:
        """The rows' trajectories with the probes' values; the recorders' values are checked
        (check_finalized), and a label two probes report is refused, not overwritten."""
        n_steps = [len(tokens) for tokens in self.tokens]
        steps: list[dict[str, np.ndarray]] = [{} for _ in self.jobs]
        owner: dict[str, str] = {}
        checked = [(name, probe, True) for name, probe in recorders]
        for name, probe, recorder in checked + [(type(p).__name__, p, False) for p in acting]:
            rows = probe.finalize(n_steps)
            if recorder:  # interventions record nothing of their own (tests keep logits)
                check_finalized(name, probe, rows, n_steps, context)
            for row, values in enumerate(rows):
                for label in values:
                    if owner.setdefault(label, name) != name:
                        raise ProbeContractError(f"label {label!r} is reported by probes "
                                                 f"{owner[label]!r} and {name!r}")
                steps[row].update(values)
        return [Trajectory(job.id, self.tokens[row], self.reasons[row], steps[row])
                for row, job in enumerate(self.jobs)]
