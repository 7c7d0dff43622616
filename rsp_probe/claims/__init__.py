"""Claims are code: every number the README and docs/theory.md state is a Claim computed from
saved runs (rsp_probe.claims.core; the families the experiments declare:
rsp_probe.claims.catalog), written to figures/claims.json and rendered into the documents
(rsp_probe.claims.documents). No torch."""

from rsp_probe.claims.catalog import compute_claims, families
from rsp_probe.claims.core import Claim, ClaimsTable, claim_family

__all__ = ["Claim", "ClaimsTable", "claim_family", "compute_claims", "families"]
