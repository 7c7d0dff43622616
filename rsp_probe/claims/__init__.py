"""Claims are code: every number the README and docs/theory.md state is a Claim computed from
saved runs (rsp_probe.claims.core), written to figures/claims.json and rendered into the
documents (rsp_probe.claims.documents). No torch."""

from rsp_probe.claims.core import Claim, ClaimsTable, claim_family, compute_claims, families

__all__ = ["Claim", "ClaimsTable", "claim_family", "compute_claims", "families"]
