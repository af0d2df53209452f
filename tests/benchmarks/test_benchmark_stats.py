"""Holm-adjusted comparisons and same-run detection in ``benchmarks/_common.py``, checked against hand values."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
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
    # intervals: raw at 95 %; adjusted, all three, at the level where the step-down stopped: r = 1 rejected, so
    # 1 - 0.05 / (3 - 1) = 97.5 %
    for k, m in (("a", 8.13), ("b", 3.26), ("c", 2.8)):
        assert h[k]["holm_level"] == pytest.approx(0.975)
        assert h[k]["mean_diff"] == pytest.approx(m)
        assert h[k]["ci95"] == pytest.approx([m - _half_df2(0.95), m + _half_df2(0.95)], rel=1e-9)
        assert h[k]["ci_holm"] == pytest.approx([m - _half_df2(0.975), m + _half_df2(0.975)], rel=1e-9)
    assert _half_df2(0.975) == pytest.approx(3.5826, abs=1e-4)  # df-2 quantile 6.2053 over sqrt(3)
    # only the resolved comparison's adjusted interval excludes 0; c's raw 95 % one does too (c: 2.8 - 2.48 > 0),
    # but at the stopping level it contains 0 (2.8 - 3.58 < 0), as it is not resolved
    assert h["a"]["ci_holm"][0] > 0
    assert h["c"]["ci95"][0] > 0 and h["c"]["ci_holm"][0] < 0 < h["c"]["ci_holm"][1]
    assert h["b"]["ci_holm"][0] < 0 < h["b"]["ci_holm"][1]


def test_holm_all_resolved_uses_the_95_level():
    # r = m = 2: the step-down rejected everything, the intervals are at 1 - 0.05 / 1
    h = C.holm({"a": [7.13, 8.13, 9.13], "d": [-6.0, -7.0, -8.0]})
    assert all(v["resolved"] for v in h.values())
    for v in h.values():
        assert v["holm_level"] == pytest.approx(0.95) and v["ci_holm"] == pytest.approx(v["ci95"], rel=1e-12)


def test_holm_none_resolved_uses_the_bonferroni_level():
    # r = 0: the step-down stopped at its first test, alpha / m
    h = C.holm({"b": [2.26, 3.26, 4.26], "c": [1.8, 2.8, 3.8]})
    assert not any(v["resolved"] for v in h.values())
    assert all(v["holm_level"] == pytest.approx(0.975) for v in h.values())


def test_holm_resolved_exactly_when_the_adjusted_interval_excludes_0():
    rng = np.random.default_rng(20261207)
    seen = {"resolved": 0, "not resolved": 0, "raw excludes 0, not resolved": 0, "rank level excludes 0": 0}
    for _ in range(1500):
        m = int(rng.integers(1, 13))
        family = {str(i): rng.normal(rng.normal(0, 0.8), 1.0, size=int(rng.integers(3, 11))) for i in range(m)}
        h = C.holm(family)
        r = sum(v["resolved"] for v in h.values())
        for name, v in h.items():
            lo, hi = v["ci_holm"]
            assert v["resolved"] == (not lo <= 0 <= hi), v
            assert v["holm_level"] == pytest.approx(1 - 0.05 / max(m - r, 1))
            seen["resolved" if v["resolved"] else "not resolved"] += 1
            seen["raw excludes 0, not resolved"] += not v["resolved"] and not v["ci95"][0] <= 0 <= v["ci95"][1]
            # the old rule, each interval at its own rank's level, would call this one's interval clear of 0
            _, rlo, rhi = C.t_interval(family[name], 1 - 0.05 / (m - v["rank"] + 1))
            seen["rank level excludes 0"] += not v["resolved"] and not rlo <= 0 <= rhi
    # the families exercise both sides of the rule, and the cases where the rank-level intervals disagreed with it
    assert min(seen.values()) >= 10, seen  # 11 rank-level disagreements with this seed, thousands of the others


def test_holm_negative_effects_and_comparisons_without_a_p_value():
    h = C.holm({"down": [-7.13, -8.13, -9.13], "flat": [0.0, 0.0, 0.0], "one": [0.5]})
    assert h["down"]["resolved"] and C.holm_sign(h["down"]) == "-"
    assert h["down"]["p_holm"] == pytest.approx(3 * _p_df2(8.13), rel=1e-9)
    for k in ("flat", "one"):
        assert math.isnan(h[k]["p_value"]) and math.isnan(h[k]["p_holm"]) and not h[k]["resolved"]
        assert h[k]["rank"] in (2, 3) and h[k]["m"] == 3
    assert h["flat"]["ci_holm"] == [0.0, 0.0] and all(math.isnan(x) for x in h["one"]["ci_holm"])


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
