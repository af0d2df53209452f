"""Holm-adjusted comparisons and same-run detection in ``benchmarks/_common.py``, checked against hand values."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as C  # the benchmark scripts are files, not a package


def _p_df2(m: float) -> float:
    """Two-sided t-test p of ``[m - 1, m, m + 1]``: sd 1, t = m * sqrt(3), and with 2 degrees of freedom
    P(|T| > t) = 1 - t / sqrt(t**2 + 2)."""
    t = m * math.sqrt(3)
    return 1 - t / math.sqrt(t * t + 2)


def _half_df2(level: float) -> float:
    """Half-width of the t-interval of ``[m - 1, m, m + 1]`` (se 1/sqrt(3)); the df-2 quantile of q is
    (2q - 1) / sqrt(2 q (1 - q))."""
    q = 0.5 + level / 2
    return (2 * q - 1) / math.sqrt(2 * q * (1 - q)) / math.sqrt(3)


# three comparisons whose raw p-values are ~0.005, ~0.030, ~0.040, listed out of order
COMPARISONS = {
    "c": [1.8, 2.8, 3.8],
    "a": [7.13, 8.13, 9.13],
    "b": [2.26, 3.26, 4.26],
}


def test_holm_three_comparisons_by_hand():
    pa, pb, pc = _p_df2(8.13), _p_df2(3.26), _p_df2(2.8)
    assert pa == pytest.approx(0.0050053, abs=1e-6) and pb == pytest.approx(0.0299624, abs=1e-6)
    assert pc == pytest.approx(0.0399843, abs=1e-6)
    h = C.holm(COMPARISONS)
    assert list(h) == ["c", "a", "b"]  # the order passed in
    assert [h[k]["rank"] for k in "abc"] == [1, 2, 3] and all(v["m"] == 3 for v in h.values())
    for k, p in zip("abc", (pa, pb, pc), strict=True):
        assert h[k]["p_value"] == pytest.approx(p, rel=1e-9)
    # step-down: 3 p_(1), max(that, 2 p_(2)), max(that, 1 p_(3))
    assert h["a"]["p_holm"] == pytest.approx(3 * pa, rel=1e-9)  # 0.0150
    assert h["b"]["p_holm"] == pytest.approx(2 * pb, rel=1e-9)  # 0.0599
    assert h["c"]["p_holm"] == pytest.approx(2 * pb, rel=1e-9)  # max(0.0599, 0.0400): monotone
    assert [h[k]["resolved"] for k in "abc"] == [True, False, False]
    assert [C.holm_sign(h[k]) for k in "abc"] == ["+", "0", "0"]
    # intervals: raw at 95 %, adjusted at 1 - 0.05/3, 1 - 0.05/2, 1 - 0.05/1
    for k, m, level in (("a", 8.13, 1 - 0.05 / 3), ("b", 3.26, 1 - 0.05 / 2), ("c", 2.8, 0.95)):
        assert h[k]["holm_level"] == pytest.approx(level)
        assert h[k]["mean_diff"] == pytest.approx(m)
        assert h[k]["ci95"] == pytest.approx([m - _half_df2(0.95), m + _half_df2(0.95)], rel=1e-9)
        assert h[k]["ci_holm"] == pytest.approx([m - _half_df2(level), m + _half_df2(level)], rel=1e-9)
    # c's adjusted interval (at 95 %) excludes 0, yet it is not resolved: the step-down stopped at b
    assert h["c"]["ci_holm"][0] > 0 and not h["c"]["resolved"]
    assert h["b"]["ci_holm"][0] < 0  # b at 97.5 %: contains 0


def test_holm_negative_effects_and_comparisons_without_a_p_value():
    h = C.holm({"down": [-7.13, -8.13, -9.13], "flat": [0.0, 0.0, 0.0], "one": [0.5]})
    assert h["down"]["resolved"] and C.holm_sign(h["down"]) == "-"
    assert h["down"]["p_holm"] == pytest.approx(3 * _p_df2(8.13), rel=1e-9)
    for k in ("flat", "one"):
        assert math.isnan(h[k]["p_value"]) and math.isnan(h[k]["p_holm"]) and not h[k]["resolved"]
        assert h[k]["rank"] in (2, 3) and h[k]["m"] == 3


def test_same_runs_needs_identical_accuracy_and_boundary():
    runs = {
        "mixup": {0: {"test_acc": 0.70, "boundary_step": None}, 1: {"test_acc": 0.71, "boundary_step": None}},
        "pause_metric": {
            0: {"test_acc": 0.75, "boundary_step": 120},
            1: {"test_acc": 0.76, "boundary_step": 100},
            2: {"test_acc": 0.74, "boundary_step": 120},
        },
        "pause_20": {
            0: {"test_acc": 0.75, "boundary_step": 120},  # same run
            1: {"test_acc": 0.76, "boundary_step": 120},  # same accuracy, another boundary: not the same run
            2: {"test_acc": 0.74, "boundary_step": 120},  # same run
        },
    }
    pairs = C.same_runs(runs)
    assert pairs == {("pause_metric", "pause_20"): [0, 2]}
    notes = C.same_runs_notes(pairs, 3, {"pause_metric": "Mixup Pause (metric)"})
    assert notes == {"pause_20": "same runs as Mixup Pause (metric) in 2 of 3 seeds"}
    # 2 of 3 seeds is most of them: the two comparisons count once; 1 of 3 would not
    assert C.distinct_count(["pause_metric", "pause_20"], pairs, 3) == 1
    assert C.distinct_count(["pause_metric", "pause_20"], {("pause_metric", "pause_20"): [0]}, 3) == 2
    assert C.distinct_count(["pause_metric", "pause_20", "mixup"], pairs, 3) == 2


def test_holm_cell_shows_raw_and_adjusted_intervals():
    h = C.holm({"x": [0.01, 0.02, 0.03]})["x"]
    assert C.holm_cell(h).startswith("+2.00 [")
    assert " Holm [" in C.holm_cell(h) and h["ci_holm"] == pytest.approx(h["ci95"])  # m = 1: the same level


def test_the_vit_sweep_marks_its_same_runs_and_counts_them_once():
    import json

    import _comparisons as K
    import vit_period

    result = json.loads((Path(vit_period.__file__).parent / "results" / "vit_period.json").read_text())
    runs = [r for r in result["runs"] if r["size"] == 32000]
    acc = {(r["arm"], r["seed"]): (r["test_acc"], r["boundary_step"]) for r in runs}
    twins = [s for s in range(5) if acc[("pause_20", s)] == acc[("pause_metric", s)]]
    assert len(twins) == 4  # read straight from the runs: 4 of 5 seeds are one run under two names
    others = [a for a in result["header"]["arms"] if a != "mixup"]
    text = "\n".join(
        K.difference_lines(result["summary"]["per_size"], others, vit_period.LABELS, "mixup", result["runs"], 5)
    )
    assert "32,000 images: Pause 20 % same runs as Mixup Pause (metric) in 4 of 5 seeds" in text
    assert "(0; 5:0; same runs as Mixup Pause (metric) in 4 of 5 seeds) |" in text  # the cell is marked
    assert "Raw 95 % interval excludes 0: 2 of 12 comparisons" in text and "; 1 distinct)" in text
    assert "Resolved after Holm: 0 of 12 (none; 0 distinct)" in text
