"""The finder's rule: from a pilot's evidence to a strategy or ``"none"``, each branch with its measured figures.

Pure Python (no Lightning, no torch), so the rule can be read, tested and re-applied to saved evidence
(``benchmarks/finder_check.py`` does, for every setting of the effect sweeps). Each :class:`Decision` carries the
figures it rests on (:mod:`lit_early_phase.finder.evidence`: results file, keys, mean, raw 95 % interval and the
interval adjusted by Holm over its sweep; "resolved" means resolved after Holm) and a sentence on how sure it is.
The rule was written from those same results, so its agreement with them is
in-sample; ``finder_check.py --out-of-sample`` checks it on a setting that set none of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lit_early_phase.finder import evidence as M
from lit_early_phase.finder.evidence import Citation

Choice = Literal["mixup_pause", "alpha_boost", "high_loss_removal", "none"]
#: the kind of setting, as the pilot reads it from the model and data: the rule's evidence differs per kind
Setting = Literal["image", "series", "detection", "text"]

#: Below this share of the planned run, the period is "too short to matter". Measured: no pause shorter than 10 %
#: of the run gained anywhere here - the ResNet sweep (benchmarks/results/effect.md: metric boundary at 2 %, fixed
#: 5 %; -0.16 to +0.18 pp, no raw interval excludes 0) and the ViT sweep (vit_period.md: fixed 1, 2, 5 %; -0.72 to
#: +0.60 pp, no raw interval excludes 0) - while at 32k images the ViT's fixed 20 % pause and its metric boundary
#: (median 20 %) measured the largest means (+1.31 and +1.17 pp, raw intervals above 0, but NOT resolved after Holm
#: over the sweep's 12 comparisons: ``finder.evidence.VIT_PAUSE_LONG`` holds their Holm intervals). So the threshold
#: separates raw signals, not resolved effects. In-sample: any value between 0.02 and 0.17 gives the same answers
#: on these sweeps, so their agreement with the rule does not test it (``finder_check.py --out-of-sample`` does).
SHORT_SHARE = 0.10
#: Mixup gradient interference inside the period (as the pilot measures it: training clean, the probe mixed)
#: below which the rule leaves the measured range and recommends Alpha Boost, the paper's large-scale regime where
#: interference is small. Every value measured here was far above it (finder_check.md: 0.24-0.79 in the pilots'
#: periods; vit_period.md: 0.55-0.62, means over the first 20 % of the Mixup Pause runs). No setting here measured
#: a raw gain for Alpha Boost, let alone one resolved after Holm (effect.md), so this branch is an extrapolation,
#: and the recommendation says so.
LOW_INTERFERENCE = 0.05
#: The guard suggested with the metric boundary: the measured share times this factor, within the bounds. The
#: upper bound is the longest pause measured here without a loss (ViT 20 %: +0.91 and +1.31 pp; ResNet 50 %: -0.2
#: to -0.8 pp). The factor gives the monitor room past the pilot's boundary; from a share of 13 % on, the 0.2 cap
#: applies (as the default callback's guard).
GUARD_FACTOR = 1.5
GUARD_BOUNDS = (SHORT_SHARE, 0.2)


@dataclass(frozen=True)
class Evidence:
    """What a pilot run measured.

    Attributes:
        planned_steps: optimizer steps of the run the user plans.
        pilot_steps: optimizer steps the pilot trained.
        boundary_step: the step at which the monitor reached the threshold (``None``: not within the pilot).
        mixes: whether the module is configured to mix (Mixup or CutMix α > 0).
        interference: mean Mixup gradient interference over the checks inside the period (NaN: not measured).
        dead_fraction: mean dead-activation fraction of the clean probe inside the period (NaN: no layers).
        dead_fraction_mixed: the same for the mixed probe.
        benr: mean BENR of the checks inside the period.
        setting: ``"image"``, ``"series"`` (a 1-D series backbone or UCR/UEA data), ``"detection"`` or ``"text"``.

    Example:
        >>> e = Evidence(planned_steps=600, pilot_steps=130, boundary_step=110, mixes=True)
        >>> round(e.period_share, 3)
        0.183
    """

    planned_steps: int
    pilot_steps: int
    boundary_step: int | None
    mixes: bool
    interference: float = math.nan
    dead_fraction: float = math.nan
    dead_fraction_mixed: float = math.nan
    benr: float = math.nan
    setting: Setting = "image"

    @property
    def period_share(self) -> float:
        """The period's share of the planned run (a lower bound, ``pilot_steps / planned_steps``, if not reached)."""
        step = self.boundary_step if self.boundary_step is not None else self.pilot_steps
        return step / max(1, self.planned_steps)

    @property
    def revival(self) -> float:
        """Dead fraction clean minus mixed: how many more units Mixup keeps active (the paper's revival)."""
        return self.dead_fraction - self.dead_fraction_mixed

    def to_dict(self) -> dict[str, Any]:
        """Plain values, with the derived ``period_share`` and ``revival``."""
        return asdict(self) | {"period_share": self.period_share, "revival": self.revival}


