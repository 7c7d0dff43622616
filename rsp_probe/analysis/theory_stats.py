"""Every comparison between a run and docs/theory.md as numbers with intervals: what the
theory report prints and what claims read. No torch.

- dilution_statistics(attention run): per-head weighted fits (analysis.head_fits), the
  step-1 delta from the identity, and the mixture of per-head laws per condition;
- scaling_statistics(influence run): within-cell log-log slopes per head (analysis.scaling);
- branching_statistics(branching run): observed against predicted first divergence per
  condition (analysis.divergence), with a simulated null for the TV distance.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.analysis.divergence import (
    divergence_counts,
    greedy_prediction,
    has_pair_overlaps,
    temperature_prediction,
)
from rsp_probe.analysis.head_fits import (
    FIT_N_BOOT,
    HeadFit,
    MixtureFit,
    head_cells,
    head_fits,
    mixture_fit,
)
from rsp_probe.analysis.scaling import THEORY_SLOPES, CellSlope, within_cell_slopes
from rsp_probe.analysis.stats import N_BOOT
from rsp_probe.analysis.windows import DELTA_AIC_DECISIVE
from rsp_probe.probes.names import COLLISION_PROBE
from rsp_probe.runs import BRANCHING_FILE, Run
from rsp_probe.theory import simulated_tv_null


@dataclass(frozen=True)
class DilutionStatistics:
    heads: list[HeadFit]
    mixtures: list[MixtureFit]

    def verdict_counts(self) -> dict[str, int]:
        """Heads (never layer or model averages) by verdict at DELTA_AIC_DECISIVE."""
        out = {"beaten": 0, "wins": 0, "undecided": 0}
        for fit in self.heads:
            if fit.delta_aic.value > DELTA_AIC_DECISIVE:
                out["beaten"] += 1
            elif fit.delta_aic.value < -DELTA_AIC_DECISIVE:
                out["wins"] += 1
            else:
                out["undecided"] += 1
        return out

    def to_dict(self) -> dict:
        return {"heads": [fit.to_dict() for fit in self.heads],
                "mixtures": [mix.to_dict() for mix in self.mixtures],
                "verdicts": self.verdict_counts(), "delta_aic_decisive": DELTA_AIC_DECISIVE}


def dilution_statistics(run: Run, n_boot: int = FIT_N_BOOT, seed: int = 0) -> DilutionStatistics:
    cells = head_cells(run)
    fits = head_fits(cells, n_boot=n_boot, seed=seed)
    mixtures = []
    for condition, mine in cells.groupby("condition", sort=True):
        own = [fit for fit in fits if fit.condition == condition]
        for layer in (-1, *sorted(mine["layer"].unique())):
            try:
                mixtures.append(mixture_fit(mine, own, layer=int(layer)))
            except ValueError:  # no head of this layer could be fitted
                continue
    return DilutionStatistics(fits, mixtures)


def scaling_statistics(run: Run, n_boot: int = N_BOOT, seed: int = 0) -> list[CellSlope]:
    """Within-cell slopes of every head for each quantity the theory predicts a slope for."""
    present = set(run.steps["probe"].unique())
    return [slope for quantity in THEORY_SLOPES if quantity in present
            for slope in within_cell_slopes(run, quantity, n_boot=n_boot, seed=seed)]


def branching_statistics(run: Run, seed: int = 0) -> dict[str, dict]:
    """Per condition: the hazard model, its free parameters, TV(observed, predicted) with the
    simulated null (p-value: a correct prediction shows a TV this large that often), and
    the never-diverged shares; conditions without a prediction are left out."""
    frame = run.table(BRANCHING_FILE)
    horizon = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    traj = run.trajectories
    temperature = traj.groupby("condition")["temperature"].first()
    k = traj.groupby("condition")["rsp_tokens"].first()
    can_sample = has_pair_overlaps(run) or COLLISION_PROBE in set(run.steps["probe"].unique())
    out = {}
    for condition in temperature.index:
        if temperature[condition] == 0 and k[condition] > 0:
            rows = frame[(frame["condition"] == condition)
                         & (frame["record"] == "first_divergence")]
            try:
                fit = greedy_prediction(run, condition, divergence_counts(rows, horizon))
            except ValueError as err:
                out[condition] = {"model": "greedy", "error": str(err)}
                continue
            result = {"model": "greedy", "c": fit.c, "observed": fit.observed,
                      "predicted": fit.predicted, "tv": fit.tv, "n_pairs": fit.n_trajectories}
        elif temperature[condition] > 0 and can_sample:
            result = {"model": "collision", **temperature_prediction(run, condition)}
        else:
            continue
        null = simulated_tv_null(result["predicted"], result["n_pairs"], result["tv"], seed=seed)
        out[condition] = {**result, "null": null,
                          "never_observed": float(result["observed"].never),
                          "never_predicted": float(result["predicted"].never)}
    return out
