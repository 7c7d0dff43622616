"""The paper's qualitative claims against this model: one row per claim, the claims-table
entries (by id) that measure it, and the rule that turns their 95% CIs into a verdict.

Everything here is data declared before any run is read: the paper's statements (our
paraphrase, quoted in the README as the paper's claim, not as a finding), the evidence ids,
and the rules with their thresholds. `verdicts(table)` only applies them to the computed
claims; a row whose evidence is missing from the table is "inconclusive (not measured)".

Rules (each CI is the claim's prompt-bootstrap 95% interval):

- Above(t): supported when every CI lies above t; contradicted when any lies below t.
- AtMost(margin): "no better than": contradicted when any CI lies above 0; supported when
  every CI's upper end is below `margin`.
- Within(margin): "no change": supported when every CI lies inside [-margin, margin];
  contradicted when any lies wholly outside it.
- Decreases(pairs): supported when, for every (earlier, later) pair, the later CI lies wholly
  below the earlier one; contradicted when any later CI lies wholly above its earlier one.
- LostWithout(control, reference, zero, zero_max): the effect needs the attention: supported
  when the control (whose slots get no attention: `zero` below zero_max) has its CI wholly
  below the reference's; contradicted when each CI holds the other's estimate (the control
  matches the reference) while the control's attention is below zero_max.

Otherwise a row is inconclusive. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.analysis.windows import EARLY, LATE_LAST
from rsp_probe.claims.core import Claim, ClaimsTable

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


class OnEvidence:
    """A rule that reads the row's own evidence claims."""

    def ids(self, row) -> tuple[str, ...]:
        return row.evidence


@dataclass(frozen=True)
class Above(OnEvidence):
    threshold: float = 0.0

    def decide(self, claims: list[Claim]) -> str:
        if any(c.ci_high < self.threshold for c in claims):
            return CONTRADICTED
        if all(c.ci_low > self.threshold for c in claims):
            return SUPPORTED
        return INCONCLUSIVE

    def text(self) -> str:
        return (f"supported if every CI lies above {self.threshold:g}, contradicted if any "
                f"lies below")


@dataclass(frozen=True)
class AtMost(OnEvidence):
    margin: float

    def decide(self, claims: list[Claim]) -> str:
        if any(c.ci_low > 0 for c in claims):
            return CONTRADICTED
        if all(c.ci_high < self.margin for c in claims):
            return SUPPORTED
        return INCONCLUSIVE

    def text(self) -> str:
        return (f"contradicted if any CI lies above 0, supported if every CI ends below "
                f"{self.margin:g}")


@dataclass(frozen=True)
class Within(OnEvidence):
    margin: float

    def decide(self, claims: list[Claim]) -> str:
        if any(c.ci_low > self.margin or c.ci_high < -self.margin for c in claims):
            return CONTRADICTED
        if all(-self.margin <= c.ci_low and c.ci_high <= self.margin for c in claims):
            return SUPPORTED
        return INCONCLUSIVE

    def text(self) -> str:
        return (f"supported if every CI lies inside ±{self.margin:g}, contradicted if any "
                f"lies wholly outside")


@dataclass(frozen=True)
class Decreases:
    pairs: tuple[tuple[str, str], ...]  # (earlier, later) claim ids

    def ids(self, row) -> tuple[str, ...]:
        return tuple(i for pair in self.pairs for i in pair)

    def decide(self, claims: list[Claim]) -> str:
        pairs = list(zip(claims[::2], claims[1::2]))
        if any(later.ci_low > earlier.ci_high for earlier, later in pairs):
            return CONTRADICTED
        if all(later.ci_high < earlier.ci_low for earlier, later in pairs):
            return SUPPORTED
        return INCONCLUSIVE

    def text(self) -> str:
        return ("supported if each later CI lies wholly below the earlier one, contradicted "
                "if any lies wholly above")


@dataclass(frozen=True)
class LostWithout:
    control: str
    reference: str
    zero: str  # the control's attention on its slots
    zero_max: float

    def ids(self, row) -> tuple[str, ...]:
        return (self.control, self.reference, self.zero)

    def decide(self, claims: list[Claim]) -> str:
        control, reference, zero = claims
        if control.ci_high < reference.ci_low:
            return SUPPORTED
        matches = (control.ci_low <= reference.value <= control.ci_high
                   and reference.ci_low <= control.value <= reference.ci_high)
        if matches and zero.ci_high < self.zero_max:
            return CONTRADICTED
        return INCONCLUSIVE

    def text(self) -> str:
        return (f"supported if the control's CI lies below the RSP's, contradicted if each "
                f"CI holds the other's estimate while the control's attention stays below "
                f"{self.zero_max:g}")


@dataclass(frozen=True)
class PaperClaim:
    name: str
    statement: str  # the paper's claim, in our words
    evidence: tuple[str, ...]
    rule: object


