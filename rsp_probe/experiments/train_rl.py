"""`rsp-probe train-rl`: DAPO on the task's own grader, one arm per run (--arm rsp: a fresh
RSP in every rollout and in the training forward pass; --arm none), with checkpoints probed
on held-out problems (rsp_probe.rl; docs/train-rl.md).

The run holds train_rl_log.parquet (one row per update), train_rl_eval.parquet (step,
condition, prompt_id, metric, value for every probed checkpoint) and trajectories.jsonl (the
held-out trajectories of every probed checkpoint); the trained policy is written beside the
run as <out>-policy, a Hugging Face checkpoint directory any command takes as --model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rsp_probe.config import single_dose
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.rl.options import TrainRLOptions
from rsp_probe.rl.plan import TRAIN_RL_PLAN

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run

LOG_FILE = "train_rl_log.parquet"
EVAL_FILE = "train_rl_eval.parquet"
POLICY_SUFFIX = "-policy"


def options_of(spec: Spec) -> TrainRLOptions:
    import dataclasses

    names = [f.name for f in dataclasses.fields(TrainRLOptions)]
    return TrainRLOptions(**{name: spec.option(name) for name in names})


def check_options(spec: Spec, options: TrainRLOptions) -> None:
    """Every refusal before a model is loaded or a file written."""
    if single_dose(spec.command, spec.rsp.rsp_tokens) < 1:
        raise UsageError(f"train-rl needs --rsp-tokens k >= 1 (the RSP arm's k, and the "
                         f"probes' for both arms), got {spec.rsp.rsp_tokens[0]}")
    if spec.model.backend == "transformer-lens":
        raise UsageError("train-rl trains through the Hugging Face model: use --backend hf")
    for flag, value in (("--steps", options.steps), ("--prompts-per-step",
                        options.prompts_per_step), ("--max-rounds", options.max_rounds),
                        ("--inner-steps", options.inner_steps), ("--checkpoint-every",
                        options.checkpoint_every), ("--chunk-rows", options.chunk_rows)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if options.group_size < 2:
        raise UsageError(f"--group-size must be >= 2 (advantages compare a group's rollouts), "
                         f"got {options.group_size}")
    if not (options.lr > 0 and 0 <= options.eps_low < 1 and options.eps_high >= 0
            and options.max_grad_norm > 0):
        raise UsageError("--lr and --max-grad-norm must be > 0, --eps-low in [0, 1), "
                         "--eps-high >= 0")
    if not 0 < options.overlong_cache <= spec.sampling.max_new_tokens:
        raise UsageError(f"--overlong-cache must be in 1..--max-new-tokens "
                         f"({spec.sampling.max_new_tokens}), got {options.overlong_cache}")
    if not options.pass_k or min(options.pass_k) < 1 or max(options.pass_k) > spec.sampling.samples:
        raise UsageError(f"--pass-k values must be between 1 and --samples "
                         f"({spec.sampling.samples}), got {list(options.pass_k)}")
    if spec.sampling.temperature <= 0:
        raise UsageError("train-rl samples its rollouts: --temperature must be > 0")


def training_pool(spec: Spec, options: TrainRLOptions, held_out: list) -> list:
    """Training problems: the built-in task's train split, or the dataset's problems that are
    not held out for the probes."""
    if spec.data.dataset is None:
        from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate

        return generate(DEFAULT_TASK, "train", options.train_pool, seed=0)
    from rsp_probe.tasks.datasets import load_dataset_file

    held = {p.id for p in held_out}
    pool = [p for p in load_dataset_file(spec.data.dataset, question_field=spec.data.question_field,
                                         answer_field=spec.data.answer_field)
            if p.id not in held][:options.train_pool]
    if len(pool) < options.prompts_per_step:
        raise UsageError(f"--dataset {spec.data.dataset}: {len(pool)} problems left for "
                         f"training after the {len(held)} held out (--n-prompts); need at least "
                         f"--prompts-per-step {options.prompts_per_step}")
    return pool


def run_train_rl(spec: Spec, model=None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.experiments.common import Session
    from rsp_probe.models import one_thread_on_cpu
    from rsp_probe.rl.loop import train
    from rsp_probe.tasks.prompts import use_chat_template

    options = options_of(spec)
    check_options(spec, options)
    session = Session(spec, model)
    if session.model.name != "hf":
        session.lock.release()
        raise UsageError("train-rl trains through the Hugging Face model: use --backend hf")
    with session:
        pool = training_pool(spec, options, session.problems)
        chat = use_chat_template(session.model.tokenizer, spec.data.chat_template)
        staging = session.writer.staging
        with one_thread_on_cpu(session.model.device):
            log = train(session.model, staging, spec, options, pool, session.problems, chat,
                        spec.output.quiet)
        write_results(session, staging, log)
        run = session.finish({"updates": len(log)})
    return run, train_rl_summary(run)


def write_results(session, staging: Path, log: list[dict]) -> None:
    """The run's tables from the evaluations and the log; the policy beside the run; the
    checkpoints and per-step files (now in the tables) leave the staging folder."""
    import shutil

    import pandas as pd

    from rsp_probe.backends.checkpoint import no_hf_progress_bars
    from rsp_probe.rl.checkpoint import CHECKPOINTS_DIR, EVALS_DIR
    from rsp_probe.runs import TRAJECTORIES_FILE

    evals = sorted((staging / EVALS_DIR).glob("step-*.parquet"))
    session.writer.write_table(EVAL_FILE, pd.concat([pd.read_parquet(p) for p in evals],
                                                    ignore_index=True))
    session.writer.write_table(LOG_FILE, pd.DataFrame(log))
    with open(staging / TRAJECTORIES_FILE, "w") as out:
        for path in sorted((staging / EVALS_DIR).glob("step-*.jsonl")):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                out.write(json.dumps({"id": trajectory_id(record), **record}) + "\n")
    policy = session.out.with_name(session.out.name + POLICY_SUFFIX)
    with no_hf_progress_bars():
        session.model.model.save_pretrained(policy)
    session.model.tokenizer.save_pretrained(policy)
    shutil.rmtree(staging / CHECKPOINTS_DIR)
    shutil.rmtree(staging / EVALS_DIR)


def trajectory_id(record: dict) -> str:
    """A held-out trajectory is named by its checkpoint, condition, problem and sample: unique
    in the run, and the same on a resumed run."""
    return f"step{record['step']}-{record['condition']}-{record['prompt_id']}-{record['sample']}"


def train_rl_summary(run: Run) -> pd.DataFrame:
    """Mean over held-out prompts of every metric, per probed step and condition."""
    frame = run.table(EVAL_FILE)
    return frame.groupby(["step", "condition", "metric"], as_index=False)["value"].mean()


def describe_train_rl(run: Run, full: bool = False) -> str:
    summary = train_rl_summary(run)
    config = run.config
    wide = summary.pivot_table(index=["condition", "metric"], columns="step", values="value")
    shown = wide if full else wide.loc[wide.index.get_level_values("metric").isin(
        ["pass@1", "pass@8", "accuracy", "entropy_all", "rsp_attention", "influence_kl",
         "distinct_strategies"])]
    head = (f"# train-rl, arm {config['arm']}: {config['steps']} DAPO updates of "
            f"{config['prompts_per_step']} groups x G={config['group_size']}, seed "
            f"{config['seed']}; held-out probes on {config['n_prompts']} problems x "
            f"{config['samples']} samples (mean over problems), by update")
    return head + "\n" + shown.round(4).to_string()


EXPERIMENT = register_experiment(Experiment(
    name="train-rl", help="DAPO training with or without a fresh RSP per rollout, probed at "
    "each checkpoint", run=run_train_rl, options=TrainRLOptions,
    describe=describe_train_rl,
    defaults={"temperature": 1.0, "samples": 8, "n_prompts": 32, "max_new_tokens": 96,
              "backend": "hf"},
    figures=("train_rl",), claims=("rsp_probe.claims.train_rl",),
    # DAPO with and without an RSP per rollout, two seeds per arm (rsp_probe/rl/plan.py)
    reproduce=tuple((name, options) for name, _, options in TRAIN_RL_PLAN),
    summarize=train_rl_summary, single_dose=True))