@dataclass(frozen=True)
class Decision:
    """The rule's answer.

    Attributes:
        strategy: ``"mixup_pause"``, ``"alpha_boost"``, ``"high_loss_removal"`` or ``"none"`` (train as usual,
            no strategy).
        reason: one sentence with the numbers that decided.
        callback_kwargs: ``EnlightenmentCallback`` arguments to use (empty for ``"none"``).
        extrapolated: the decision lies outside what this repository's benchmarks measured.
        citations: the measured figures behind the branch (results file, keys, mean, raw and Holm intervals).
        uncertainty: how sure the branch is: seeds, settings, what is resolved after Holm, in-sample or not.

    Example:
        >>> Decision("none", "the period ended at 2 % of the run", {}).callback_kwargs
        {}
    """

    strategy: Choice
    reason: str
    callback_kwargs: dict[str, Any]
    extrapolated: bool = False
    citations: tuple[Citation, ...] = ()
    uncertainty: str = ""


def suggested_guard(share: float) -> float:
    """``max_duration`` to use with the metric boundary: ``GUARD_FACTOR`` × the share, within ``GUARD_BOUNDS``.

    Args:
        share: the period's measured share of the planned run.

    Returns:
        The guard as a share of the run, rounded to 0.01.

    Example:
        >>> suggested_guard(0.12), suggested_guard(0.01), suggested_guard(0.5)
        (0.18, 0.1, 0.2)
    """
    low, high = GUARD_BOUNDS
    return round(min(high, max(low, GUARD_FACTOR * share)), 2)


