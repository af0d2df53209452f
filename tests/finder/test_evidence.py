"""Every figure the finder's rule cites is the value in its results file, and every branch cites some."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

from lit_early_phase.finder import Evidence, decide
from lit_early_phase.finder import evidence as M

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common as C  # noqa: E402
import _comparisons as K  # noqa: E402
import detection_effect  # noqa: E402
import ucr_hlr  # noqa: E402


def _lookup(citation: M.Citation) -> dict:
    node = json.loads((ROOT / citation.file).read_text())
    for key in citation.keys:
        node = node[key]
    return node


@pytest.mark.parametrize("citation", M.ALL, ids=lambda c: f"{Path(c.file).stem}:{'/'.join(map(str, c.keys))}")
def test_each_cited_figure_is_the_value_in_its_results_file(citation):
    node = _lookup(citation)
    assert citation.mean == pytest.approx(node[citation.mean_key], abs=1e-6)
    assert list(citation.ci95) == pytest.approx(node[citation.ci_key], abs=1e-6)
    if "n" in node:
        assert citation.n == node["n"]
    if "per_size" in citation.keys:  # the per-size row it names is the one its words name
        row = json.loads((ROOT / citation.file).read_text())["summary"]["per_size"][citation.keys[2]]
        assert f"{row['size']:,}" in citation.what


def _holm_as_the_report(citation: M.Citation) -> dict:
    """The citation's comparison after Holm, computed by the code that writes its results report (same family)."""
    result = json.loads((ROOT / citation.file).read_text())
    stem = Path(citation.file).stem
    if stem in ("effect", "vit_period"):
        row = result["summary"]["per_size"][citation.keys[2]]
        return K.result_holm(result)[(row["size"], citation.keys[4])]
    if stem == "vit_confirmatory":  # the primary outcome alone (m = 1); the secondary ones, Holm over two
        s = result["summary"]
        if citation.keys[1] == "primary":
            p = s["primary"]
            return p | {"ci_holm": p["ci95"], "m": 1, "resolved": p["verdict"] == "confirmed"}
        return C.holm({k: d["diffs"] for k, d in s["secondary"].items()})[citation.keys[2]]
    if stem == "ucr_hlr":
        return ucr_hlr.comparisons(result)[f"over sets|{citation.keys[2]}"]
    assert stem == "detection_effect"
    return detection_effect.comparisons(result)[citation.keys[2]]


@pytest.mark.parametrize("citation", M.ALL, ids=lambda c: f"{Path(c.file).stem}:{'/'.join(map(str, c.keys))}")
def test_each_cited_holm_figure_is_the_one_its_report_computes(citation):
    x = _holm_as_the_report(citation)
    assert citation.mean == pytest.approx(x["mean_diff"], abs=1e-6)
    assert list(citation.holm_ci) == pytest.approx(x["ci_holm"], abs=1e-6)
    assert citation.holm_m == x["m"]
    assert citation.resolved is bool(x["resolved"])
    assert citation.sign == C.holm_sign(x)


def test_the_issue_figures_read_as_the_results_files_give_them():
    fixed = str(M.UCR_HLR_FIXED)
    assert fixed.endswith(
        "-0.49 [-0.95, -0.03] pp raw, Holm [-1.04, +0.06] "
        "(n = 10; raw interval below 0, not resolved after Holm over 2 comparisons)"
    )
    assert (M.UCR_HLR_FIXED.raw_sign, M.UCR_HLR_FIXED.sign, M.UCR_HLR_METRIC.sign) == ("-", "0", "0")
    no_mixup_32k = M.EFFECT_NO_MIXUP[1]
    assert "32,000" in no_mixup_32k.what
    assert str(no_mixup_32k).endswith(
        "+0.46 [+0.27, +0.65] pp raw, Holm [+0.05, +0.86] (n = 5; resolved above 0 after Holm over 15 comparisons)"
    )
    assert [c.sign for c in M.DETECTION] == ["0", "0", "0"]
    vit_32k = M.VIT_PAUSE_LONG[1]
    assert str(vit_32k).endswith(
        "+1.17 [+0.33, +2.01] pp raw, Holm [-0.61, +2.95] "
        "(n = 5; raw interval above 0, not resolved after Holm over 12 comparisons)"
    )


