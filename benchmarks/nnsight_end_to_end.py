"""End to end against nnsight: `rsp-probe entropy` and an nnsight 0.8 script recording the
same probes, as a researcher would write it.

On a random Qwen2 (benchmarks/sampler.py's shapes), whole processes with imports and model
loading, interleaved `--repeats` times, medians:
  ours:    rsp-probe entropy --rsp-tokens 8 --n-prompts 16 --samples 2 --temperature 0
           --max-new-tokens 64 (k = 0 and 8; entropy, top-1 probability, margin, collision
           and the attention mass on the RSP positions of every layer and head, every step)
  nnsight: LanguageModel (eager attention: it is how a researcher reads attention weights
           through nnsight) with model.generate(..., max_new_tokens=64), greedy, in batches
           of 32, the RSP vectors written into embed_tokens' output at the prefill step;
           every step it saves the same values: the four logit probes from lm_head's output
           and, per layer, the attention weights of the newest query summed over the RSP keys.
The nnsight script rebuilds our inputs (prompt tokens and RSP vectors, read from our run
directory) and checks that it generated the same greedy tokens and the same step-1 entropy,
so both sides are known to have done the same work. Rates are generated tokens per second of
wall time and of CPU time (the machine is shared: CPU time is the steadier).

    pip install -c constraints.txt -e '.[bench]'   # nnsight, pinned
    python benchmarks/nnsight_end_to_end.py         # ends with ratio_vs_nnsight=.. (wall) ..
"""

from __future__ import annotations

import sys
from pathlib import Path

from end_to_end import add_rates, new_rates, our_rounds, parse_args, print_ratios, timed

NNSIGHT = '''
import json, sys, torch
from safetensors.torch import load_file
from nnsight import TransformersModel

model_dir, run_dir = sys.argv[1:3]
model = TransformersModel(model_dir, task="text-generation", attn_implementation="eager",
                          dispatch=True)
model.eval()
eos = model.config.eos_token_id
records = [json.loads(line) for line in open(f"{run_dir}/trajectories.jsonl")]
vectors = load_file(f"{run_dir}/rsp.safetensors")
rows = []  # (token ids with 0 at the RSP positions, RSP positions, vectors, record)
for r in records:
    ids = list(r["prompt_token_ids"])
    for p in r["rsp_positions"]:
        ids.insert(p, 0)
    rows.append((ids, r["rsp_positions"], vectors.get(r["id"]), r))
rows.sort(key=lambda row: len(row[0]))
total, same_tokens, entropy_gap = 0, 0, 0.0
for start in range(0, len(rows), 32):
    batch = rows[start:start + 32]
    width = max(len(ids) for ids, *_ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    on_rsp = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, (ids, positions, _, _) in enumerate(batch):
        pad = width - len(ids)
        input_ids[i, pad:], mask[i, pad:] = torch.tensor(ids), 1
        on_rsp[i, [pad + p for p in positions]] = True
    injected = [v for _, positions, v, _ in batch if positions]
    injected = torch.cat(injected) if injected else None
    with model.generate({"input_ids": input_ids, "attention_mask": mask}, max_new_tokens=64,
                        do_sample=False, pad_token_id=eos) as tracer:
        steps = list().save()  # nothing after an unbounded iter loop runs: tokens come from it
        for step in tracer.iter[:]:
            if step == 0 and injected is not None:
                model.model.embed_tokens.output[on_rsp] = injected
            masses = [(layer.self_attn.output[1][:, :, -1, :width] * on_rsp[:, None]).sum(-1)
                      for layer in model.model.layers]  # [B, heads] per layer
            logits = model.lm_head.output[:, -1].float()
            log_probs = logits.log_softmax(-1)
            probs = log_probs.exp()
            top2 = logits.topk(2, dim=-1).values
            steps.append({"token": logits.argmax(-1), "entropy": -(probs * log_probs).sum(-1),
                          "top1_prob": probs.max(-1).values, "margin": top2[:, 0] - top2[:, 1],
                          "collision": torch.ones(len(batch)),  # temperature 0
                          "rsp_attention": torch.stack(masses, 1)})
    for i, (_, _, _, record) in enumerate(batch):
        new = [int(step["token"][i]) for step in steps]
        new = new[:new.index(eos) + 1] if eos in new else new
        total += len(new)
        same_tokens += new == record["generated_token_ids"]
        entropy_gap = max(entropy_gap, abs(float(steps[0]["entropy"][i]) - record["entropy_1"]))
print(total, same_tokens, len(rows), entropy_gap)
'''


def script_inputs(run_dir: Path, out: Path) -> Path:
    """What the nnsight script reads, in `out`: our RSP vectors, and our trajectories with
    each one's step-1 entropy added (the script checks its own against it). Our run stays
    as written."""
    import json

    from rsp_probe.runs import open_run

    steps = open_run(run_dir).steps
    first = steps[(steps["step"] == 1) & (steps["probe"] == "entropy")]
    entropy = dict(zip(first["trajectory"], first["value"].astype(float)))
    out.mkdir()
    (out / "rsp.safetensors").write_bytes((run_dir / "rsp.safetensors").read_bytes())
    with open(run_dir / "trajectories.jsonl") as source, \
            open(out / "trajectories.jsonl", "w") as target:
        for line in source:
            record = json.loads(line)
            target.write(json.dumps({**record, "entropy_1": entropy[record["id"]]}) + "\n")
    return out


def main(argv=None) -> int:
    args = parse_args(__doc__, argv)
    rates = new_rates("nnsight")
    for repeat, root, model_dir, run_dir, (wall, cpu, ours) in our_rounds(args):
        inputs = script_inputs(run_dir, root / f"inputs{repeat}")
        n_wall, n_cpu, out = timed([sys.executable, "-c", NNSIGHT, str(model_dir),
                                    str(inputs)])
        tokens, same, rows, gap = out.split()[-4:]
        print(f"round {repeat}: ours {ours} tokens in {wall:.1f} s ({cpu:.1f} s CPU), "
              f"nnsight {tokens} tokens in {n_wall:.1f} s ({n_cpu:.1f} s CPU); "
              f"same greedy tokens in {same}/{rows} trajectories, step-1 entropy within "
              f"{float(gap):.1e}", flush=True)
        add_rates(rates["ours"], ours, wall, cpu)
        add_rates(rates["nnsight"], int(tokens), n_wall, n_cpu)
    print_ratios(rates, "nnsight", "ratio_vs_nnsight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
