"""Every figure regenerated from saved runs by one call (showyourwork's rule).

    from rsp_probe.figures.render import render_all, draw
    result = render_all(["runs/"], "figures/")
    for message in result["skipped"].values():
        print(message)
    draw("entropy", [run])  # one figure as a matplotlib Figure (a notebook shows it)

For each figure the registered experiments declare (rsp_probe.figures.FIGURES) whose NEEDS
are present among the runs found below the given paths: `<name>.png` (150 dpi), `<name>.pdf`
and `<name>.csv` (the plotted data, floats rounded to 8 significant digits, exactly
`df.to_csv(index=False)`).
MANIFEST.json records, per figure, the input runs (directory name, command, config hash)
and the sha256 of each output, plus package versions. Unchanged inputs give identical bytes:
the style is applied in `plt.rc_context`, and the PNG/PDF metadata that carry dates or
versions are blanked. A figure whose runs are missing is skipped with a message naming the
command that produces them; if nothing can be drawn, UsageError says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path

from rsp_probe.errors import UsageError
from rsp_probe.runs import Run, find_runs

MANIFEST_FILE = "MANIFEST.json"
CAPTION_SUFFIX = ".caption.md"  # written beside each figure: n, windows, what each line is
RUN_FIGURE_STEM = "figure"  # a run's own figure: <run>/figure-<name>.png (+ .csv)
DPI = 150
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
VERSIONED = ("rsp-probe", "matplotlib", "numpy", "pandas")


def skip_message(name: str, missing: str) -> str:
    return f"skipping {name}: needs an `rsp-probe {missing}` run"


def runs_by_command(runs: list[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.command, r.id, str(r.path))):
        grouped.setdefault(run.command, []).append(run)
    return grouped


def inputs_for(module, by_command: dict[str, list[Run]]) -> list[Run] | str:
    """The runs a figure draws (its NEEDS, plus optional USES), or why it cannot be drawn."""
    for command in module.NEEDS:
        if command not in by_command:
            return skip_message(module.NAME, command)
    commands = dict.fromkeys([*module.NEEDS, *getattr(module, "USES", ())])
    return [run for command in commands for run in by_command.get(command, [])]


def render_all(run_paths: list[str | Path], out_dir: str | Path) -> dict:
    """Render every drawable figure into `out_dir`.

    Returns {"rendered": {name: [png, pdf, csv paths]}, "skipped": {name: message},
    "manifest": path of MANIFEST.json}.
    """
    from rsp_probe.figures import FIGURES

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    runs = find_runs(run_paths)
    if not runs:
        raise UsageError(f"no completed runs under {', '.join(map(str, run_paths))}")
    by_command = runs_by_command(runs)
    out.mkdir(parents=True, exist_ok=True)
    rendered, skipped, entries = {}, {}, {}
    for module in FIGURES:
        inputs = inputs_for(module, by_command)
        if isinstance(inputs, str):
            skipped[module.NAME] = inputs
            continue
        try:
            paths = render_one(module, inputs, out)
        except UsageError as err:  # the runs exist but lack what the figure draws
            skipped[module.NAME] = f"skipping {module.NAME}: {err}"
            continue
        rendered[module.NAME] = paths
        entries[module.NAME] = {
            "inputs": [{"run": r.id, "command": r.command, "config_hash": r.config_hash}
                       for r in inputs],
            "outputs": {p.name: sha256(p) for p in paths}}
    if not rendered:
        raise UsageError("no figure can be drawn: " + "; ".join(skipped.values()))
    manifest = out / MANIFEST_FILE
    manifest.write_text(json.dumps({"figures": entries, "skipped": skipped,
                                    "versions": versions()}, indent=2, sort_keys=True) + "\n")
    return {"rendered": rendered, "skipped": skipped, "manifest": manifest}


def render_one(module, runs: list[Run], out: Path, stem: str | None = None,
               pdf: bool = True, caption: bool = True) -> list[Path]:
    """data -> rounded frame -> figure in the house style -> png, pdf (optional), csv, and
    the caption (`<stem>.caption.md`, from the module's caption(frame), optional)."""
    import matplotlib.pyplot as plt

    from rsp_probe.figures import style

    frame = style.round_sig(module.data(runs))
    stem = stem or module.NAME
    paths = [out / f"{stem}.{ext}" for ext in ("png", "pdf", "csv") if pdf or ext != "pdf"]
    with plt.rc_context(style.rc()):
        fig = laid_out(_made(module, frame, runs))
        try:
            fig.savefig(paths[0], dpi=DPI, metadata=PNG_METADATA)
            if pdf:
                fig.savefig(paths[1], metadata=PDF_METADATA)
        finally:
            plt.close(fig)
    frame.to_csv(paths[-1], index=False)
    if caption:
        paths.append(out / f"{stem}{CAPTION_SUFFIX}")
        paths[-1].write_text(module.caption(frame).strip() + "\n", encoding="utf-8")
    return paths


def prompt_count(runs: list[Run]) -> int:
    """The fewest prompts any input run holds: what every CI of the figure resamples."""
    return min(int(run.trajectories["prompt_id"].nunique()) for run in runs)


def _made(module, frame, runs: list[Run]):
    """The module's figure; from too few prompts for a CI, marked as an illustration."""
    from rsp_probe.figures import style

    fig = module.make(frame)
    n = prompt_count(runs)
    if n < style.MIN_CI_PROMPTS:
        style.as_illustration(fig, n)
    return fig


def laid_out(fig):
    """One layout pass, kept for every format (each save would redo it) and for the check
    (rsp_probe.figures.check), which reads the text where the saved picture has it."""
    fig.tight_layout()
    fig.set_layout_engine("none")
    return fig


def draw(name: str, runs: list[Run]):
    """Figure `name` (a module of rsp_probe.figures, or a plugin's figure module by its dotted
    path) from `runs` in the house style: the picture `rsp-probe figures` saves, as a
    matplotlib Figure to show or save. It is closed in pyplot, so a notebook shows it once
    (as the cell's value) and no window holds it."""
    import matplotlib.pyplot as plt

    from rsp_probe.figures import figure_module, style

    module = figure_module(name)
    with plt.rc_context(style.rc()):
        fig = laid_out(_made(module, style.round_sig(module.data(runs)), runs))
    plt.close(fig)
    return fig


def run_figure_path(run: Run, name: str) -> Path:
    """Where a run keeps the picture of its own figure."""
    return run.path / f"{RUN_FIGURE_STEM}-{name}.png"


def draw_run_figure(command: str, staged: Run) -> None:
    """The registered experiment's first figure, drawn from its staged run into it (before
    it is published, so DONE lists the figure's files)."""
    from rsp_probe.registry import EXPERIMENTS

    experiment = EXPERIMENTS.entries().get(command)
    if experiment is not None and experiment.figures:
        render_run_figure(staged, experiment.figures[0])


def render_run_figure(run: Run, ref: str) -> Path | None:
    """Draw the figure `ref` names (rsp_probe.figures.figure_module) from this one run into
    its directory (png + csv). A run too small for the figure (one sample, no branch, nothing
    to fit) gets no picture and an INFO record saying why; the run is complete either way."""
    from rsp_probe.figures import figure_module

    module = figure_module(ref)
    name = module.NAME
    try:
        return render_one(module, [run], run.path, stem=f"{RUN_FIGURE_STEM}-{name}",
                          pdf=False, caption=False)[0]
    except (UsageError, ValueError, KeyError) as err:  # what the figures raise on thin data
        logging.getLogger("rsp_probe").info(f"no {name} figure for {run.path}: {err!r}")
        return None


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions() -> dict[str, str | None]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found
