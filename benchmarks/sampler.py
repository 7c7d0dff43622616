"""Sampler throughput, side by side in one process (these machines are noisy: compare ratios).

For a ~10M- and a ~100M-parameter random Qwen2, 32 trajectories x 64 new tokens with 8 RSP
positions, greedy:
  (a) rsp-probe's sampler on the hf backend with every probe (entropy, top1_prob, margin,
      collision, rsp_attention for every layer and head),
  (b) the same sampler and backend with no probes,
  (c) Hugging Face generate(inputs_embeds=...) with sdpa attention,
  (d) with --bridge: the sampler on the TransformerLens backend with every probe,
  (r) the fp32 matmul roofline of this machine: torch matmul GFLOP/s at the model's linear
      shapes (batch 32), / (2 FLOP x parameters) = the tok/s of a decoder that only multiplies.
The arms run interleaved, `--repeats` times, the order reversed every round; medians are
reported, with the per-round range of a/b and a/c. Then, for the largest model of the run,
single decode steps timed in interleaved lanes (benchmarks/decode_steps.py): every probe vs
none at 64 tokens of context, every probe at 512 vs 64 tokens of context, next to the ratio
the work itself predicts, and Hugging Face's own decode step (sdpa, DynamicCache) at both
contexts: a/c per step, and how the reference's step grows with the context.

    python benchmarks/sampler.py            # both sizes, a Markdown table
    python benchmarks/sampler.py --quick    # 10M only; the last line reads
        ratio_vs_hf=.. ratio_vs_noprobe=.. ratio_vs_roofline=.. ratio_context=..
        step_ratio_vs_noprobe=.. step_ratio_vs_hf=.. hf_ratio_context=..
    python benchmarks/sampler.py --device cuda --dtype bfloat16 --sizes 0.5B 1.5B   # gpu.sh
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from decode_steps import (
    HFLane,
    Lane,
    in_probe_code,
    interleaved,
    intrinsic,
    kv_read_bandwidths,
    ratio_summary,
    time_inside,
)

from rsp_probe.models import load_model
from rsp_probe.probes.base import DEFAULT_PROBES
from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law
from rsp_probe.sampler import Job, generate
from rsp_probe.toy.checkpoint import ToyArchitecture, save_random_checkpoint
from rsp_probe.toy.tokenizer import train_tokenizer

SIZES = {
    "10M": ToyArchitecture(n_layers=6, d_model=384, n_heads=6, n_kv_heads=2, d_mlp=1024,
                           n_ctx=1024),
    "100M": ToyArchitecture(n_layers=12, d_model=768, n_heads=12, n_kv_heads=4, d_mlp=3072,
                            n_ctx=1024),
    # Qwen2.5-0.5B / 1.5B shapes (vocabulary 151,936 below, GQA); random weights
    "0.5B": ToyArchitecture(n_layers=24, d_model=896, n_heads=14, n_kv_heads=2, d_mlp=4864,
                            n_ctx=4096),
    "1.5B": ToyArchitecture(n_layers=28, d_model=1536, n_heads=12, n_kv_heads=2, d_mlp=8960,
                            n_ctx=4096),
}
QWEN_VOCAB = 151_936
# CPU time of this process (one torch thread) on CPU: the machine is shared, and wall time
# there measures the other jobs as much as ours; wall time on CUDA (kernels run async).
CLOCK = time.process_time
N_TRAJECTORIES, NEW_TOKENS, RSP_TOKENS, PROMPT_TOKENS = 32, 64, 8, 48
CONTEXTS, CONTEXT_STEPS = (64, 512), 32  # decode steps per lane and round
CORPUS = ["Mia has 12 pencils. She buys 7 more and gives 5 to Leo. How many pencils now?",
          "Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14"] * 50


def build(size: str, root: Path, device: str, dtype: str, backend: str = "hf"):
    train_tokenizer(CORPUS, vocab_size=512, out_dir=root / "tokenizer")
    path = root / size
    if not path.exists():
        save_random_checkpoint(path, SIZES[size], root / "tokenizer")
        if size in ("0.5B", "1.5B"):
            _widen_vocabulary(path, QWEN_VOCAB)
    return load_model(str(path), dtype=dtype, device=device, backend=backend), path


def _widen_vocabulary(path: Path, vocab: int) -> None:
    """Resize a saved checkpoint's embedding to a Qwen2.5-sized vocabulary (the extra rows
    are never produced by the tokenizer, but every step pays for the full LM head)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path))
    model.resize_token_embeddings(vocab, mean_resizing=False)
    model.save_pretrained(str(path))


