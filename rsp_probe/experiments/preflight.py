"""An experiment's model-free checks, run before the slow load (rsp_probe.experiments.common):
the checkpoint's files (rsp_probe.preflight), every prompt with its RSP fits the context, and
the RSP law's inputs (a soft prompt) fit the model and the run. Only the tokenizer and
config.json are read here. These checks sit with the experiments because they need the RSP
placement and the soft prompts, which sit above the models in the layers."""

from __future__ import annotations

from pathlib import Path

from rsp_probe.errors import UsageError
from rsp_probe.preflight import check_checkpoint, context_length


def check_prompts_fit(problems, tokenizer, n_ctx: int | None, k: int, placement: str,
                      data) -> None:
    """The prompt options (`data`, a DataConfig) must fit the tokenizer, and the longest
    input of each prompt (its largest k) must leave room to generate."""
    from rsp_probe.rsp import place_rsp
    from rsp_probe.tasks.prompts import encode_problem, prompt_format

    fmt = prompt_format(tokenizer, data)  # a misused --chat-template is one line, here
    if n_ctx is None:
        return
    if k >= n_ctx:  # before building any input of k positions (k may be 10^9)
        raise UsageError(f"--rsp-tokens {k} does not fit the model's context of {n_ctx} "
                         "with room to generate")
    for problem in problems:
        ids, _ = place_rsp(encode_problem(tokenizer, problem, fmt), k, placement)
        if len(ids) >= n_ctx:
            raise UsageError(f"prompt {problem.id}: {len(ids)} input positions (RSP included) "
                             f"do not fit the model's context of {n_ctx} with room to generate")


def preflight(spec, problems, model=None) -> None:
    """Every model-free check of an experiment, before its model is loaded."""
    if model is not None:
        tokenizer, n_ctx = model.tokenizer, model.info.n_ctx
        d_model, identity = model.info.d_model, _identity(model.info.name,
                                                          model.info.weights_sha256,
                                                          model.info.revision)
    else:
        from rsp_probe.models import load_tokenizer, resolve_model_path

        path, name, revision = resolve_model_path(spec.model.model, spec.model.revision)
        config = check_checkpoint(path)
        n_ctx = context_length(config)
        tokenizer = load_tokenizer(path, spec.model.trust_remote_code)
        d_model, identity = config.get("hidden_size"), lambda: _identity_of(path, name, revision)
    check_prompts_fit(problems, tokenizer, n_ctx, max(spec.rsp.rsp_tokens), spec.rsp.placement,
                      spec.data)
    check_law_inputs(spec.rsp, d_model, identity)


def check_law_inputs(rsp, d_model: int | None, identity) -> None:
    """A law that needs a soft prompt (--law trained) needs --soft-prompt; a soft prompt must
    fit the model and the run (rsp_probe.soft_prompts.io.check_soft_prompt). `identity` is
    called only when needed (hashing the weights takes a moment)."""
    from rsp_probe.registry import LAWS

    if LAWS.get(rsp.law).needs_soft_prompt and not rsp.soft_prompt:
        raise UsageError(f"--law {rsp.law} needs --soft-prompt FILE (from `rsp-probe "
                         "tune-prompt`)")
    if rsp.soft_prompt:
        from rsp_probe.soft_prompts.io import check_soft_prompt

        check_soft_prompt(rsp.soft_prompt, d_model, identity(), rsp.placement, rsp.rsp_tokens)


def _identity(name, sha256, revision):
    from rsp_probe.soft_prompts.io import model_identity

    return lambda: model_identity(name, sha256, revision)


def _identity_of(path: Path, name: str, revision: str | None) -> dict:
    from rsp_probe.models import weights_sha256
    from rsp_probe.soft_prompts.io import model_identity

    return model_identity(name, weights_sha256(path), revision)
