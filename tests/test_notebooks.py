"""The notebooks, executed by a real Jupyter kernel as a researcher runs them.

Every notebooks/*.ipynb runs top to bottom on the embedded default model without an error;
every cell tagged "figure" shows a PNG (inline figures: no backend forced anywhere); every
run a notebook writes has its summary printed exactly as `rsp-probe show RUN` prints it; and
the notebooks are stored without outputs. The real-model notebook runs once on a tiny model
placed in a private Hugging Face cache under a Hub id, and once on an id the cache lacks,
where it must print one line and stop cleanly.

One kernel runs every notebook, one after another with `%reset -f` in between (each starts
from an empty namespace), so torch and the model code are imported once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REAL_MODEL = "08_real_model"
CACHED_ID = "rsp-probe-test/tiny-qwen2"  # put into the private cache below
FIGURE_TAG = "figure"
MISSING = "missing-model"  # key of the real-model notebook's second run


def test_every_experiment_family_has_a_notebook():
    numbers = {path.name[:2] for path in NOTEBOOKS}
    assert {"01", "02", "03", "04", "05", "07", "08"} <= numbers
    assert (ROOT / "notebooks" / f"{REAL_MODEL}.ipynb").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs_or_a_forced_backend(path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "matplotlib.use" not in cell.source and "%matplotlib" not in cell.source
    assert any(FIGURE_TAG in cell.metadata.get("tags", []) for cell in book.cells)


def _hub_cache(root: Path, checkpoint: Path) -> Path:
    """A Hugging Face cache holding `checkpoint` as CACHED_ID (the hub's own layout)."""
    commit = "0" * 40
    repo = root / ("models--" + CACHED_ID.replace("/", "--"))
    shutil.copytree(checkpoint, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def _prepared(path: Path, workdir: Path, model_id: str | None) -> nbformat.NotebookNode:
    """The notebook with a first cell that empties the namespace and points tempfile (where
    the notebooks write their runs) at `workdir`; `model_id` overrides the "parameters"
    cell, as papermill does."""
    book = nbformat.read(path, as_version=4)
    workdir.mkdir(parents=True)
    prelude = f"%reset -f\nimport tempfile\ntempfile.tempdir = {str(workdir)!r}\ndel tempfile"
    book.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    if model_id is not None:
        at = next(i for i, cell in enumerate(book.cells)
                  if "parameters" in cell.metadata.get("tags", []))
        book.cells.insert(at + 1, nbformat.v4.new_code_cell(f"MODEL_ID = {model_id!r}"))
    return book


def _execute(km, book, workdir: Path):
    """Run the notebook in the shared kernel; the error, if a cell raised."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    try:
        NotebookClient(book, km=km, timeout=600,
                       resources={"metadata": {"path": str(workdir)}}).execute()
    except CellExecutionError as err:
        return str(err)
    return None


@pytest.fixture(scope="module")
def executed(tmp_path_factory, tiny_qwen2):
    """{notebook stem (and MISSING): (executed notebook, its run folder, error or None)}.
    The real-model notebook with a missing id runs last: it switches later cells off."""
    from jupyter_client import KernelManager

    tmp = tmp_path_factory.mktemp("notebooks")
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env.update(HF_HUB_CACHE=str(_hub_cache(tmp / "hub", tiny_qwen2)), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp))
    results = {}
    try:
        plan = [(p.stem, p, CACHED_ID if p.stem == REAL_MODEL else None) for p in NOTEBOOKS]
        plan.append((MISSING, ROOT / "notebooks" / f"{REAL_MODEL}.ipynb", None))
        for key, path, model_id in plan:
            workdir = tmp / key
            book = _prepared(path, workdir, model_id)
            results[key] = (book, workdir, _execute(km, book, workdir))
    finally:
        km.shutdown_kernel(now=True)
    return results


def _outputs(cell) -> list:
    return cell.get("outputs", []) if cell.cell_type == "code" else []


def _stdout(book) -> str:
    return "".join(o.get("text", "") for cell in book.cells for o in _outputs(cell)
                   if o.output_type == "stream" and o.get("name") == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_shows_its_figures(executed, path):
    book, _, error = executed[path.stem]
    assert error is None, error
    figures = [cell for cell in book.cells if FIGURE_TAG in cell.metadata.get("tags", [])]
    assert figures
    for cell in figures:
        pictures = [o for o in _outputs(cell) if "image/png" in o.get("data", {})]
        assert len(pictures) == 1, cell.source  # shown once, not also by pyplot


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_printed_summaries_are_what_rsp_probe_show_prints(executed, path, capsys):
    from rsp_probe.cli import main
    from rsp_probe.runs import find_runs

    book, workdir, _ = executed[path.stem]
    runs = find_runs([workdir])
    assert runs, "the notebook wrote no run"
    printed = _stdout(book)
    for run in runs:
        capsys.readouterr()
        assert main(["show", str(run.path)]) == 0
        shown = capsys.readouterr().out.rstrip("\n")
        assert shown and shown in printed, f"{run.path.name}: summary not printed as shown"


def test_real_model_notebook_stops_in_one_line_without_the_model(executed):
    book, workdir, error = executed[MISSING]
    assert error is None, error
    lines = _stdout(book).splitlines()
    assert len(lines) == 1 and "Qwen/Qwen2.5-Math-1.5B" in lines[0], lines
    assert "not in the local Hugging Face cache" in lines[0]
    assert not any(o.output_type in ("display_data", "execute_result", "error")
                   for cell in book.cells for o in _outputs(cell))
    assert not list(workdir.rglob("DONE"))


def test_the_cli_chooses_agg_only_for_itself(monkeypatch):
    """A kernel started after a CLI call in the same process must still get its inline
    backend (ipykernel keeps a MPLBACKEND it inherits)."""
    import sys

    from rsp_probe.cli import file_backend

    monkeypatch.delenv("MPLBACKEND", raising=False)
    with file_backend():
        inside = os.environ.get("MPLBACKEND")
    assert inside == (None if "matplotlib" in sys.modules else "Agg")
    assert "MPLBACKEND" not in os.environ
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    with file_backend():
        pass
    assert os.environ["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"


GRADED = {"knockout", "dose", "passk", "compare-prompts"}  # figures that draw accuracy


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem != REAL_MODEL],
                         ids=lambda p: p.stem)
def test_runs_that_draw_accuracy_reach_their_answers(executed, path):
    """A notebook whose figure draws accuracy runs long enough for the default model to write
    its answers (12 tokens used to end every trajectory before one): most trajectories are
    graded and some are right, so the accuracy panels are not zero by construction."""
    from rsp_probe.runs import find_runs

    _, workdir, error = executed[path.stem]
    assert error is None, error
    for run in find_runs([workdir]):
        if run.command not in GRADED:
            continue
        trajectories = run.trajectories
        assert trajectories["answer"].notna().mean() >= 0.5, run.path
        assert trajectories["correct"].fillna(False).astype(bool).any(), run.path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_names_only_what_the_notebook_shows(path):
    """No AIC comparison is computed any more, and a notebook that draws its results as
    separate figures has no rows of one figure to point at (#26)."""
    book = nbformat.read(path, as_version=4)
    prose = " ".join(cell.source for cell in book.cells if cell.cell_type == "markdown")
    assert "AIC" not in prose
    draws = sum(cell.source.count("draw(") for cell in book.cells if cell.cell_type == "code")
    if draws > 1:
        assert "top row" not in prose.lower() and "bottom row" not in prose.lower()
