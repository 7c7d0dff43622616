"""The Law protocol: one class per `--law` value, registered by name in rsp_probe.registry.LAWS.

A law class declares, without being fitted (so `--help` and the model-free checks read it
without torch):

    name               its --law value
    help               one line for --help
    slots              True: draw(k) gives the k vectors written into the k RSP slots;
                       False: there are no slots, draw(L) gives one vector per input position,
                       added to the L input embeddings (k > 0 only switches it on)
    blocks_rsp_keys    no query may attend to the RSP keys, from step 1 on (a knockout)
    needs_soft_prompt  fit() needs a trained soft prompt (--soft-prompt FILE)

`Law.fit(table, sigma_scale, ...)` returns the fitted law, an instance of the class, which
draws its vectors (`draw(n, seed)`: [n, d_model] float32 on the CPU, determined by the seed
alone) and describes itself (`describe()`: a JSON-ready summary). A new law subclasses Law (or
a built-in one) and registers it:

    @register_law
    class ScaledUniform(GaussianLaw):
        name, help = "scaled-uniform", "uniform with the Gaussian law's mean and variance"
        def vectors(self, n, generator): ...

Torch is imported inside the methods: the declarations above are read by `--help`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rsp_probe.registry import LAWS

if TYPE_CHECKING:
    import torch


class Law:
    """Where RSP vectors come from: fitted to an embedding table, then drawn from by seed."""

    name: ClassVar[str]
    help: ClassVar[str] = ""
    slots: ClassVar[bool] = True
    blocks_rsp_keys: ClassVar[bool] = False
    needs_soft_prompt: ClassVar[bool] = False

    d_model: int  # every fitted law knows the width of its vectors

    @classmethod
    def fit(cls, table: torch.Tensor, sigma_scale: float = 1.0, *,
            special_ids: set[int] | None = None, n_real_tokens: int | None = None,
            prompt: torch.Tensor | None = None) -> Law:
        """The law fitted to an input-embedding table [d_vocab, d_model]. `special_ids` and
        `n_real_tokens` say which rows are real tokens; `prompt` [k, d_model] is the trained
        soft prompt (needs_soft_prompt)."""
        raise NotImplementedError

    def draw(self, n: int, seed: int) -> torch.Tensor:
        """n vectors [n, d_model] (float32), determined by `seed` alone: from `vectors`, with
        a generator seeded by `seed` (an empty draw for n = 0)."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        if n == 0:
            return torch.zeros(0, self.d_model)
        return self.vectors(n, generator)

    def vectors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n > 0 vectors [n, d_model] (float32) drawn with `generator`."""
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-ready summary for notebooks and reports: {"law": name, "d_model": d, ...}."""
        return {"law": self.name, "d_model": self.d_model}

    @property
    def kind(self) -> str:
        """The --law value of a fitted law (its class's name)."""
        return self.name

    @classmethod
    def attends_to_slots(cls) -> bool:
        """The draw sits in k slots that every query may attend to: what a teacher-forced
        pass through the slots measures (not a slotless or a blocked law)."""
        return cls.slots and not cls.blocks_rsp_keys


def register_law(cls: type[Law], overwrite: bool = False) -> type[Law]:
    """Register a Law class under its `name` (a class decorator)."""
    LAWS.register(cls.name, cls, overwrite=overwrite)
    return cls
