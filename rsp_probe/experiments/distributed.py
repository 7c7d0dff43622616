"""`--workers N` / `--ray-address ADDR`: an experiment run as N shards on Ray, then merged.

Shard I of N (`--shard I/N`, by prompt) is one Ray task that loads its own model and writes
its own run in `.OUT.shards/` next to `--out`, always with --resume: when a worker dies, Ray
runs the task again and it continues from the shard's last complete batch. The shards are
then joined by `rsp-probe merge`'s code into `--out` (the run one process would have written)
and their folder is removed. `--out` stays locked by this process from start to publish.
Ray is an optional dependency: `pip install 'rsp-probe[ray]'`.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from rsp_probe.errors import UsageError

SHARD_RETRIES = 3  # a shard's task is run again this often after its worker dies
LOCAL_OBJECT_STORE_BYTES = 80 * 1024**2  # shards return paths, never data
LOG = logging.getLogger("rsp_probe")


def shards_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.shards"


def run_shard(experiment_name: str, spec) -> str:
    """One shard, inside a Ray worker: the experiment with a model of its own. A shard that
    an earlier try of the same command completed is kept, not recomputed (--resume)."""
    from rsp_probe.registry import EXPERIMENTS

    if completed_shard(spec):
        return spec.output.out
    run, _ = EXPERIMENTS.get(experiment_name).run(spec, None)
    return str(run.path)


def completed_shard(spec) -> bool:
    """Whether spec.output.out holds an intact completed run of this very spec."""
    from rsp_probe.runs import EXECUTION_KEYS, open_run

    try:
        run = open_run(spec.output.out)
    except UsageError:  # missing, interrupted or damaged: (re)compute it
        return False
    wanted = {key: value for key, value in spec.to_dict().items() if key not in EXECUTION_KEYS}
    wanted = json.loads(json.dumps(wanted))  # as config.json holds it (lists, not tuples)
    return all(run.config.get(key) == value for key, value in wanted.items())


def shard_specs(spec, out: Path, count: int) -> list:
    """The N shards' specs: their own folder, --resume (a retried task continues), quiet."""
    folder = shards_folder(out)
    return [replace(spec, data=replace(spec.data, shard=f"{index}/{count}"),
                    output=replace(spec.output, out=str(folder / f"shard-{index}-of-{count}"),
                                   overwrite=True, resume=True, quiet=True, workers=0,
                                   ray_address=None))
            for index in range(count)]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--workers and --ray-address need Ray: pip install "
                         "'rsp-probe[ray]'") from None
    return ray


def _connect(ray, output):
    """Join --ray-address, or start a small local cluster guarded by a watchdog that kills
    it if this process dies without shutting it down (rsp_probe.runio.ray_watchdog).
    Returns what `_disconnect` needs: None when Ray was running before."""
    if ray.is_initialized():
        return None
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if output.ray_address:
        ray.init(address=output.ray_address, **quiet)
        return ()
    from rsp_probe.runio import ray_watchdog

    ray.init(num_cpus=output.workers, include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    try:
        return (ray_watchdog.start(ray_watchdog.node_pids(ray)),)
    except BaseException:
        ray.shutdown()
        raise


def _disconnect(ray, connection) -> None:
    if connection is None:
        return
    ray.shutdown()
    for watchdog in connection:  # Ray is down: the watchdog has nothing left to guard
        watchdog.kill()
        watchdog.wait()


def _shard_count(ray, spec) -> int:
    """--workers, else the cluster's CPUs; never more shards than prompts."""
    count = spec.output.workers or int(ray.cluster_resources().get("CPU", 1))
    if count > spec.data.n_prompts:
        LOG.info(f"{spec.data.n_prompts} prompts: {spec.data.n_prompts} shards, not {count}")
    return max(1, min(count, spec.data.n_prompts))


def _prepare_folder(out: Path, output) -> None:
    """Keep an interrupted run's shards for --resume; refuse or discard them otherwise."""
    folder = shards_folder(out)
    if not folder.exists() or output.resume:
        return
    if not output.overwrite:
        raise UsageError(f"--out {out}: an interrupted --workers run left its shards in "
                         f"{folder.name}; --resume continues it, --overwrite or "
                         f"`rsp-probe clean {out.parent}` discards them")
    shutil.rmtree(folder)


def _run_tasks(ray, experiment_name: str, specs: list) -> list[Path]:
    # one GPU per shard where the cluster has GPUs (Ray sets CUDA_VISIBLE_DEVICES), else a CPU
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(run_shard).options(num_cpus=1, num_gpus=gpus, max_retries=SHARD_RETRIES,
                                         retry_exceptions=False)
    refs = [task.remote(experiment_name, spec) for spec in specs]
    try:
        return [Path(path) for path in ray.get(refs)]
    except ray.exceptions.RayTaskError as err:  # the shard's own error, e.g. a UsageError
        cause = getattr(err, "cause", None)
        raise UsageError(str(cause) if cause is not None else str(err).splitlines()[0]) from None
    except ray.exceptions.RayError as err:
        raise UsageError(f"a shard's worker died {SHARD_RETRIES + 1} times or Ray failed "
                         f"({type(err).__name__}); the same command with --resume continues "
                         "from the shards' last complete batches") from None


def merge_shards(paths: list, out, overwrite: bool = False, lock=None,
                 execution: dict | None = None):
    """`rsp-probe merge`: the shards joined by storage (rsp_probe.runio.merge), with what their
    registered experiment adds: its trajectory order, the files it derives, its figure. A run
    of an unregistered command merges with neither."""
    from rsp_probe.figures.render import draw_run_figure
    from rsp_probe.registry import EXPERIMENTS
    from rsp_probe.runio.merge import merge_runs
    from rsp_probe.runs import open_run

    if not paths:
        raise UsageError("merge needs the shard runs to join")
    command = open_run(paths[0]).command
    experiment = EXPERIMENTS.entries().get(command)
    if experiment is None:
        return merge_runs(paths, out, overwrite=overwrite, lock=lock, execution=execution)
    return merge_runs(paths, out, overwrite=overwrite, lock=lock, execution=execution,
                      order=experiment.trajectory_order, derive=experiment.derived_files,
                      finish_staged=lambda staged: draw_run_figure(command, staged))


def run_on_ray(experiment, spec, model=None):
    """The experiment as shards on Ray workers, merged into spec.output.out."""
    from rsp_probe.experiments.common import default_out
    from rsp_probe.runs import EXECUTION_KEYS, prepare_out, resolve_out

    if model is not None:
        raise UsageError("--workers loads one model per worker: give a checkpoint path or "
                         "Hub id, not a loaded model")
    if spec.data.shard is not None:
        raise UsageError("--workers runs every shard itself; leave out --shard")
    ray = _import_ray()
    out = resolve_out(spec.output.out or default_out(spec.command))
    lock = prepare_out(out, spec.output.overwrite)
    connection = None
    try:
        _prepare_folder(out, spec.output)
        connection = _connect(ray, spec.output)
        paths = _run_tasks(ray, experiment.name, shard_specs(spec, out, _shard_count(ray, spec)))
        execution = {key: spec.to_dict()[key] for key in EXECUTION_KEYS}
        run = merge_shards(paths, out, overwrite=spec.output.overwrite, lock=lock,
                           execution={**execution, "out": str(out)})
    finally:
        lock.release()
        _disconnect(ray, connection)
    shutil.rmtree(shards_folder(out), ignore_errors=True)
    return run, experiment.summary(run)
