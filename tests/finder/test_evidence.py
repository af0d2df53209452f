"""Every figure the finder's rule cites is the value in its results file, and every branch cites some."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lit_early_phase.finder import Evidence, decide
from lit_early_phase.finder import evidence as M

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_issue_figures_read_as_the_results_files_give_them():
    assert str(M.UCR_HLR_FIXED).endswith("-0.49 [-0.95, -0.03] pp (n = 10, resolved below 0)")
    assert M.UCR_HLR_FIXED.sign == "-" and M.UCR_HLR_METRIC.sign == "0"
    no_mixup_32k = M.EFFECT_NO_MIXUP[1]
    assert "32,000" in no_mixup_32k.what
    assert str(no_mixup_32k).endswith("+0.46 [+0.27, +0.65] pp (n = 5, resolved above 0)")
    assert [c.sign for c in M.DETECTION] == ["0", "0", "0"]


def _e(**kw) -> Evidence:
    base = {"planned_steps": 1000, "pilot_steps": 250, "boundary_step": 150, "mixes": True, "interference": 0.3}
    return Evidence(**(base | kw))


BRANCHES = {
    "series, no mixing": (_e(mixes=False, setting="series"), "none", {"ucr_hlr"}),
    "detector that mixes": (_e(setting="detection"), "none", {"detection_effect"}),
    "short period": (_e(boundary_step=20), "none", {"effect", "vit_period"}),
    "image, no mixing": (_e(mixes=False), "high_loss_removal", {"ucr_hlr"}),
    "low interference": (_e(interference=0.01), "alpha_boost", {"effect"}),
    "long period": (_e(), "mixup_pause", {"vit_period"}),
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


def test_the_long_period_branch_says_its_evidence_is_exploratory():
    d = decide(_e())
    assert d.uncertainty.startswith("exploratory") and not d.extrapolated
    # one of the three figures is unresolved (2,000 images), two are resolved gains (32,000 images)
    assert [c.sign for c in d.citations] == ["0", "+", "+"]
    assert math.isclose(d.citations[1].mean, 0.0117)
