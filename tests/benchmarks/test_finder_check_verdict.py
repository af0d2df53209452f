"""finder_check.py's verdict (in-sample and out-of-sample): Holm over the check's settings; "unresolved" is not
agreement; the OOS mode runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as C
import finder_check as F  # a script, not a package
from test_benchmarks_quick import NEEDS_FASHION_MNIST, ROOT, _finish, _start


def test_the_verdict_of_one_setting_is_the_sign_of_its_paired_interval():
    ahead = {"mixup": [0.80, 0.81, 0.82], "pause_metric": [0.83, 0.84, 0.85]}  # +3 pp in every seed
    assert F.verdict("mixup_pause", ahead)["verdict"] == "yes"
    none = F.verdict("none", ahead)
    assert none["verdict"] == "no" and none["resolved_better_arms"] == ["pause_metric"]
    noisy = {"mixup": [0.80, 0.85, 0.82], "pause_metric": [0.83, 0.81, 0.83]}
    assert F.verdict("none", noisy)["verdict"] == "unresolved"  # absence of evidence is not agreement
    assert F.verdict("too_short", noisy)["recommended_arm"] == "mixup"  # the old name in saved results
    assert F.verdict("alpha_boost", noisy)["verdict"] == "not evaluated"
    assert F.verdict("none", noisy)["difference"]["mean_diff"] == pytest.approx((0.80 + 0.85 + 0.82 - 2.47) / 3)


def test_a_raw_interval_above_0_is_yes_only_when_holm_over_the_settings_resolves_it():
    # the same setting twice: alone its raw interval is above 0 (m = 1, "yes"); with four noisy settings beside
    # it (m = 5) Holm widens it past 0 and the verdict is "unresolved"
    ahead = {"mixup": [0.80, 0.81, 0.82], "pause_metric": [0.815, 0.83, 0.83]}
    alone = F.verdict("mixup_pause", ahead)
    assert alone["difference"]["sign"] == "+" and alone["holm"]["m"] == 1 and alone["verdict"] == "yes"
    noisy = {"mixup": [0.80, 0.85, 0.82], "pause_metric": [0.83, 0.81, 0.83]}
    rows = F.holm_verdicts([F.raw_verdict("mixup_pause", ahead)] + [F.raw_verdict("none", noisy)] * 4)
    assert rows[0]["holm"]["m"] == 5 and rows[0]["difference"]["sign"] == "+"
    assert rows[0]["holm"]["ci_holm"][0] < 0 < rows[0]["difference"]["ci95"][0]
    assert rows[0]["verdict"] == "unresolved" and rows[0]["raw_better_arms"] == []


def _in_sample_rows() -> list[dict]:
    strategy = {"resnet": "none", "vit": "mixup_pause"}
    rows = [F._row(k, n, [_pilot(strategy[k])], F.outcome(k, n)["values"]) for k, n in F.SETTINGS]
    return F.holm_verdicts(rows)


def test_in_sample_no_verdict_is_resolved_after_holm_over_the_5_settings():
    rows = _in_sample_rows()
    assert [r["verdict"] for r in rows] == ["unresolved"] * 5
    assert {r["holm"]["m"] for r in rows} == {5}
    vit = rows[4]
    assert (vit["kind"], vit["size"]) == ("vit", 32000)
    # raw: +1.17 [+0.33, +2.01] pp, as vit_period.md; after Holm over the check's 5 settings it contains 0
    assert 100 * vit["difference"]["mean_diff"] == pytest.approx(1.17, abs=5e-3)
    assert vit["difference"]["ci95"][0] > 0 and vit["holm"]["ci_holm"][0] < 0 and not vit["holm"]["resolved"]
    # recomputed from the diffs with the benchmarks' Holm, independent of holm_verdicts
    h = C.holm({str(i): r["difference"]["diffs"] for i, r in enumerate(rows)})
    assert vit["holm"]["ci_holm"] == pytest.approx(h["4"]["ci_holm"])
    assert [100 * x for x in vit["holm"]["ci_holm"]] == pytest.approx([-0.22, 2.56], abs=5e-3)


def test_in_sample_no_mixup_at_32k_is_above_the_plan_raw_not_after_the_checks_holm():
    rows = _in_sample_rows()
    resnet_32k = rows[2]
    assert resnet_32k["raw_better_arms"] == ["none"]  # effect.py's "none": no Mixup
    assert resnet_32k["resolved_better_arms"] == [] and resnet_32k["holm_better"]["m"] == 27
    means = resnet_32k["arm_means"]
    assert 100 * means["none"] - 100 * means["mixup"] == pytest.approx(0.458, abs=1e-3)


def test_the_saved_in_sample_report_is_the_holm_verdict():
    saved = json.loads((ROOT / "benchmarks" / "results" / "finder_check.json").read_text())
    assert [r["verdict"] for r in saved["summary"]] == [r["verdict"] for r in _in_sample_rows()]
    table = (ROOT / "benchmarks" / "results" / "finder_check.md").read_text()
    assert "exploratory, in-sample" in table
    assert "after Holm over 5 settings): unresolved 5 of 5 settings" in table
    assert "+1.17 [+0.33, +2.01] Holm [-0.22, +2.56]" in table


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
    assert "out-of-sample (planned in docs/diagnostics.md)" in table and s["holm"]["m"] == 1


def test_the_agreement_counts_the_docs_quote_are_re_derived_after_holm():
    saved = json.loads((ROOT / "benchmarks" / "results" / "finder_check.json").read_text())
    assert F.agreement(saved) == {"settings": 5, "after_holm": 0, "raw": 1}


def test_no_majority_among_the_pilots_is_no_recommendation():
    evidence = {"boundary_step": 10, "period_share": 0.1, "interference": 0.5, "revival": 0.0}
    ps = [{"strategy": s, "evidence": evidence, "seconds": 1.0} for s in ("none", "mixup_pause", "alpha_boost")]
    values = {"mixup": [0.1, 0.2], "pause_metric": [0.2, 0.3]}
    assert F._row("vit", 8000, ps, values)["recommendation"] == "no majority"
    assert F.verdict("no majority", values)["verdict"] == "not evaluated"
    ps[2]["strategy"] = "mixup_pause"  # two of three: a majority
    assert F._row("vit", 8000, ps, values)["recommendation"] == "mixup_pause"
