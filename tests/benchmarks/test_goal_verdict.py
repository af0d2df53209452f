"""A goal is judged on the interval: met only inside it, missed only beyond it, otherwise not resolved."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as C


@pytest.mark.parametrize(
    ("ci95", "goal", "at_most", "verdict"),
    [
        ([0.99, 1.01], 1.01, True, "met"),  # the upper bound at the goal counts as met
        ([0.99, 1.0101], 1.01, True, "not resolved"),
        ([1.0127 - 0.02, 1.0127 + 0.02], 1.01, True, "not resolved"),  # a mean above the goal decides nothing
        ([1.0148, 1.0789], 1.01, True, "missed"),  # issue 24: High-Loss Removal after the period
        ([math.nan, math.nan], 1.01, True, "not resolved"),  # one repeat: no interval
        ([1.2, 3.0], 1.0, False, "met"),
        ([0.5, 0.9], 1.0, False, "missed"),
        ([0.9, 1.1], 1.0, False, "not resolved"),
    ],
)
def test_goal_verdict(ci95, goal, at_most, verdict):
    assert C.goal_verdict(ci95, goal, at_most=at_most) == verdict
