import numpy as np
import pytest

from rsp_probe.analysis.windows import in_window


def test_windows_by_hand():
    steps = np.arange(1, 21)
    assert list(steps[in_window("early", steps, 20)]) == [1, 2, 3]
    assert list(steps[in_window("middle", steps, 20)]) == list(range(4, 17))
    assert list(steps[in_window("late", steps, 20)]) == list(range(11, 21))


def test_late_follows_each_trajectory_length():
    steps = np.array([1, 5, 5, 12])
    lengths = np.array([5, 5, 20, 12])
    assert in_window("late", steps, lengths).tolist() == [True, True, False, True]


def test_unknown_window_is_refused():
    with pytest.raises(ValueError, match="unknown window"):
        in_window("final", [1], [1])
