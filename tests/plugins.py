"""An rsp-probe plugin installed the way a third-party package would be: a module on the path
and a dist-info folder whose entry_points.txt names it in the `rsp_probe.plugins` group, so
importlib.metadata finds it exactly as it finds a pip-installed plugin. Nothing is installed
into the environment; a subprocess run with `plugin_env(folder)` sees the plugin, this test
process does not.

    folder = install_plugin(tmp_path, "toy_law_plugin", SOURCE)
    result = run_cli(["entropy", "--law", "toy", ...], plugin_env(folder))
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from rsp_probe.registry import PLUGIN_GROUP

REPO = Path(__file__).parent.parent


def install_plugin(folder: Path, module: str, source: str, version: str = "0.1",
                   **more_modules: str) -> Path:
    """Write `module`.py (the plugin the entry point names), any `more_modules` (name ->
    source: modules the plugin's declarations name, e.g. its figure) and the distribution's
    metadata into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {module: source, **more_modules}.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    dist = folder / f"{module}-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{module} = {module}\n")
    return folder


def plugin_env(*folders: Path) -> dict[str, str]:
    """The environment of a subprocess that sees the plugins in `folders` (and this
    checkout's rsp_probe first, as the tests do)."""
    path = [str(folder) for folder in folders] + [str(REPO)]
    existing = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path + ([existing] if existing else [])),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_cli(args: list[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`rsp-probe ARGS` in a fresh interpreter (entry points are read once per process)."""
    code = "import sys; from rsp_probe.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
