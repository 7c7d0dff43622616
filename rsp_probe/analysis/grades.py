"""Which trajectories of a run were graded, and the warning about those that were not.

A trajectory whose check failed (timeout, checker error) has correct=None and a `grade_error`;
it counts in neither the numerator nor the denominator of accuracy and Pass@k. Runs written
before `grade_error` existed have no such column: every trajectory with a verdict is graded.
No torch.
"""

from __future__ import annotations

import pandas as pd


def graded(frame: pd.DataFrame) -> pd.Series:
    """True where the trajectory has a verdict (correct is True or False)."""
    if "correct" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["correct"].notna()


def solved(frame: pd.DataFrame) -> pd.Series:
    """True where the trajectory was graded correct."""
    if "correct" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["correct"].eq(True)


def ungraded(frame: pd.DataFrame) -> pd.Series:
    """True where grading was attempted and failed."""
    if "grade_error" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["grade_error"].notna()


def ungraded_warning(frame: pd.DataFrame) -> str | None:
    """One line naming how many trajectories could not be graded, or None if all were."""
    failed = ungraded(frame)
    count = int(failed.sum())
    if count == 0:
        return None
    example = str(frame.loc[failed, "grade_error"].iloc[0])
    return (f"warning: {count} of {len(frame)} trajectories could not be graded (e.g. "
            f"{example}); they are excluded from accuracy and Pass@k")