def test_only_holm_resolved_figures_are_called_resolved():
    for c in M.ALL:
        text = str(c)
        assert ("resolved above" in text or "resolved below" in text) == c.resolved
    assert [c for c in M.ALL if c.resolved] == [*M.EFFECT_NO_MIXUP, *M.VIT_CONFIRMATORY]


def _e(**kw) -> Evidence:
    base = {"planned_steps": 1000, "pilot_steps": 250, "boundary_step": 150, "mixes": True, "interference": 0.3}
    return Evidence(**(base | kw))


BRANCHES = {
    "series, no mixing": (_e(mixes=False, setting="series"), "none", {"ucr_hlr"}),
    "detector that mixes": (_e(setting="detection"), "none", {"detection_effect"}),
    "short period": (_e(boundary_step=20), "none", {"effect", "vit_period"}),
    "image, no mixing": (_e(mixes=False), "high_loss_removal", {"ucr_hlr"}),
    "low interference": (_e(interference=0.01), "alpha_boost", {"effect"}),
    "long period": (_e(), "mixup_pause", {"vit_confirmatory", "vit_period"}),
}


@pytest.mark.parametrize("name", list(BRANCHES))
def test_every_branch_names_its_evidence_and_its_uncertainty(name):
    evidence, strategy, files = BRANCHES[name]
    d = decide(evidence)
    assert d.strategy == strategy
    assert d.citations and all(c in M.ALL for c in d.citations)
    assert {Path(c.file).stem for c in d.citations} == files
    assert d.uncertainty and ("in-sample" in d.uncertainty or "extrapolated" in d.uncertainty)
    assert (d.callback_kwargs == {}) == (strategy == "none")


def test_the_long_period_branch_cites_the_confirmatory_run_and_what_beat_it():
    d = decide(_e())
    assert d.uncertainty.startswith("confirmed on one setting only") and not d.extrapolated
    assert "+1.48 pp" in d.uncertainty and "-2.99 pp" in d.uncertainty and "try training without it" in d.uncertainty
    assert "not resolved after Holm over 12 comparisons" in d.uncertainty and "in-sample" in d.uncertainty
    # the confirmatory primary (resolved, m = 1) and its secondary, then the exploratory sweep (none resolved)
    assert [c.sign for c in d.citations] == ["+", "-", "0", "0", "0"]
    assert [c.raw_sign for c in d.citations] == ["+", "-", "0", "+", "+"]
    assert d.citations[0].holm_m == 1 and math.isclose(d.citations[0].mean, 0.01484)


#: words that call a difference a loss
LOSS = re.compile(r"\blost\b|\ba loss\b", re.I)


def test_no_branch_calls_a_figure_resolved_or_a_loss_that_holm_did_not_resolve():
    for name, (evidence, _, _) in BRANCHES.items():
        d = decide(evidence)
        text = f"{d.reason} {d.uncertainty}"
        if not any(c.resolved for c in d.citations):
            assert "resolved below" not in text and "resolved above" not in text and "both resolved" not in text, name
        for bare in ("is resolved over", "resolved at 32,000", "interval excludes 0;"):
            assert bare not in text, name
        # a loss is a difference resolved below 0 after Holm: a raw interval below 0 is "no gain measured"
        if not any(c.sign == "-" for c in d.citations):
            assert not LOSS.search(text), name
    # the rule's docstring summarises the branches; the figures it names (UCR, detector, short pauses, ViT) are
    # none resolved below 0
    assert not LOSS.search(decide.__doc__)


def test_the_series_branch_says_no_gain_was_measured_in_holm_words():
    d = decide(_e(mixes=False, setting="series"))
    assert d.strategy == "none"
    assert "no gain" in d.reason and "neither resolved after Holm over 2 comparisons" in d.reason
    assert "lost" not in d.reason
