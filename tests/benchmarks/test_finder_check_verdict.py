"""finder_check.py's verdict (in-sample and out-of-sample): "unresolved" is not agreement; the OOS mode runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import finder_check as F  # a script, not a package
from test_benchmarks_quick import NEEDS_FASHION_MNIST, ROOT, _finish, _start


def test_the_verdict_is_the_sign_of_the_paired_interval():
    ahead = {"mixup": [0.80, 0.81, 0.82], "pause_metric": [0.83, 0.84, 0.85]}  # +3 pp in every seed
    assert F.verdict("mixup_pause", ahead)["verdict"] == "yes"
    none = F.verdict("none", ahead)
    assert none["verdict"] == "no" and none["resolved_better_arms"] == ["pause_metric"]
    noisy = {"mixup": [0.80, 0.85, 0.82], "pause_metric": [0.83, 0.81, 0.83]}
    assert F.verdict("none", noisy)["verdict"] == "unresolved"  # absence of evidence is not agreement
    assert F.verdict("too_short", noisy)["recommended_arm"] == "mixup"  # the old name in saved results
    assert F.verdict("alpha_boost", noisy)["verdict"] == "not evaluated"
    assert F.verdict("none", noisy)["difference"]["mean_diff"] == pytest.approx((0.80 + 0.85 + 0.82 - 2.47) / 3)


def test_in_sample_the_resnet_at_32k_is_unresolved_and_no_mixup_beat_the_plan():
    out = F.outcome("resnet", 32000)
    row = F._row("resnet", 32000, [_pilot("none")], out["values"])
    assert row["verdict"] == "unresolved" and row["resolved_better_arms"] == ["none"]  # effect.py's "none": no Mixup
    assert 100 * row["arm_means"]["none"] - 100 * row["arm_means"]["mixup"] == pytest.approx(0.458, abs=1e-3)
    vit = F._row("vit", 32000, [_pilot("mixup_pause")], F.outcome("vit", 32000)["values"])
    assert vit["verdict"] == "yes" and vit["difference"]["ci95"][0] > 0


def _pilot(strategy: str) -> dict:
    ev = {"boundary_step": 20, "period_share": 0.02, "interference": 0.3, "revival": 0.0}
    return {"strategy": strategy, "evidence": ev, "seconds": 1.0}


@NEEDS_FASHION_MNIST
def test_the_out_of_sample_quick_mode_runs_end_to_end(tmp_path):
    out = tmp_path / "finder_oos_quick"
    _finish(_start(ROOT / "benchmarks" / "finder_check.py", out, "--out-of-sample", "--workers", "0"))
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["header"]["sample"] == "out-of-sample" and result["header"]["run"]["size"] == 1000
    assert [(r["arm"], r["seed"]) for r in result["runs"]] == [(a, s) for a in F.OOS_ARMS for s in (0, 1)]
    s = result["summary"]
    accs = {a: [r["test_acc"] for r in result["runs"] if r["arm"] == a] for a in F.OOS_ARMS}
    assert s == s | F.verdict(s["recommendation"], accs)
    assert sum(s["votes"].values()) == 2 and all(p["evidence"]["planned_steps"] == 30 for p in result["pilots"])
    table = out.with_suffix(".md").read_text()
    assert "Out-of-sample" in table and f"**{s['verdict']}**" in table
