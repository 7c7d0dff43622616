"""The claim that says what the other claims stand on: how many runs, on which model (its
weights' sha256), at which commit, and their wall time, read from config.json and meta.json.
No torch."""

from __future__ import annotations

from collections.abc import Iterator

from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.runs import Run


@claim_family("provenance", "The runs", runs=())
def provenance_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    if not runs:
        return
    models = sorted({(r.config["model_info"]["name"], r.config["model_info"]["weights_sha256"])
                     for r in runs.values()})
    commits = sorted({str(r.meta.get("git_commit"))[:7] for r in runs.values()})
    devices = sorted({f"{r.meta.get('cpu_count')} CPU cores" if r.meta.get("device") == "cpu"
                      else str(r.meta.get("device")) for r in runs.values()})
    minutes = sum(float(r.meta.get("wall_time_s") or 0.0) for r in runs.values()) / 60
    yield Claim(
        id="provenance.runs", section="The runs", runs=tuple(sorted(runs)), value=minutes,
        n=len(runs), statistic="sum of meta.json wall_time_s over the runs, in minutes",
        template="{n} runs on {models} at commit {commits}, on {devices}: {value:.1f} minutes "
                 "of wall time in all (runs reused by reproduce keep their first time).",
        fields={"models": ", ".join(f"{name} (weights sha256 {sha[:12]})" for name, sha in models),
                "commits": ", ".join(commits), "devices": ", ".join(devices)})
