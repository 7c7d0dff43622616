"""Probe names as they appear in steps.parquet; importable without torch."""

LOGIT_PROBES = ("entropy", "top1_prob", "margin")
# sum_v p_tau(v)^2 of the tempered sampling distribution (1 for greedy): the probability that
# two trajectories sharing this prefix sample the same next token (docs/theory.md, branching).
COLLISION_PROBE = "collision"
ATTENTION_PROBE = "rsp_attention"
INFLUENCE_PROBES = ("kl", "tv", "entropy_delta", "top1_agree")
# the attention budget: the newest query's mass on each key group (rsp_probe.key_groups)
BUDGET_PROBE = "attention_budget"
BUDGET_PROBES = tuple(f"budget_{group}" for group in ("rsp", "bos", "prompt", "cue", "generated"))
