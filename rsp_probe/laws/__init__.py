"""The RSP laws, one class per `--law` value (the Law protocol: rsp_probe.laws.base), found
through the registry rsp_probe.registry.LAWS: the built-ins below, then the plugins'.

    from rsp_probe.registry import LAWS
    law = LAWS.get("gaussian").fit(model.embedding_table)   # rsp_probe.fit_law does this
    law.draw(4, seed)                                        # [4, d_model] float32
    law.describe()                                           # {"law": "gaussian", ...}

Importing this package imports no torch: `--help` lists the laws from their declarations.
"""

from rsp_probe.laws import controls, gaussian, trained  # noqa: F401  (they register)
from rsp_probe.laws.base import Law, register_law
from rsp_probe.laws.gaussian import GaussianLaw, MomentLaw

__all__ = ["GaussianLaw", "Law", "MomentLaw", "register_law"]
