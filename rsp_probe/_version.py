"""The package version, in one place: pyproject.toml reads it (setuptools dynamic version)
and `rsp-probe --version` prints it."""

__version__ = "0.1.0"
