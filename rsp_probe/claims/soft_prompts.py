"""Claims of the `compare-prompts` run: a trained soft prompt against no prompt, RSPs, its
per-sample Gaussian refit and the controls (#16). Every arm and every paired difference the
run holds is stated, whatever its sign. No torch."""

from __future__ import annotations

from collections.abc import Iterator

from rsp_probe.analysis.compare_prompts import COMPARE_FILE, PAIRED_FILE
from rsp_probe.analysis.windows import EARLY
from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.claims.measures import verdict
from rsp_probe.runs import Run

SECTION = "Trained soft prompts"
RUN = "compare-prompts"
MEASURES = {"accuracy": "sampled accuracy", "greedy_accuracy": "greedy accuracy",
            "early_entropy": f"entropy at steps {EARLY[0]}-{EARLY[1]} (nats)",
            "early_attention": f"attention mass on the slots at steps {EARLY[0]}-{EARLY[1]}"}


@claim_family("soft-prompts", SECTION, runs=(RUN,))
def soft_prompt_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs[RUN]
    n = int(run.trajectories["prompt_id"].nunique())
    k = int(run.config["rsp_tokens"][0])
    for row in run.table(COMPARE_FILE).to_dict("records"):
        for measure, what in MEASURES.items():
            if row[measure] != row[measure]:  # nan: no slots to attend to (none, neftune)
                continue
            yield Claim(
                id=f"soft-prompts.{measure}.{row['arm']}", section=SECTION, runs=(RUN,),
                statistic=f"{what} per prompt, mean over prompts, prompt-bootstrap 95% CI",
                value=row[measure], ci_low=row[f"{measure}_lo"], ci_high=row[f"{measure}_hi"],
                n=n, template="{arm} (k={k}): {what} {value:.3f}, 95% CI [{ci_low:.3f}, "
                              "{ci_high:.3f}] ({n} prompts).",
                fields={"arm": row["arm"], "k": 0 if row["arm"] == "none" else k,
                        "what": what})
    for row in run.table(PAIRED_FILE).itertuples():
        yield Claim(
            id=f"soft-prompts.paired.{row.measure}.{row.a}.vs.{row.b}", section=SECTION,
            runs=(RUN,), statistic=f"per prompt, {row.measure} of a minus b on the same "
                                   "prompts and seeds; mean over prompts, paired 95% CI",
            value=row.diff, ci_low=row.lo, ci_high=row.hi, n=int(row.n_prompts),
            template="{a} minus {b}, {measure}: {value:+.3f}, paired 95% CI [{ci_low:+.3f}, "
                     "{ci_high:+.3f}] ({verdict}).",
            fields={"a": row.a, "b": row.b, "measure": row.measure,
                    "verdict": verdict(row.lo, row.hi)})