def make_jobs(model, prompt_tokens: int = PROMPT_TOKENS) -> list[Job]:
    law = fit_law(model.embedding_table.float())
    ids = [1] + [5 + i % 200 for i in range(prompt_tokens)] + [-1] * RSP_TOKENS
    positions = list(range(prompt_tokens + 1, prompt_tokens + 1 + RSP_TOKENS))
    return [Job(str(i), ids, positions, draw_rsp(law, RSP_TOKENS, seed=i), 0.0, 1.0, i)
            for i in range(N_TRAJECTORIES)]


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def ours_runner(model, jobs, probes: bool):
    def run() -> float:
        start = CLOCK()
        out = generate(model, jobs, NEW_TOKENS, batch_size=N_TRAJECTORIES,
                       probes=DEFAULT_PROBES if probes else ())
        _sync(model)
        return sum(len(t.generated_token_ids) for t in out) / (CLOCK() - start)

    return run


def load_hf(path: Path, model):
    """The same checkpoint as plain transformers loads it: sdpa attention, no rsp-probe."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa",
                                                dtype=model.dtype).to(model.device).eval()


def hf_runner(hf, model, jobs):
    embeds = torch.stack([build_inputs_embeds(model.embedding_table, j.input_ids,
                                              j.rsp_positions, j.rsp) for j in jobs])
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=model.device)

    @torch.inference_mode()
    def run() -> float:
        start = CLOCK()
        out = hf.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                          min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        _sync(model)
        return out.numel() / (CLOCK() - start)

    return run


def roofline_runner(model, n_params: int, batch: int = N_TRAJECTORIES):
    """tok/s of the model's linear layers as bare matmuls: GFLOP/s at those shapes, divided
    by 2 FLOP per parameter per token (best of 5 passes over every weight)."""
    weights = [m.weight for m in model.model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype, device=w.device)
              for w in weights}
    flops = 2 * batch * sum(w.numel() for w in weights)

    @torch.inference_mode()
    def run() -> float:
        best = float("inf")
        for _ in range(5):
            start = CLOCK()
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)
            _sync(model)
            best = min(best, CLOCK() - start)
        return flops / best / (2 * n_params)

    return run


def measure_steps_only(size: str, root: Path, device: str, dtype: str) -> dict:
    """What decode_steps needs, without the whole runs: for a model whose whole runs take
    too long here (0.5B on a 2-core CPU)."""
    model, path = build(size, root, device, dtype)
    n_params = model.n_parameters()
    roofline = roofline_runner(model, n_params)
    roofline()  # warm-up
    return {"size": size, "params": n_params, "model": model, "hf": load_hf(path, model),
            "r": roofline()}


def measure(size: str, repeats: int, root: Path, device: str, dtype: str, bridge: bool) -> dict:
    model, path = build(size, root, device, dtype)
    jobs = make_jobs(model)
    n_params = model.n_parameters()
    hf = load_hf(path, model)
    runners = {"a": ours_runner(model, jobs, True), "b": ours_runner(model, jobs, False),
               "c": hf_runner(hf, model, jobs), "r": roofline_runner(model, n_params)}
    if bridge:
        tl = load_model(str(path), dtype=dtype, device=device, backend="transformer-lens")
        runners["d"] = ours_runner(tl, jobs, True)
    for runner in runners.values():  # warm-up
        runner()
    rates = {name: [] for name in runners}
    for round_ in range(repeats):  # the order reversed every round
        names = list(runners) if round_ % 2 == 0 else list(reversed(runners))
        for name in names:
            rates[name].append(runners[name]())
    medians = {name: statistics.median(values) for name, values in rates.items()}
    spread = {f"a/{arm}": [a / x for a, x in zip(rates["a"], rates[arm])] for arm in "bc"}
    # other jobs only ever slow a run down: each arm's fastest round is its least disturbed
    best = {f"a/{arm}": max(rates["a"]) / max(rates[arm]) for arm in "bc"}
    return {"size": size, "params": n_params, "model": model, "hf": hf, **medians,
            "spread": spread, "best": best,
            "probe_share": probe_share(model, jobs),
            "ratio_vs_hf": medians["a"] / medians["c"],
            "ratio_vs_noprobe": medians["a"] / medians["b"],
            "ratio_vs_roofline": medians["a"] / medians["r"]}


def probe_share(model, jobs) -> float:
    """The share of a probed run's time spent in the probes' own code, by cProfile on the
    benchmark's clock: immune to the machine's load, which moves whole runs by 10-15%. (On
    CUDA, kernels run asynchronously: this counts the probes' launch overhead only.)"""
    profile = cProfile.Profile(CLOCK)
    profile.enable()
    generate(model, jobs, NEW_TOKENS, batch_size=N_TRAJECTORIES, probes=DEFAULT_PROBES)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(tottime for _, _, tottime, _, _ in stats.values())
    return time_inside(stats, in_probe_code) / total


def decode_steps(result: dict, steps: int) -> dict:
    """Step-level, interleaved (benchmarks/decode_steps.py): the probes' cost per decode
    step at CONTEXTS[0], the step time at CONTEXTS[1] over CONTEXTS[0], with probes, and
    both against Hugging Face's own decode step (sdpa, DynamicCache) at the same contexts."""
    model = result["model"]
    lanes = [Lane(model, CONTEXTS[0], True, N_TRAJECTORIES, CLOCK),
             Lane(model, CONTEXTS[0], False, N_TRAJECTORIES, CLOCK),
             Lane(model, CONTEXTS[1], True, N_TRAJECTORIES, CLOCK),
             HFLane(result["hf"], CONTEXTS[0], N_TRAJECTORIES, CLOCK),
             HFLane(result["hf"], CONTEXTS[1], N_TRAJECTORIES, CLOCK)]
    probed, bare, long, hf_short, hf_long = interleaved(lanes, steps)
    matmul_rate = result["r"] * 2 * result["params"]  # FLOP/s of the roofline arm
    bandwidths = kv_read_bandwidths(model, N_TRAJECTORIES, CONTEXTS[1], CLOCK)
    return {"size": result["size"], "steps": steps,
            "probes": ratio_summary(bare, probed),  # a/b as a rate: t(b) / t(a)
            "context": ratio_summary(long, probed),
            "short_ms": 1e3 * statistics.median(probed), "long_ms": 1e3 * statistics.median(long),
            "vs_hf": {context: ratio_summary(theirs, ours)  # a/c as a rate: t(c) / t(a)
                      for context, theirs, ours in zip(CONTEXTS, (hf_short, hf_long),
                                                       (probed, long))},
            "hf_context": ratio_summary(hf_long, hf_short),
            "hf_short_ms": 1e3 * statistics.median(hf_short),
            "hf_long_ms": 1e3 * statistics.median(hf_long),
            "intrinsic": intrinsic(model, N_TRAJECTORIES, CONTEXTS, matmul_rate, bandwidths)}


def report_steps(s: dict) -> None:
    probes, context, work = s["probes"], s["context"], s["intrinsic"]
    print(f"decode steps, {s['size']}, batch {N_TRAJECTORIES}, {s['steps']} steps per lane, "
          f"interleaved (median; per-round quartiles in brackets):\n"
          f"- every probe vs none, {CONTEXTS[0]} tokens of context: step_ratio_vs_noprobe="
          f"{probes['ratio']:.3f} [{probes['q1']:.3f}-{probes['q3']:.3f}]\n"
          f"- every probe, {s['short_ms']:.1f} ms at {CONTEXTS[0]} tokens of context, "
          f"{s['long_ms']:.1f} ms at {CONTEXTS[1]}: ratio_context={context['ratio']:.3f} "
          f"[{context['q1']:.3f}-{context['q3']:.3f}]\n"
          f"- Hugging Face's own step (sdpa, DynamicCache, the model call only), "
          f"{s['hf_short_ms']:.1f} ms at {CONTEXTS[0]} tokens of context, "
          f"{s['hf_long_ms']:.1f} ms at {CONTEXTS[1]}: hf_ratio_context="
          f"{s['hf_context']['ratio']:.3f} [{s['hf_context']['q1']:.3f}-"
          f"{s['hf_context']['q3']:.3f}]\n"
          f"- every probe vs Hugging Face's step: "
          + "; ".join(f"{c} tokens step_ratio_vs_hf={r['ratio']:.3f} [{r['q1']:.3f}-"
                      f"{r['q3']:.3f}]" for c, r in s["vs_hf"].items()) + "\n"
          f"- the work predicts: FLOP ratio {work['flop_ratio']:.3f}; weights at the roofline "
          f"rate plus {work['kv_mb_long']:.0f} MB of K/V at {CONTEXTS[1]} tokens read at")
    for name, model in work["models"].items():
        print(f"  - {name} rate, {model['gb_s']:.1f} GB/s: {model['short_ms']:.1f} -> "
              f"{model['long_ms']:.1f} ms, ratio {model['ratio']:.3f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10M model only")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["10M", "100M"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=CONTEXT_STEPS,
                        help="decode steps per lane in the interleaved step measurements")
    parser.add_argument("--bridge", action="store_true",
                        help="also (d): the sampler on the TransformerLens backend")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: process CPU time (default on CPU); wall (default on CUDA)")
    parser.add_argument("--steps-only", action="store_true",
                        help="only the interleaved decode steps of the last size (no whole "
                             "runs; the last line then has the step ratios only)")
    args = parser.parse_args(argv)
    global CLOCK
    wall = (args.clock or ("wall" if args.device == "cuda" else "cpu")) == "wall"
    CLOCK = time.perf_counter if wall else time.process_time
    sizes = ["10M"] if args.quick else args.sizes
    device = (torch.cuda.get_device_name() if args.device == "cuda"
              else platform.processor() or platform.machine())
    print(f"machine: {device}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, {args.dtype}, {'wall' if wall else 'CPU'} time")
    if args.steps_only:
        with tempfile.TemporaryDirectory() as tmp:
            steps = decode_steps(measure_steps_only(sizes[-1], Path(tmp), args.device,
                                                    args.dtype), args.steps)
        report_steps(steps)
        print(step_ratios(steps))
        return 0
    print("| model | params | (a) probes tok/s | (b) no probes tok/s | (c) HF generate tok/s "
          "| (r) roofline tok/s | (d) bridge tok/s | a/c | a/b | a/r |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(size, args.repeats, Path(tmp), args.device, args.dtype, args.bridge)
                   for size in sizes]
        for r in results:
            bridge = f"{r['d']:.0f}" if "d" in r else "-"
            print(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['a']:.0f} | {r['b']:.0f} | "
                  f"{r['c']:.0f} | {r['r']:.0f} | {bridge} | {r['ratio_vs_hf']:.2f} | "
                  f"{r['ratio_vs_noprobe']:.2f} | {r['ratio_vs_roofline']:.2f} |", flush=True)
        for r in results:
            rounds = ", ".join(f"{name} {min(v):.2f}-{max(v):.2f} (fastest rounds: "
                               f"{r['best'][name]:.2f})" for name, v in r["spread"].items())
            print(f"{r['size']}, per round (min-max of {len(r['spread']['a/b'])}): {rounds}; "
                  f"the probes' own code (cProfile) takes {100 * r['probe_share']:.2f}% of an "
                  "(a) run")
        steps = decode_steps(results[-1], args.steps)
    report_steps(steps)
    last = results[-1]
    print(f"ratio_vs_hf={last['ratio_vs_hf']:.3f} ratio_vs_noprobe="
          f"{last['ratio_vs_noprobe']:.3f} ratio_vs_roofline={last['ratio_vs_roofline']:.3f} "
          + step_ratios(steps))
    return 0


def step_ratios(steps: dict) -> str:
    return (f"ratio_context={steps['context']['ratio']:.3f} "
            f"step_ratio_vs_noprobe={steps['probes']['ratio']:.3f} "
            f"step_ratio_vs_hf={steps['vs_hf'][CONTEXTS[0]]['ratio']:.3f} "
            f"hf_ratio_context={steps['hf_context']['ratio']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
