"""The two benchmark scripts run end to end in their quick modes and write well-formed results.

Both scripts run as subprocesses (the DDP part of the overhead script must be a script entry point), side by side
with one torch thread each, into ``tmp_path``. The numbers themselves are smoke values: only their structure and
sanity are checked here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lit_early_phase.datamodules import find_fashion_mnist

ROOT = Path(__file__).resolve().parents[2]
# each script trains several runs in its own process (~30 s for both on 2 quiet cores). Their data is
# Fashion-MNIST from a Debian package, not from pip: without it they skip, saying what to install.
NEEDS_FASHION_MNIST = pytest.mark.skipif(
    find_fashion_mnist() is None,
    reason="the benchmarks train on Fashion-MNIST: `apt-get install dataset-fashion-mnist` (or set FASHION_MNIST_DIR)",
)
pytestmark = [NEEDS_FASHION_MNIST]
EFFECT = ROOT / "benchmarks" / "effect.py"
OVERHEAD = ROOT / "benchmarks" / "overhead.py"


def _finite_positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def _verdict(ci95, goal) -> str:
    """The interval's verdict on an upper goal, written out here (not the script's helper)."""
    lo, hi = ci95
    if math.isnan(lo):
        return "not resolved"
    return "met" if hi <= goal else "missed" if lo > goal else "not resolved"


def _start(script: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), "--quick", "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    effect_out, overhead_out = tmp / "effect_quick", tmp / "overhead_quick"
    procs = [_start(EFFECT, effect_out), _start(OVERHEAD, overhead_out, "--threads", "1")]
    outputs = [_finish(p) for p in procs]
    return tmp, effect_out, overhead_out, outputs


def test_effect_quick_writes_every_arm_seed_and_boundary(quick_results):
    tmp, out, _, _ = quick_results
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").is_file() and out.with_suffix(".png").stat().st_size > 0
    h = result["header"]
    assert h["mode"] == "quick" and h["seeds"] == [0, 1] and h["arms"] == ["none", "mixup", "pause_metric"]
    for key in ("torch", "lightning", "timm"):
        assert h["versions"][key] != "not installed"
    assert h["machine"]["cpu_count"] >= 1 and h["date_utc"].endswith("Z")
    runs = result["runs"]
    assert len(runs) == 6
    assert {(r["arm"], r["seed"]) for r in runs} == {(a, s) for a in h["arms"] for s in (0, 1)}
    for r in runs:
        assert 0.0 < r["test_acc"] <= 1.0 and r["steps"] == h["run"]["steps"]
        if r["arm"] == "pause_metric":
            assert isinstance(r["boundary_step"], int) and 1 <= r["boundary_step"] <= r["steps"]
            assert r["ended_by"] in ("metric", "max_duration") and r["reason"]
        else:
            assert r["boundary_step"] is None
    row = result["summary"]["per_size"][0]
    assert row["size"] == 1000
    assert all(row["arms"][a]["n"] == 2 for a in h["arms"])
    diff = row["vs_mixup"]["pause_metric"]
    assert diff["n"] == 2 and len(diff["ci95"]) == 2 and diff["sign"] in "+-0"
    assert row["boundary"]["pause_metric"]["median_step"] is not None
    assert result["cost"]["runs"] == 6
    assert "not results" in out.with_suffix(".md").read_text()

    # resuming: the same command finds every run in the log, trains nothing and keeps the old files
    again = _finish(_start(EFFECT, out))
    assert "0 to run" in again
    lines = (tmp / "effect_quick_runs.jsonl").read_text().splitlines()
    assert len(lines) == 6
    # every run record says which code produced it, and the configuration id includes that code
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert h["git"]["commit"] == head and len(h["git"]["code_id"]) == 12
    for record in map(json.loads, lines):
        assert record["git"] == {k: h["git"][k] for k in ("commit", "code_dirty", "code_id")}
        assert record["config_id"] == h["config_id"]
    assert not (tmp / "history").exists()  # earlier results are git's history, not copies

    # --report-only regenerates the table from the saved JSON, without measuring
    saved = out.with_suffix(".md").read_text()
    out.with_suffix(".md").unlink()
    assert "0 to run" not in _finish(_start(EFFECT, out, "--report-only"))
    assert out.with_suffix(".md").read_text() == saved


def test_overhead_quick_writes_positive_ratios_and_equal_boundaries(quick_results):
    _, _, out, _ = quick_results
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").is_file()
    h = result["header"]
    assert h["mode"] == "quick" and h["threads"] == 1 and "not figures" in h["note"]

    whole = result["whole"]["comparisons"]  # the headline: the suite's whole step / a plain step with timm Mixup
    assert [(c["key"], c["goal_max"]) for c in whole] == [("model", 1.01), ("fast", 1.02)]
    for c in whole:
        r = c["ratio"]
        assert len(r["ratios"]) == c["repeats"] == 2 and _finite_positive(r["mean"])
        assert _finite_positive(c["suite_ms"][0]) and _finite_positive(c["plain_ms"][0])
        assert c["verdict"] == _verdict(r["ci95"], c["goal_max"])
    assert "| goal: interval |" in out.with_suffix(".md").read_text()

    comparisons = result["step"]["comparisons"]
    assert len(comparisons) == 7
    for c in comparisons:
        assert _finite_positive(c["ratio"]["mean"]) and _finite_positive(c["reference_ms"][0])
        assert c["verdict"] == _verdict(c["ratio"]["ci95"], c["goal_max"])
        assert c["forward_calls_per_step"] == 1.0  # High-Loss Removal reuses the forward pass
        if c["arm"].endswith("_in"):
            assert c["in_period_at_end"] is True
        elif c["arm"].endswith("_after"):
            assert c["in_period_at_end"] is False

    toggle = result["toggle"]
    cfg = toggle["config"]
    assert len(toggle["comparisons"]) == 7
    for c in toggle["comparisons"]:
        assert c["ratio"]["n_pairs"] == cfg["pairs"] * cfg["repeats"] and _finite_positive(c["ratio"]["mean"])
        assert all(len(f["pair_ratios"]) == cfg["pairs"] for f in c["fits"])
        assert c["verdict"] == _verdict(c["ratio"]["ci95"], c["goal_max"]) and "meets_goal_by_hook_time" not in c
        if c["toggled"] == "callback":  # the hooks ran (and were timed) on the on-blocks
            assert _finite_positive(c["hook_us_per_step"][0]) and 0 < c["hook_share"] < 1
        else:
            assert c["hook_us_per_step"] is None

    mix = result["mix"]
    assert {row["mode"] for row in mix} == {"batch", "elem"}
    for row in mix:
        assert _finite_positive(row["speedup"]) and _finite_positive(row["ours_odd_us"][0])
        assert row["odd_batch"] % 2 == 1 and row["timm_odd"].startswith("refused")

    ddp = result["ddp"]
    assert _finite_positive(ddp["ratio"]["mean"])
    assert all(len(steps) == 2 for steps in ddp["boundary_steps_per_rank"])
    assert ddp["boundary_identical_on_ranks"] is True