EARLY_TEXT = f"steps {EARLY[0]}-{EARLY[1]}"
PAPER_CLAIMS = (
    PaperClaim(
        "early entropy lift",
        f"An RSP raises the next-token entropy of the first generated tokens ({EARLY_TEXT}).",
        ("entropy.lift.early.k4", "entropy.lift.early.k16"), Above(0.0)),
    PaperClaim(
        "early branching",
        "With an RSP, sampled trajectories of one prompt branch earlier than with "
        f"temperature alone (more distinct prefixes by step {EARLY[1]}).",
        ("branching-k4.prefixes.early.temp+rsp.vs.temp",
         "branching.prefixes.early.temp+rsp.vs.temp"), Above(0.0)),
    PaperClaim(
        "dilution of the influence",
        "The RSP's influence on the next-token distribution dilutes as the response grows "
        f"(KL from the baseline: early {EARLY_TEXT} against the last {LATE_LAST} steps).",
        ("influence.kl.early.k4", "influence.kl.late.k4",
         "influence.kl.early.k16", "influence.kl.late.k16"),
        Decreases((("influence.kl.early.k4", "influence.kl.late.k4"),
                   ("influence.kl.early.k16", "influence.kl.late.k16")))),
    PaperClaim(
        "late commitment",
        f"Late in the response (last {LATE_LAST} steps) the trajectory has committed: its "
        "next-token entropy is the baseline's (within 0.1 nats).",
        ("entropy.lift.late.k4", "entropy.lift.late.k16"), Within(0.1)),
    PaperClaim(
        "Pass@N widened with temperature",
        "An RSP together with temperature sampling raises Pass@N at large N over "
        "temperature alone.",
        ("passk-k4.gain.rsp+temp.vs.temp.n16", "passk.gain.rsp+temp.vs.temp.n16"),
        Above(0.0)),
    PaperClaim(
        "trained soft prompts no better",
        "A trained soft prompt in the RSP's place does no better than random vectors "
        "(within 0.05 in accuracy).",
        ("soft-prompts.paired.pass@1.trained.vs.rsp",
         "soft-prompts.paired.greedy_accuracy.trained.vs.rsp"), AtMost(0.05)),
    PaperClaim(
        "attention absorbs the random positions",
        "The first tokens flatten because attention must absorb the never-seen random "
        "positions; so a control whose slots get no attention (positions-only) should lose "
        f"the RSP's early entropy ({EARLY_TEXT}).",
        ("soft-prompts.early_entropy.positions-only", "soft-prompts.early_entropy.rsp",
         "soft-prompts.early_attention.positions-only"),
        LostWithout("soft-prompts.early_entropy.positions-only",
                     "soft-prompts.early_entropy.rsp",
                     "soft-prompts.early_attention.positions-only", 0.01)),
)


@dataclass(frozen=True)
class Verdict:
    claim: PaperClaim
    verdict: str
    measured: tuple[Claim, ...]
    missing: tuple[str, ...]


def verdicts(table: ClaimsTable) -> list[Verdict]:
    """Each paper claim's verdict by its rule over the computed claims."""
    found = table.by_id()
    out = []
    for claim in PAPER_CLAIMS:
        ids = claim.rule.ids(claim)
        missing = tuple(i for i in dict.fromkeys(ids) if i not in found)
        if missing:
            out.append(Verdict(claim, INCONCLUSIVE, (), missing))
            continue
        measured = tuple(found[i] for i in ids)
        out.append(Verdict(claim, claim.rule.decide(list(measured)),
                           tuple(found[i] for i in dict.fromkeys(ids)), ()))
    return out


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"


def _measured(verdict: Verdict) -> str:
    if verdict.missing:
        return "not measured: " + ", ".join(f"`{i}`" for i in verdict.missing)
    return "<br>".join(f"`{c.id}` {_number(c.value)} [{_number(c.ci_low)}, "
                       f"{_number(c.ci_high)}]" for c in verdict.measured)


def render_table(table: ClaimsTable) -> str:
    """The README's verdict table (Markdown), from the claims alone."""
    lines = ["| claim | the paper's claim (paraphrased) | measured here: claim id, value "
             "[95% CI] | verdict |", "|---|---|---|---|"]
    for verdict in verdicts(table):
        lines.append(f"| {verdict.claim.name} | The paper: \"{verdict.claim.statement}\" | "
                     f"{_measured(verdict)} | **{verdict.verdict}** |")
    lines += ["", "Verdict rules, fixed in rsp_probe/claims/verdicts.py before any run is "
              "read (each CI a prompt-bootstrap 95% interval; otherwise inconclusive):", ""]
    lines += [f"- {v.claim.name}: {v.claim.rule.text()}." for v in verdicts(table)]
    return "\n".join(lines) + "\n"
