"""The pre-registered confirmatory ViT run (``vit_period.py --confirmatory``): the plan's arms, its verdict rule,
the refusal without the plan's commit, and the quick mode end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import vit_confirmatory as VC  # the benchmark scripts are files, not a package
import vit_period as V
from test_benchmarks_quick import NEEDS_FASHION_MNIST, ROOT, _finish, _start


def test_the_plan_fixes_arms_seeds_and_setting():
    assert VC.ARMS == ("mixup", "pause_metric", "none") and VC.PRIMARY == ("pause_metric", "mixup")
    assert VC.SECONDARY == (("none", "mixup"), ("pause_metric", "none"))
    plan = VC.FULL
    assert plan == {
        "size": 32000,
        "seeds": list(range(100, 110)),
        "steps": 600,
        "batch_size": 128,
        "test_limit": None,
    }
    assert VC.PLAN_COMMIT.startswith("ebd3b56") and VC.CONFIG["diagnostics"] is None


def test_each_arm_trains_with_its_mixup_and_callback(monkeypatch):
    seen = {}

    def fake_train(size, seed, run, alpha, cb, diag):
        seen[run["arm"]] = (alpha, None if cb is None else type(cb.strategy).__name__, diag)
        return {"test_acc": 0.5, "boundary_step": None}

    monkeypatch.setattr(V, "train", fake_train)
    for arm in VC.ARMS:
        VC.run_one(32000, arm, 100, {"arm": arm})
    assert seen == {"mixup": (0.4, None, None), "pause_metric": (0.4, "MixupPause", None), "none": (0.0, None, None)}
    with pytest.raises(ValueError, match="unknown arm"):
        VC.run_one(32000, "pause_20", 100, {})


def test_verdict_follows_the_plan():
    assert VC.verdict([0.001, 0.02]) == "confirmed"
    assert VC.verdict([-0.02, -0.001]) == "contradicted"
    assert VC.verdict([-0.01, 0.02]) == "not resolved" and VC.verdict([0.0, 0.02]) == "not resolved"


def _runs(pause_minus_mixup: list[float]) -> list[dict]:
    runs = []
    for i, d in enumerate(pause_minus_mixup):
        s = 100 + i
        runs += [
            {"arm": "mixup", "seed": s, "test_acc": 0.75 + 0.001 * i, "boundary_step": None, "ended_by": None},
            {
                "arm": "pause_metric",
                "seed": s,
                "test_acc": 0.75 + 0.001 * i + d,
                "boundary_step": 120,
                "ended_by": "max_duration" if i else "metric",
            },
            {"arm": "none", "seed": s, "test_acc": 0.70 + 0.002 * i, "boundary_step": None, "ended_by": None},
        ]
    return runs


def test_summary_primary_raw_secondary_holm_boundaries_and_same_runs():
    seeds = list(range(100, 110))
    up = [0.010, 0.012, 0.008, 0.011, 0.009, 0.013, 0.010, 0.007, 0.012, 0.010]
    s = VC.summarise(_runs(up), seeds)
    assert s["primary"]["verdict"] == "confirmed" and s["primary"]["n"] == 10
    assert s["primary"]["mean_diff"] == pytest.approx(0.0102)
    down = VC.summarise(_runs([-x for x in up]), seeds)
    assert down["primary"]["verdict"] == "contradicted"
    mixed = VC.summarise(_runs([0.01, -0.01] * 5), seeds)
    assert mixed["primary"]["verdict"] == "not resolved"
    sec = s["secondary"]
    assert list(sec) == ["none-mixup", "pause_metric-none"] and all(v["holm"]["m"] == 2 for v in sec.values())
    assert sec["none-mixup"]["mean_diff"] == pytest.approx(-0.05 + 0.001 * 4.5)
    assert [b["step"] for b in s["boundary"]] == [120] * 10 and s["boundary"][0]["ended_by"] == "metric"
    assert s["same_runs"] == []
    twin = _runs(up)
    twin[3]["test_acc"], twin[3]["boundary_step"] = twin[4]["test_acc"], 120  # seed 101: mixup = pause run
    assert VC.summarise(twin, seeds)["same_runs"] == [{"arms": ["mixup", "pause_metric"], "seeds": [101]}]


def test_a_full_run_refuses_without_the_plan_as_ancestor(monkeypatch, tmp_path):
    monkeypatch.setattr(VC, "plan_is_ancestor", lambda: False)
    monkeypatch.setattr(VC.E, "run_tasks", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit, match="not an ancestor of HEAD"):
        V.main(["--confirmatory", "--out", str(tmp_path / "c")])


def test_the_plan_commit_is_an_ancestor_here():
    present = subprocess.run(["git", "cat-file", "-e", VC.PLAN_COMMIT], cwd=ROOT, capture_output=True).returncode
    if present != 0:
        pytest.skip("the plan's commit is not in this clone's history")
    assert VC.plan_is_ancestor() is True


@NEEDS_FASHION_MNIST
def test_confirmatory_quick_end_to_end(tmp_path):
    out = tmp_path / "vit_confirmatory_quick"
    script = ROOT / "benchmarks" / "vit_period.py"
    _finish(_start(script, out, "--confirmatory", "--workers", "0", "--threads", "1"))
    result = json.loads(out.with_suffix(".json").read_text())
    h = result["header"]
    assert h["script"] == "benchmarks/vit_confirmatory.py" and h["mode"] == "quick" and h["label"] == "confirmatory"
    assert h["seeds"] == [100, 101] and h["arms"] == ["mixup", "pause_metric", "none"]
    assert h["plan_commit"] == VC.PLAN_COMMIT and h["plan_is_ancestor"] is True
    runs = {(r["arm"], r["seed"]): r for r in result["runs"]}
    assert set(runs) == {(a, s) for a in h["arms"] for s in (100, 101)}
    for (arm, _), r in runs.items():
        assert r["steps"] == 30 and r["diagnostics"] is None and 0 < r["test_acc"] <= 1
        assert (r["boundary_step"] is not None) == (arm == "pause_metric")
    p = result["summary"]["primary"]
    assert p["verdict"] == VC.verdict(p["ci95"]) and p["seeds"] == [100, 101]
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Confirmatory") and "not results" in md and "**Primary outcome**" in md
    assert f"**{p['verdict'].capitalize()}**" in md and "Holm [" in md
    # resuming trains nothing; --report-only rewrites the same table from the JSON
    assert "0 to run" in _finish(_start(script, out, "--confirmatory"))
    assert len((tmp_path / "vit_confirmatory_quick_runs.jsonl").read_text().splitlines()) == 6
    saved = out.with_suffix(".md").read_text()  # the resumed run wrote its own header
    out.with_suffix(".md").unlink()
    assert "to run" not in _finish(_start(script, out, "--confirmatory", "--report-only"))
    assert out.with_suffix(".md").read_text() == saved
