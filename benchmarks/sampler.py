"""Sampler throughput, side by side in one process (these machines are noisy: compare ratios).

For a ~10M- and a ~100M-parameter random Qwen2, 32 trajectories x 64 new tokens with 8 RSP
positions, greedy:
  (a) rsp-probe's sampler with every probe (entropy, top1_prob, margin, collision,
      rsp_attention for every layer and head),
  (b) the same sampler with no probes (no hooks, no logit probes),
  (c) Hugging Face generate(inputs_embeds=...) with sdpa attention.
The three run interleaved, `--repeats` times; medians are reported.

    python benchmarks/sampler.py            # both sizes, a Markdown table
    python benchmarks/sampler.py --quick    # 10M only; ends with ratio_vs_hf=.. ratio_vs_noprobe=..
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rsp_probe.models import load_model
from rsp_probe.probes.base import DEFAULT_PROBES
from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law
from rsp_probe.sampler import Job, generate
from rsp_probe.toy.checkpoint import ToyArchitecture, save_random_checkpoint
from rsp_probe.toy.tokenizer import train_tokenizer

SIZES = {
    "10M": ToyArchitecture(n_layers=6, d_model=384, n_heads=6, n_kv_heads=2, d_mlp=1024),
    "100M": ToyArchitecture(n_layers=12, d_model=768, n_heads=12, n_kv_heads=4, d_mlp=3072),
}
N_TRAJECTORIES, NEW_TOKENS, RSP_TOKENS, PROMPT_TOKENS = 32, 64, 8, 48
CORPUS = ["Mia has 12 pencils. She buys 7 more and gives 5 to Leo. How many pencils now?",
          "Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14"] * 50


def build(size: str, root: Path):
    train_tokenizer(CORPUS, vocab_size=512, out_dir=root / "tokenizer")
    path = save_random_checkpoint(root / size, SIZES[size], root / "tokenizer")
    model = load_model(str(path))
    n_params = model.n_parameters()
    law = fit_law(model.embedding_table)
    ids = [1] + [5 + i % 200 for i in range(PROMPT_TOKENS)] + [-1] * RSP_TOKENS
    positions = list(range(PROMPT_TOKENS + 1, PROMPT_TOKENS + 1 + RSP_TOKENS))
    jobs = [Job(str(i), ids, positions, draw_rsp(law, RSP_TOKENS, seed=i), 0.0, 1.0, i)
            for i in range(N_TRAJECTORIES)]
    return model, jobs, n_params, path


def run_ours(model, jobs, probes: bool) -> float:
    start = time.perf_counter()
    out = generate(model, jobs, NEW_TOKENS, batch_size=N_TRAJECTORIES,
                   probes=DEFAULT_PROBES if probes else ())
    return sum(len(t.generated_token_ids) for t in out) / (time.perf_counter() - start)


def hf_runner(path: Path, model, jobs):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa").eval()
    embeds = torch.stack([build_inputs_embeds(model.embedding_table, j.input_ids,
                                              j.rsp_positions, j.rsp) for j in jobs])
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)

    @torch.inference_mode()
    def run() -> float:
        start = time.perf_counter()
        out = hf.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                          min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        return out.numel() / (time.perf_counter() - start)

    return run


def measure(size: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model, jobs, n_params, path = build(size, Path(tmp))
        runners = {"a": lambda: run_ours(model, jobs, True),
                   "b": lambda: run_ours(model, jobs, False),
                   "c": hf_runner(path, model, jobs)}
        for runner in runners.values():  # warm-up
            runner()
        rates = {name: [] for name in runners}
        for _ in range(repeats):
            for name, runner in runners.items():
                rates[name].append(runner())
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {"size": size, "params": n_params, **medians,
            "ratio_vs_hf": medians["a"] / medians["c"],
            "ratio_vs_noprobe": medians["a"] / medians["b"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10M model only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = ["10M"] if args.quick else list(SIZES)
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("| model | params | (a) probes tok/s | (b) no probes tok/s | (c) HF generate tok/s "
          "| a/c | a/b |\n|---|---|---|---|---|---|---|")
    results = [measure(size, args.repeats) for size in sizes]
    for r in results:
        print(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['a']:.0f} | {r['b']:.0f} | "
              f"{r['c']:.0f} | {r['ratio_vs_hf']:.2f} | {r['ratio_vs_noprobe']:.2f} |")
    last = results[-1]
    print(f"ratio_vs_hf={last['ratio_vs_hf']:.3f} ratio_vs_noprobe={last['ratio_vs_noprobe']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
