"""The measured figures behind each branch of the finder's rule, each named by its results file and JSON key.

Every figure here is a paired difference copied from a file under ``benchmarks/results/`` (the file, the keys that
lead to it and the run's commit are in the results file itself), with its raw 95 % interval and its interval
adjusted by Holm over the comparisons of its sweep (the family the benchmark's own report uses:
``benchmarks/_comparisons.sweep_holm`` for effect and vit_period, ``ucr_hlr.comparisons``' headline family of the
two means over sets, and the paired differences of detection_effect). ``tests/finder/test_evidence.py`` reads each
one back from its file, recomputes Holm with the benchmarks' code and checks the copy. As in the reports, a
difference is *resolved* only after Holm (adjusted p < 0.05; its Holm interval, built at the level where the
step-down stops, then excludes 0, and only then); a raw interval that excludes 0 is said as such, never as
resolved. Differences are in the file's units: a share of test accuracy (shown in percentage points) or mAP@0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Citation:
    """One measured figure: a paired difference, its raw and Holm-adjusted intervals and where it lies in a file.

    Attributes:
        file: the results file, relative to the repository (``benchmarks/results/<name>.json``).
        keys: the JSON keys (and list positions) that lead from the file's top to the dict holding the figure.
        mean_key: the key of the mean difference in that dict.
        ci_key: the key of its 95 % interval.
        what: what was compared, in words (arm minus reference, setting).
        mean: the mean difference, in the file's units.
        ci95: its 95 % interval.
        n: the pairs behind it (seeds, or sets for a mean over sets).
        holm_ci: its interval adjusted by Holm over the comparisons of its sweep (as the benchmark's report).
        holm_m: the comparisons in that family (Holm's ``m``).
        resolved: whether Holm resolved it (adjusted p < 0.05), as the benchmark's report says.
        unit: ``"pp"`` (accuracy, a share shown ×100) or ``"mAP"``.

    Example:
        >>> str(UCR_HLR_FIXED).split(": ")[-1].split(" (")[0]
        '-0.49 [-0.95, -0.03] pp raw, Holm [-1.04, +0.06]'
        >>> UCR_HLR_FIXED.status
        'raw interval below 0, not resolved after Holm over 2 comparisons'
    """

    file: str
    keys: tuple[str | int, ...]
    mean_key: str
    ci_key: str
    what: str
    mean: float
    ci95: tuple[float, float]
    n: int
    holm_ci: tuple[float, float]
    holm_m: int
    resolved: bool
    unit: str = "pp"

    @property
    def raw_sign(self) -> str:
        """``"+"`` / ``"-"``: the raw 95 % interval lies above / below 0; ``"0"``: it contains 0."""
        low, high = self.ci95
        return "+" if low > 0 else "-" if high < 0 else "0"

    @property
    def sign(self) -> str:
        """``"+"`` / ``"-"``: resolved after Holm above / below 0; ``"0"``: not resolved (the reports' marks)."""
        return ("+" if self.mean > 0 else "-") if self.resolved else "0"

    @property
    def status(self) -> str:
        """In words: resolved after Holm, or what the raw interval says and that Holm did not resolve it."""
        family = f"after Holm over {self.holm_m} comparisons"
        if self.resolved:
            return f"resolved {'above' if self.mean > 0 else 'below'} 0 {family}"
        raw = {"+": "raw interval above 0", "-": "raw interval below 0", "0": "raw interval contains 0"}
        return f"{raw[self.raw_sign]}, not resolved {family}"

    def __str__(self) -> str:
        scale, digits = (100.0, 2) if self.unit == "pp" else (1.0, 3)

        def f(x: float) -> str:
            return f"{scale * x:+.{digits}f}"

        (lo, hi), (hlo, hhi) = self.ci95, self.holm_ci
        name = self.file.rsplit("/", 1)[-1]
        return (
            f"{name}: {self.what}: {f(self.mean)} [{f(lo)}, {f(hi)}] {self.unit} raw, Holm [{f(hlo)}, {f(hhi)}] "
            f"(n = {self.n}; {self.status})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values, with ``sign`` (after Holm), ``raw_sign``, ``status`` and the printed ``figure``."""
        lists = {"keys": list(self.keys), "ci95": list(self.ci95), "holm_ci": list(self.holm_ci)}
        derived = {"sign": self.sign, "raw_sign": self.raw_sign, "status": self.status, "figure": str(self)}
        return asdict(self) | lists | derived


Interval = tuple[float, float]
#: Holm's m per results file: the comparisons each benchmark's report adjusts over (its whole sweep; for ucr_hlr its
#: headline family, the two arms' means over sets, apart from the per-set family)
EFFECT_M, VIT_M, UCR_M, DETECTION_M = 15, 12, 2, 3


def _acc(
    file: str,
    keys: tuple[str | int, ...],
    what: str,
    raw: tuple[float, Interval],
    holm: Interval,
    m: int,
    resolved: bool = False,
) -> Citation:
    mean, ci95 = raw
    return Citation(
        f"benchmarks/results/{file}.json", keys, "mean_diff", "ci95", what, mean, ci95, 5, holm, m, resolved
    )


def _effect(
    i: int, size: str, arm: str, label: str, mean: float, ci95: Interval, holm: Interval, resolved: bool = False
) -> Citation:
    keys = ("summary", "per_size", i, "vs_mixup", arm)
    what = f"ResNet, {size} images, {label} - always Mixup"
    return _acc("effect", keys, what, (mean, ci95), holm, EFFECT_M, resolved)


def _vit(i: int, size: str, arm: str, label: str, mean: float, ci95: Interval, holm: Interval) -> Citation:
    keys = ("summary", "per_size", i, "vs_mixup", arm)
    return _acc("vit_period", keys, f"small ViT, {size} images, {label} - always Mixup", (mean, ci95), holm, VIT_M)


# ---- High-Loss Removal on time series (benchmarks/results/ucr_hlr.json: FCN, 300 steps, 5 seeds per set) ----
UCR_HLR_FIXED = Citation(
    "benchmarks/results/ucr_hlr.json",
    ("summary", "overall", "hlr_fixed"),
    "mean_of_set_diffs",
    "ci95_over_sets",
    "fixed High-Loss Removal (first 5 % of the run) - baseline, mean over ten UCR/UEA sets",
    -0.004899,
    (-0.009505, -0.000293),
    10,
    (-0.010366, 0.000568),
    UCR_M,
    False,
)
UCR_HLR_METRIC = Citation(
    "benchmarks/results/ucr_hlr.json",
    ("summary", "overall", "hlr_metric"),
    "mean_of_set_diffs",
    "ci95_over_sets",
    "High-Loss Removal to the metric boundary - baseline, mean over ten UCR/UEA sets",
    -0.005618,
    (-0.014247, 0.003010),
    10,
    (-0.01586, 0.004623),
    UCR_M,
    False,
)

# ---- short periods on images (effect.json: ResNet, 1000 steps; vit_period.json: small ViT, 600 steps) ----
_METRIC_2 = "Mixup Pause (metric boundary, 2 % of the run)"
EFFECT_PAUSE_METRIC = (
    _effect(0, "2,000", "pause_metric", _METRIC_2, 0.00024, (-0.005481, 0.005961), (-0.011887, 0.012367)),
    _effect(1, "8,000", "pause_metric", _METRIC_2, -0.00058, (-0.003519, 0.002359), (-0.00681, 0.00565)),
    _effect(2, "32,000", "pause_metric", _METRIC_2, 0.00052, (-0.002477, 0.003517), (-0.005833, 0.006873)),
)
EFFECT_PAUSE_5 = (
    _effect(0, "2,000", "pause_short", "Mixup Pause (fixed 5 %)", 0.00176, (-0.003788, 0.007308), (-0.01, 0.01352)),
    _effect(1, "8,000", "pause_short", "Mixup Pause (fixed 5 %)", 0.0004, (-0.003064, 0.003864), (-0.006944, 0.007744)),
    _effect(
        2, "32,000", "pause_short", "Mixup Pause (fixed 5 %)", -0.00164, (-0.004926, 0.001646), (-0.008605, 0.005325)
    ),
)
VIT_PAUSE_5 = (
    _vit(0, "2,000", "pause_5", "Mixup Pause (fixed 5 %)", 0.00602, (-0.006506, 0.018546), (-0.020532, 0.032572)),
    _vit(1, "32,000", "pause_5", "Mixup Pause (fixed 5 %)", -0.00722, (-0.017679, 0.003239), (-0.02939, 0.01495)),
)
#: no Mixup against always Mixup on the ResNet: a loss at 8,000 images and a gain at 32,000, both resolved after
#: Holm over the sweep's 15 comparisons
EFFECT_NO_MIXUP = (
    _effect(1, "8,000", "none", "no Mixup", -0.00966, (-0.01245, -0.00687), (-0.015574, -0.003746), resolved=True),
    _effect(2, "32,000", "none", "no Mixup", 0.00458, (0.002666, 0.006494), (0.000522, 0.008638), resolved=True),
)

# ---- a long period (vit_period.json: the metric boundary ended at 18-20 % of the run) ----
_LONG_18 = "Mixup Pause (metric boundary, 18 % of the run)"
_LONG_20 = "Mixup Pause (metric boundary, 20 % of the run)"
VIT_PAUSE_LONG = (
    _vit(0, "2,000", "pause_metric", _LONG_18, 0.00702, (-0.007921, 0.021961), (-0.024652, 0.038692)),
    _vit(1, "32,000", "pause_metric", _LONG_20, 0.0117, (0.003288, 0.020112), (-0.006131, 0.029531)),
    _vit(1, "32,000", "pause_20", "Mixup Pause (fixed 20 %)", 0.01308, (0.00158, 0.02458), (-0.011296, 0.037456)),
)

# ---- the pre-registered confirmatory run (vit_confirmatory.json: the small ViT at 32,000 images, seeds 100-109) ----
_CONF = "small ViT, 32,000 images, seeds 100-109 (pre-registered)"
VIT_CONFIRMATORY = (
    # the primary outcome: one planned comparison, no multiplicity correction (m = 1), confirmed
    Citation(
        "benchmarks/results/vit_confirmatory.json",
        ("summary", "primary"),
        "mean_diff",
        "ci95",
        f"{_CONF}, Mixup Pause (metric boundary) - always Mixup, primary outcome",
        0.01484,
        (0.007056, 0.022624),
        10,
        (0.007056, 0.022624),
        1,
        True,
    ),
    # a secondary comparison of the same runs (exploratory, Holm over the plan's two secondary comparisons)
    Citation(
        "benchmarks/results/vit_confirmatory.json",
        ("summary", "secondary", "pause_metric-none"),
        "mean_diff",
        "ci95",
        f"{_CONF}, Mixup Pause (metric boundary) - no Mixup, secondary (exploratory)",
        -0.02988,
        (-0.037467, -0.022293),
        10,
        (-0.037467, -0.022293),
        2,
        True,
    ),
)

# ---- Alpha Boost (effect.json: the only setting where it was trained) ----
EFFECT_ALPHA_BOOST = (
    _effect(0, "2,000", "alpha_boost", "Alpha Boost", 0.001, (-0.003729, 0.005729), (-0.009024, 0.011024)),
    _effect(1, "8,000", "alpha_boost", "Alpha Boost", -0.00164, (-0.003445, 0.000165), (-0.005466, 0.002186)),
    _effect(2, "32,000", "alpha_boost", "Alpha Boost", 0.00098, (-0.000894, 0.002854), (-0.002992, 0.004952)),
)


def _det(pair: str, what: str, mean: float, ci95: Interval, holm: Interval) -> Citation:
    return Citation(
        "benchmarks/results/detection_effect.json",
        ("summary", "paired", pair),
        "mean_diff",
        "ci95",
        f"Faster R-CNN on the tree crowns, {what}, final val",
        mean,
        ci95,
        3,
        holm,
        DETECTION_M,
        False,
        unit="mAP",
    )


# ---- detection (detection_effect.json: one detector, one data set, 3 seeds) ----
DETECTION = (
    _det(
        "mixup_pause-always_mixup", "Mixup Pause - always Mixup", 0.005371, (-0.082809, 0.093551), (-0.151387, 0.162128)
    ),
    _det("mixup_pause-no_mixup", "Mixup Pause - no Mixup", -0.053671, (-0.117256, 0.009913), (-0.166706, 0.059363)),
    _det("always_mixup-no_mixup", "always Mixup - no Mixup", -0.059042, (-0.197307, 0.079223), (-0.304836, 0.186751)),
)

#: every citation, for the test that reads each one back from its file
ALL: tuple[Citation, ...] = (
    UCR_HLR_FIXED,
    UCR_HLR_METRIC,
    *EFFECT_PAUSE_METRIC,
    *EFFECT_PAUSE_5,
    *VIT_PAUSE_5,
    *EFFECT_NO_MIXUP,
    *VIT_PAUSE_LONG,
    *VIT_CONFIRMATORY,
    *EFFECT_ALPHA_BOOST,
    *DETECTION,
)
