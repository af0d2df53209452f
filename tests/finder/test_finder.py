"""The strategy finder: its rule on hand-made evidence, the pilot on the shipped classifier, and the CLI."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase import keys as K
from lit_early_phase.__main__ import main
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.finder import EnlightenmentFinder, Evidence, decide
from lit_early_phase.finder import rule as R
from lit_early_phase.finder.evidence import UCR_HLR_FIXED
from lit_early_phase.reporting.figure import figure_data


def _evidence(**kw) -> Evidence:
    base = {"planned_steps": 1000, "pilot_steps": 250, "boundary_step": 100, "mixes": True, "interference": 0.3}
    return Evidence(**(base | kw))


def test_the_rule_branch_by_branch():
    share_steps = math.ceil(R.SHORT_SHARE * 1000)
    assert decide(_evidence(boundary_step=share_steps - 1)).strategy == "none"
    assert decide(_evidence(boundary_step=share_steps)).strategy == "mixup_pause"
    assert decide(_evidence(mixes=False)).strategy == "high_loss_removal"
    # the kinds of setting where the measured evidence says "don't": time series (HLR), a detector that mixes
    assert decide(_evidence(mixes=False, setting="series")).strategy == "none"
    assert decide(_evidence(setting="detection")).strategy == "none"
    # a series module that mixes, or a text module, goes on to the image branches, flagged as an extrapolation
    assert (lambda d: (d.strategy, d.extrapolated))(decide(_evidence(setting="series"))) == ("mixup_pause", True)
    boost = decide(_evidence(interference=R.LOW_INTERFERENCE / 2))
    assert boost.strategy == "alpha_boost" and boost.extrapolated
    # not reached within the pilot: the pilot's length is a lower bound of the share
    long = decide(_evidence(boundary_step=None, pilot_steps=250))
    assert long.strategy == "mixup_pause" and "did not reach" in long.reason
    # a pilot that ended before the boundary is no evidence of a short period, however short it was
    unfinished = decide(_evidence(boundary_step=None, pilot_steps=20))
    assert unfinished.strategy == "mixup_pause" and "lengthen the pilot" in unfinished.reason
    # unmeasured interference does not trigger Alpha Boost
    assert decide(_evidence(interference=math.nan)).strategy == "mixup_pause"


def test_the_suggested_guard_follows_the_measured_share():
    d = decide(_evidence(boundary_step=120))  # 12 % of the run
    assert d.callback_kwargs == {"strategy": "mixup_pause", "max_duration": round(R.GUARD_FACTOR * 0.12, 2)}
    assert R.suggested_guard(0.9) == R.GUARD_BOUNDS[1]
    assert R.suggested_guard(0.0) == R.GUARD_BOUNDS[0]
    assert "12.0 %" in d.reason and "step 120 of 1000" in d.reason


def _model(**kw) -> ImageClassifier:
    return ImageClassifier("test_resnet", num_classes=10, in_chans=1, mix_seed=0, **kw)


def test_the_pilot_on_the_classifier_measures_and_leaves_the_model_alone(tmp_path):
    L.seed_everything(0)
    model = _model(mixup_alpha=0.4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finder = EnlightenmentFinder(max_pilot_steps=12, every_n_steps=3, probe_size=16)
    rec = finder.find(model, MNIST5kDataModule(batch_size=32, train_subset=256), planned_steps=100)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    e = rec.evidence
    assert e.planned_steps == 100 and e.mixes and e.pilot_steps <= 12
    checks = [h for h in rec.diagnostics if K.INTERFERENCE in h]
    assert [h["step"] for h in checks] == list(range(3, e.pilot_steps + 1, 3))
    inside = [h for h in checks if e.boundary_step is None or h["step"] <= e.boundary_step]
    assert e.interference == pytest.approx(sum(h[K.INTERFERENCE] for h in inside) / len(inside))
    assert e.dead_fraction == pytest.approx(sum(h[K.DEAD_MEAN] for h in inside) / len(inside))
    assert 0 <= e.dead_fraction_mixed <= 1
    decision = decide(e)
    assert (rec.strategy, rec.reason) == (decision.strategy, decision.reason)
    drawn = figure_data(rec.figure())
    assert "enlightenment/monitor" in drawn and K.INTERFERENCE in drawn
    assert rec.strategy in str(rec) and json.loads(json.dumps(rec.to_dict()))["evidence"]["planned_steps"] == 100
    if rec.strategy != "none":
        cb = rec.callback()
        assert isinstance(cb, EnlightenmentCallback) and cb.max_duration.value == rec.callback_kwargs["max_duration"]


def test_a_module_that_does_not_mix_gets_high_loss_removal_when_the_period_is_long(tmp_path):
    L.seed_everything(0)
    # 4 pilot steps of a 16-step plan: the monitor cannot reach 0.5 that fast, so the share is >= 25 %
    rec = EnlightenmentFinder(max_pilot_steps=4, every_n_steps=2, probe_size=8).find(
        _model(), MNIST5kDataModule(batch_size=16, train_subset=64), planned_steps=16
    )
    assert not rec.evidence.mixes
    assert rec.evidence.boundary_step is None and rec.evidence.period_share == pytest.approx(4 / 16)
    assert rec.strategy == "high_loss_removal"
    assert rec.callback().strategy_arg == "high_loss_removal"


def test_the_find_command_on_a_recipe(tmp_path, capsys):
    out = tmp_path / "finder"
    args = ["find", "--config", "demo_fashion_mnist", "--max-pilot-steps", "6", "--every-n-steps", "3",
            "--out", str(out), "--trainer.max_steps", "60", "--trainer.logger", "false",
            "--data", "MNIST5kDataModule", "--data.batch_size", "16", "--data.train_subset", "128",
            "--data.val_size", "32", "--data.num_workers", "0", "--data.persistent_workers", "false"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    saved = json.loads((out / "finder.json").read_text())
    assert saved["evidence"]["planned_steps"] == 60 and saved["evidence"]["pilot_steps"] <= 6
    assert (out / "finder.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"EnlightenmentFinder recommends: {saved['strategy']}" in printed and "period_share" in printed


@pytest.mark.parametrize("recipe", ["ucr_gunpoint_hlr", "ucr_basicmotions_hlr"])
def test_the_find_command_says_none_for_the_ucr_recipes_and_names_the_evidence(recipe, tmp_path, capsys):
    out = tmp_path / "finder"
    args = ["find", "--config", recipe, "--max-pilot-steps", "8", "--every-n-steps", "2", "--out", str(out),
            "--trainer.logger", "false", "--data.num_workers", "0"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    saved = json.loads((out / "finder.json").read_text())
    assert saved["strategy"] == "none" and saved["callback_kwargs"] == {}
    assert saved["evidence"]["setting"] == "series" and not saved["evidence"]["mixes"]
    cited = {(c["file"], c["keys"][-1]): c for c in saved["citations"]}
    assert set(cited) == {
        ("benchmarks/results/ucr_hlr.json", "hlr_fixed"),
        ("benchmarks/results/ucr_hlr.json", "hlr_metric"),
    }
    fixed = cited[("benchmarks/results/ucr_hlr.json", "hlr_fixed")]
    assert fixed["raw_sign"] == "-" and fixed["sign"] == "0" and fixed["mean"] == UCR_HLR_FIXED.mean
    assert fixed["holm_ci"] == list(UCR_HLR_FIXED.holm_ci) and not fixed["resolved"]
    assert "in-sample" in saved["uncertainty"]
    printed = capsys.readouterr().out
    assert "EnlightenmentFinder recommends: none (train as usual, no strategy)" in printed
    assert "ucr_hlr.json: fixed High-Loss Removal" in printed and "-0.49 [-0.95, -0.03] pp raw" in printed
    assert "raw interval below 0, not resolved after Holm over 2 comparisons" in printed
    assert "uncertainty: measured: ten UCR/UEA sets" in printed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"pilot_fraction": 0.0}, "pilot_fraction"), ({"max_pilot_steps": 0}, "max_pilot_steps"),
     ({"every_n_steps": 0}, "every_n_steps")],
)  # fmt: skip
def test_bad_finder_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnlightenmentFinder(**kwargs)


def test_planned_steps_must_be_positive():
    with pytest.raises(ValueError, match="planned_steps"):
        EnlightenmentFinder().find(_model(), planned_steps=0)
