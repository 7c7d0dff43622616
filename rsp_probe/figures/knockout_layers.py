"""Knockout measures against the layer whose RSP keys are masked from step 1: the layer half
of `rsp-probe knockout` (knockout.py draws the cut steps; the data are the same table)."""

from __future__ import annotations

import pandas as pd

from rsp_probe.figures import knockout

NAME = "knockout_layers"
NEEDS = ("knockout",)
KIND = "layer"


def data(runs) -> pd.DataFrame:
    return knockout.data(runs)


def make(df: pd.DataFrame):
    return knockout.make(df, kind=KIND)


def caption(df: pd.DataFrame) -> str:
    return knockout.caption(df, kind=KIND)
