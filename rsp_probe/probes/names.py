"""Probe names as they appear in steps.parquet; importable without torch."""

LOGIT_PROBES = ("entropy", "top1_prob", "margin")
ATTENTION_PROBE = "rsp_attention"
INFLUENCE_PROBES = ("kl", "tv", "entropy_delta", "top1_agree")
