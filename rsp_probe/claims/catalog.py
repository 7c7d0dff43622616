"""Which claim families there are, and the claims table they compute.

The families are those of the claim modules the registered experiments declare
(`Experiment.claims`; a plugin's module too), plus the provenance of the runs, which every
table carries. Their order is fixed by declaration, never by which module a caller happened
to import first: the families that read every run, then by module in the order the registry
first declares them, then by registration within a module. No torch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from importlib import import_module

from rsp_probe.claims.core import ClaimsTable, Family, NotMeasured, registered_families
from rsp_probe.registry import EXPERIMENTS
from rsp_probe.runs import Run

PROVENANCE = "rsp_probe.claims.provenance"  # what every table carries: the runs it stands on


def claim_modules() -> list[str]:
    """The claim modules, provenance first, then as the registered experiments declare them."""
    declared = [module for e in EXPERIMENTS.entries().values() for module in e.claims]
    return list(dict.fromkeys([PROVENANCE, *declared]))


def families() -> list[Family]:
    modules = claim_modules()
    for module in modules:
        import_module(module)  # a module registers its families when imported
    registered = [f for f in registered_families() if f.compute.__module__ in modules]
    return sorted(registered, key=lambda family: (
        family.runs != (), modules.index(family.compute.__module__),
        registered.index(family)))


def compute_claims(runs: dict[str, Run], only: Iterable[str] | None = None) -> ClaimsTable:
    """Every registered family (or those named in `only`) over `runs` (run name -> Run)."""
    claims, missing, unmeasured = [], {}, {}
    wanted = set(only) if only is not None else None
    for family in families():
        if wanted is not None and family.name not in wanted:
            continue
        absent = [name for name in family.runs if name not in runs]
        if absent:
            missing[family.name] = absent
            continue
        for item in family.compute(runs):
            if isinstance(item, NotMeasured):
                unmeasured.setdefault(family.name, []).append(item.what)
            else:
                claims.append(replace(item, family=family.name))
    ids = [c.id for c in claims]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicate claim ids: {', '.join(duplicated)}")
    return ClaimsTable(claims, missing, unmeasured)