def decide(evidence: Evidence) -> Decision:
    """Recommend a strategy, or ``"none"``, from a pilot's evidence (the rule of docs/diagnostics.md).

    First match wins; every branch cites its figures (:mod:`~lit_early_phase.finder.evidence`):

    1. a time-series module that does not mix -> ``"none"``: High-Loss Removal, the strategy for a module that
       does not mix, measured no gain on the ten UCR/UEA sets (``ucr_hlr.json``: fixed 5 % below 0 raw, metric
       boundary's interval contains 0; neither resolved after Holm over the 2 means over sets);
    2. a detector that mixes -> ``"none"``: Mixup Pause measured no gain over always Mixup, and no Mixup was
       ahead of both, not resolved (``detection_effect.json``, 3 seeds);
    3. the monitor reached the threshold before :data:`SHORT_SHARE` of the run -> ``"none"``: no pause that short
       measured a gain (``effect.json``, ``vit_period.json``); a pilot that ended before the boundary does not
       count;
    4. a module that does not mix -> ``"high_loss_removal"``, extrapolated (it was measured only on series,
       where it measured no gain: the fixed period's raw interval lies below 0, not resolved after Holm);
    5. interference inside the period below :data:`LOW_INTERFERENCE` -> ``"alpha_boost"``, extrapolated;
    6. otherwise -> ``"mixup_pause"``, metric boundary, guard :func:`suggested_guard`: the largest measured gain
       here (the small ViT at 32,000 images: raw interval above 0, not resolved after Holm), exploratory.

    A series module that mixes, or a text module, goes on to the image branches, flagged ``extrapolated``.

    Args:
        evidence: the pilot's measurements.

    Returns:
        A :class:`Decision`.

    Example:
        >>> decide(Evidence(planned_steps=1000, pilot_steps=250, boundary_step=20, mixes=True)).strategy
        'none'
        >>> d = decide(Evidence(planned_steps=600, pilot_steps=150, boundary_step=100, mixes=True, interference=0.6))
        >>> d.strategy, d.callback_kwargs
        ('mixup_pause', {'strategy': 'mixup_pause', 'max_duration': 0.2})
        >>> series = Evidence(planned_steps=300, pilot_steps=75, boundary_step=50, mixes=False, setting="series")
        >>> decide(series).strategy
        'none'
    """
    share = evidence.period_share
    where = (
        f"the monitor reached the threshold at step {evidence.boundary_step} of {evidence.planned_steps} planned "
        f"({100 * share:.1f} % of the run)"
        if evidence.boundary_step is not None
        else f"the monitor did not reach the threshold within the {evidence.pilot_steps}-step pilot "
        f"(>= {100 * share:.1f} % of the run"
        + (", a lower bound only: lengthen the pilot to measure the period)" if share < SHORT_SHARE else ")")
    )
    if evidence.setting == "series" and not evidence.mixes:
        return Decision(
            "none",
            f"{where}; a time-series module that does not mix: High-Loss Removal, its candidate, measured no gain "
            "on the ten UCR/UEA sets here (fixed 5 %: mean over sets below 0, raw interval below 0; metric "
            "boundary: raw interval contains 0; neither resolved after Holm over "
            f"{M.UCR_HLR_FIXED.holm_m} comparisons). Train as usual.",
            {},
            citations=(M.UCR_HLR_FIXED, M.UCR_HLR_METRIC),
            uncertainty="measured: ten UCR/UEA sets x 5 seeds, one model (FCN, 300 steps); no gain measured: the "
            "fixed arm's mean over sets is below 0 raw, the metric arm's interval contains 0, and neither is "
            f"resolved after Holm over {M.UCR_HLR_FIXED.holm_m} comparisons; in-sample (this branch was written "
            "from these sets).",
        )
    if evidence.setting == "detection" and evidence.mixes:
        return Decision(
            "none",
            f"{where}; a detector that mixes: Mixup Pause measured no gain over always Mixup on the tree crowns, "
            "and training without Mixup was ahead of both in every seed, not resolved. Train as usual (trying "
            "without Mixup is the measured lead, not a resolved result).",
            {},
            citations=M.DETECTION,
            uncertainty="exploratory: one detector, one data set, 3 seeds; every raw interval contains 0, none "
            f"resolved after Holm over {M.DETECTION[0].holm_m} comparisons; in-sample.",
        )
    if share < SHORT_SHARE and evidence.boundary_step is not None:  # a bound from an unfinished pilot proves nothing
        return Decision(
            "none",
            f"{where}: under {100 * SHORT_SHARE:.0f} %, where no pause measured an effect here (ResNet: "
            "metric boundary and fixed 5 %; ViT: fixed 5 %; every raw interval contains 0); train as you planned. "
            "Dropping Mixup instead is not supported either: it gained at 32,000 ResNet images and lost at 8,000, "
            f"both resolved after Holm over {M.EFFECT_NO_MIXUP[0].holm_m} comparisons.",
            {},
            citations=(*M.EFFECT_PAUSE_METRIC, *M.EFFECT_PAUSE_5, *M.VIT_PAUSE_5, *M.EFFECT_NO_MIXUP),
            extrapolated=evidence.setting != "image",
            uncertainty="5 seeds per setting, two image models; no short pause's raw interval excludes 0 (none is "
            "resolved after Holm either); the "
            f"{SHORT_SHARE:.2f} threshold is in-sample (any value between 0.02 and 0.17 gives the same answers on "
            "these sweeps).",
        )
    guard = suggested_guard(share)
    if not evidence.mixes:
        return Decision(
            "high_loss_removal",
            f"{where}, and the module does not mix: remove the highest-loss samples during the period. "
            "Extrapolated: High-Loss Removal was measured here only on time series, where it measured no gain "
            "(the fixed period's raw interval lies below 0, not resolved after Holm).",
            {"strategy": "high_loss_removal", "max_duration": guard},
            extrapolated=True,
            citations=(M.UCR_HLR_FIXED, M.UCR_HLR_METRIC),
            uncertainty=f"extrapolated: no measurement of High-Loss Removal on {evidence.setting} here; the only "
            "one (time series) measured no gain (the fixed period's raw interval lies below 0, not resolved after "
            "Holm).",
        )
    if math.isfinite(evidence.interference) and evidence.interference < LOW_INTERFERENCE:
        return Decision(
            "alpha_boost",
            f"{where}; Mixup interference in the period is {evidence.interference:.3f} < {LOW_INTERFERENCE} (the "
            "paper's large-scale regime, outside what this repository measured): mix harder during the period.",
            {"strategy": "alpha_boost", "max_duration": guard},
            extrapolated=True,
            citations=M.EFFECT_ALPHA_BOOST,
            uncertainty="extrapolated: Alpha Boost measured no gain here (ResNet, interference 0.29-0.37; no raw "
            "interval excludes 0, none resolved after Holm); "
            "the branch is the paper's claim for low interference, never measured here.",
        )
    interference = "not measured" if not math.isfinite(evidence.interference) else f"{evidence.interference:.3f}"
    return Decision(
        "mixup_pause",
        f"{where}; Mixup interference in the period is {interference}: pause Mixup until the boundary "
        f"(guard {guard:.2f} of the run).",
        {"strategy": "mixup_pause", "max_duration": guard},
        extrapolated=evidence.setting != "image",
        citations=(*M.VIT_CONFIRMATORY, *M.VIT_PAUSE_LONG),
        uncertainty=f"confirmed on one setting only (pre-registered, a small ViT from scratch at 32,000 images, "
        f"10 seeds): Mixup Pause - always Mixup {M.VIT_CONFIRMATORY[0].mean * 100:+.2f} pp; in the same runs no "
        f"Mixup at all did better still (Mixup Pause - no Mixup {M.VIT_CONFIRMATORY[1].mean * 100:+.2f} pp, "
        "exploratory secondary): if Mixup is optional for you, try training without it. Elsewhere exploratory "
        "(the sweep's gains at 2,000 / 32,000 images are not resolved after Holm over "
        f"{M.VIT_PAUSE_LONG[1].holm_m} comparisons); the thresholds are in-sample.",
    )
