"""The claims table: every result the README and docs/theory.md state, as code.

A claim family is a function of the saved runs (by run name) that yields Claims; each Claim
carries its id, the runs it read, the statistic, the value with its 95% CI (the one prompt
bootstrap of analysis/stats.py), and the template whose formatting is the sentence the
documents print. Families report whatever the runs show: a null or a contradiction of the
paper is a claim like any other. Windows and doses are the fixed ones of analysis/windows.py
and the reproduce plan; nothing here is chosen after looking at a result. No torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from rsp_probe.runs import Run


@dataclass(frozen=True)
class Claim:
    """One stated number. `fields` fills the template besides value/ci_low/ci_high/n;
    ci_low/ci_high are None where the statistic has no interval (then the template must not
    quote one)."""

    id: str
    section: str
    runs: tuple[str, ...]
    statistic: str
    value: float
    template: str
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    fields: dict = field(default_factory=dict)
    family: str = ""  # set by compute_claims

    @property
    def sentence(self) -> str:
        return self.template.format(value=self.value, ci_low=self.ci_low, ci_high=self.ci_high,
                                    n=self.n, **self.fields)

    def to_dict(self) -> dict:
        record = asdict(self)
        record["runs"] = list(self.runs)
        for key in ("value", "ci_low", "ci_high"):
            record[key] = _finite_or_none(record[key])
        record["sentence"] = self.sentence
        return record


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class NotMeasured:
    """Yielded by a family instead of a claim when its run lacks what the claim needs (an
    older run without a probe, a table the experiment did not write): said in the documents,
    never turned into a number."""

    what: str


@dataclass(frozen=True)
class Family:
    """A registered claim family: the runs it needs, the document it belongs to
    ("results": docs/results.md, or "theory": docs/theory.md), and
    compute(runs by name) -> Claims."""

    name: str
    section: str
    runs: tuple[str, ...]
    document: str
    compute: Callable[[dict[str, Run]], Iterable[Claim]]


_FAMILIES: dict[str, Family] = {}


def registered_families() -> list[Family]:
    """The families registered so far, in registration order (rsp_probe.claims.catalog
    imports the declared claim modules and orders them)."""
    return list(_FAMILIES.values())


def claim_family(name: str, section: str, runs: tuple[str, ...], document: str = "results"):
    """Register `compute` under `name`; a second family with the same name is an error."""
    def register(compute):
        if name in _FAMILIES:
            raise ValueError(f"claim family {name!r} is already registered")
        _FAMILIES[name] = Family(name, section, tuple(runs), document, compute)
        return compute
    return register


@dataclass
class ClaimsTable:
    """The computed claims, and the families that could not be computed (missing runs)."""

    claims: list[Claim]
    missing: dict[str, list[str]]  # family name -> the runs it lacked
    # family name -> what its runs could not measure
    unmeasured: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"claims": [c.to_dict() for c in self.claims],
                "missing": {k: list(v) for k, v in self.missing.items()},
                "unmeasured": {k: list(v) for k, v in self.unmeasured.items()}}

    def by_id(self) -> dict[str, Claim]:
        return {c.id: c for c in self.claims}
