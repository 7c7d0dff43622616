"""Claims of the train-rl plan (rsp_probe.rl.plan: both arms, two seeds each): the final
Pass@1 and Pass@8 difference between the arms, the rate of entropy collapse along training,
and whether the RSP's influence and attention mass shrink as the policy trains. Each is
stated whatever it shows; intervals are the hierarchical bootstrap of analysis/train_rl.py
(seeds, then problems), paired by seed and problem. Rendered into docs/train-rl.md. No torch."""

from __future__ import annotations

from collections.abc import Iterator

from rsp_probe.analysis.train_rl import (
    ARM_LABELS,
    CONDITION_LABELS,
    LOG_FILE,
    arm_difference,
    change_along_training,
    eval_frame,
    final_step,
)
from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.claims.measures import verdict
from rsp_probe.rl.plan import ARMS, SEEDS, run_name

SECTION = "DAPO training with an RSP per rollout"
RUNS = tuple(run_name(arm, seed) for arm in ARMS for seed in SEEDS)
STATISTIC = ("per problem at the final update, RSP arm minus no-RSP arm, paired by seed and "
             "problem; mean over seeds and problems, hierarchical bootstrap 95% CI")


@claim_family("train-rl", SECTION, runs=RUNS, document="train-rl")
def train_rl_claims(runs: dict[str, object]) -> Iterator[Claim]:
    frame = eval_frame([runs[name] for name in RUNS])
    last = final_step(frame)
    yield from _final_differences(frame, last)
    yield from _entropy_collapse(frame, last)
    yield from _rsp_influence(frame, last)
    yield from _bookkeeping([runs[name] for name in RUNS])


def _bookkeeping(runs) -> Iterator[Claim]:
    """The exactness of the first inner step's ratios and what the plan cost."""
    deviation = max(float(run.table(LOG_FILE)["ratio_dev_first"].max()) for run in runs)
    yield Claim(
        id="train-rl.ratio-first-step", section=SECTION, runs=RUNS,
        statistic="largest |log ratio| on the first inner step of any update of any run",
        value=deviation, n=sum(len(run.table(LOG_FILE)) for run in runs),
        template="Largest |log importance ratio| on the first inner step of any update, the "
                 "RSP in the training pass: {value:.1e} ({n} updates; 0 means exactly 1).")
    # the log's per-update seconds survive a resume (meta.json's wall time would count only
    # the last session)
    minutes = max(float(run.table(LOG_FILE)["seconds"].sum()) for run in runs) / 60
    yield Claim(
        id="train-rl.update-minutes", section=SECTION, runs=RUNS,
        statistic="largest sum over one run's updates of their wall time (sampling and "
                  "update; checkpoint probes excluded), minutes",
        value=minutes, n=len(runs),
        template="The longest of the {n} runs spent {value:.0f} minutes of wall time in its "
                 "updates (one CPU thread, on a machine shared with other jobs; probes "
                 "excluded).")


def _final_differences(frame, last: int) -> Iterator[Claim]:
    """Pass@1 and Pass@k at the largest k probed (8 in the plan)."""
    largest = max(int(m.split("@")[1]) for m in frame["metric"].unique() if m.startswith("pass@"))
    for metric in dict.fromkeys(("pass@1", f"pass@{largest}")):
        for condition in ("temp", "rsp+temp"):
            value, low, high, seeds, prompts = arm_difference(frame, condition, metric)
            yield Claim(
                id=f"train-rl.final.{metric}.{condition}", section=SECTION, runs=RUNS,
                statistic=STATISTIC, value=value, ci_low=low, ci_high=high, n=prompts,
                template="Final {metric} (update {last}, {condition}), RSP arm minus no-RSP "
                         "arm: {value:+.3f}, 95% CI [{ci_low:+.3f}, {ci_high:+.3f}] "
                         "({verdict}; {seeds} seeds x {n} held-out problems).",
                fields={"metric": metric.replace("pass", "Pass"), "last": last,
                        "condition": CONDITION_LABELS[condition], "seeds": seeds,
                        "verdict": verdict(low, high)})


def _entropy_collapse(frame, last: int) -> Iterator[Claim]:
    for arm in ARMS:
        value, low, high, seeds, prompts = change_along_training(
            frame, arm, "temp", "entropy_all", relative=True)
        yield Claim(
            id=f"train-rl.entropy-change.{arm}", section=SECTION, runs=RUNS,
            statistic="held-out next-token entropy (all steps, tested plainly), mean at the "
                      "final update over mean at update 0, minus 1; hierarchical bootstrap 95% "
                      "CI", value=value, ci_low=low, ci_high=high, n=prompts,
            template="{arm}: held-out next-token entropy changes by {value:+.1%} from update 0 "
                     "to update {last}, 95% CI [{ci_low:+.1%}, {ci_high:+.1%}] ({verdict}; "
                     "{seeds} seeds x {n} problems).",
            fields={"arm": ARM_LABELS[arm], "last": last, "seeds": seeds,
                    "verdict": verdict(low, high, "grows", "collapses")})
    value, low, high, seeds, prompts = arm_difference(frame, "temp", "entropy_all")
    yield Claim(
        id="train-rl.final.entropy.temp", section=SECTION, runs=RUNS, statistic=STATISTIC,
        value=value, ci_low=low, ci_high=high, n=prompts,
        template="Final held-out entropy (tested plainly), RSP arm minus no-RSP arm: "
                 "{value:+.4f} nats, 95% CI [{ci_low:+.4f}, {ci_high:+.4f}] ({verdict}).",
        fields={"verdict": verdict(low, high)})


def _rsp_influence(frame, last: int) -> Iterator[Claim]:
    measures = {"influence_kl": ("the RSP's influence (teacher-forced KL, nats)", "{:+.4f}"),
                "rsp_attention": ("attention mass on the RSP", "{:+.4f}")}
    for arm in ARMS:
        for metric, (what, _) in measures.items():
            value, low, high, seeds, prompts = change_along_training(frame, arm, "rsp+temp",
                                                                     metric)
            yield Claim(
                id=f"train-rl.{metric}-change.{arm}", section=SECTION, runs=RUNS,
                statistic=f"{metric} (tested with an RSP) at the final update minus at update "
                          "0, per problem, paired by seed; hierarchical bootstrap 95% CI",
                value=value, ci_low=low, ci_high=high, n=prompts,
                template="{arm}: {what} changes by {value:+.4f} from update 0 to update "
                         "{last}, 95% CI [{ci_low:+.4f}, {ci_high:+.4f}] ({verdict}).",
                fields={"arm": ARM_LABELS[arm], "what": what, "last": last,
                        "verdict": verdict(low, high, "grows", "shrinks")})
