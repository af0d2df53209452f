"""The measured figures behind each branch of the finder's rule, each named by its results file and JSON key.

Every figure here is a paired difference copied from a file under ``benchmarks/results/`` (the file, the keys that
lead to it and the run's commit are in the results file itself); ``tests/finder/test_evidence.py`` reads each one
back from its file and checks the copy. Differences are in the file's units: a share of test accuracy (shown in
percentage points) or mAP@0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Citation:
    """One measured figure: a paired difference, its 95 % interval and where it lies in a results file.

    Attributes:
        file: the results file, relative to the repository (``benchmarks/results/<name>.json``).
        keys: the JSON keys (and list positions) that lead from the file's top to the dict holding the figure.
        mean_key: the key of the mean difference in that dict.
        ci_key: the key of its 95 % interval.
        what: what was compared, in words (arm minus reference, setting).
        mean: the mean difference, in the file's units.
        ci95: its 95 % interval.
        n: the pairs behind it (seeds, or sets for a mean over sets).
        unit: ``"pp"`` (accuracy, a share shown ×100) or ``"mAP"``.

    Example:
        >>> str(UCR_HLR_FIXED).split(": ")[-1]
        '-0.49 [-0.95, -0.03] pp (n = 10, resolved below 0)'
    """

    file: str
    keys: tuple[str | int, ...]
    mean_key: str
    ci_key: str
    what: str
    mean: float
    ci95: tuple[float, float]
    n: int
    unit: str = "pp"

    @property
    def sign(self) -> str:
        """``"+"`` / ``"-"``: the interval lies above / below 0; ``"0"``: it contains 0 (not resolved)."""
        low, high = self.ci95
        return "+" if low > 0 else "-" if high < 0 else "0"

    def __str__(self) -> str:
        scale, digits = (100.0, 2) if self.unit == "pp" else (1.0, 3)
        lo, hi = (scale * c for c in self.ci95)
        resolved = {"+": "resolved above 0", "-": "resolved below 0", "0": "interval contains 0"}[self.sign]
        name = self.file.rsplit("/", 1)[-1]
        return (
            f"{name}: {self.what}: {scale * self.mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] {self.unit} "
            f"(n = {self.n}, {resolved})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values, with ``sign`` and the printed ``figure``."""
        return asdict(self) | {"keys": list(self.keys), "ci95": list(self.ci95), "sign": self.sign, "figure": str(self)}


def _acc(file: str, keys: tuple[str | int, ...], what: str, mean: float, ci95: tuple[float, float], n: int) -> Citation:
    return Citation(f"benchmarks/results/{file}.json", keys, "mean_diff", "ci95", what, mean, ci95, n)


def _effect(i: int, size: str, arm: str, label: str, mean: float, ci95: tuple[float, float]) -> Citation:
    keys = ("summary", "per_size", i, "vs_mixup", arm)
    return _acc("effect", keys, f"ResNet, {size} images, {label} - always Mixup", mean, ci95, 5)


def _vit(i: int, size: str, arm: str, label: str, mean: float, ci95: tuple[float, float]) -> Citation:
    keys = ("summary", "per_size", i, "vs_mixup", arm)
    return _acc("vit_period", keys, f"small ViT, {size} images, {label} - always Mixup", mean, ci95, 5)


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
)

# ---- short periods on images (effect.json: ResNet, 1000 steps; vit_period.json: small ViT, 600 steps) ----
_METRIC_2 = "Mixup Pause (metric boundary, 2 % of the run)"
EFFECT_PAUSE_METRIC = (
    _effect(0, "2,000", "pause_metric", _METRIC_2, 0.00024, (-0.005481, 0.005961)),
    _effect(1, "8,000", "pause_metric", _METRIC_2, -0.00058, (-0.003519, 0.002359)),
    _effect(2, "32,000", "pause_metric", _METRIC_2, 0.00052, (-0.002477, 0.003517)),
)
EFFECT_PAUSE_5 = (
    _effect(0, "2,000", "pause_short", "Mixup Pause (fixed 5 %)", 0.00176, (-0.003788, 0.007308)),
    _effect(1, "8,000", "pause_short", "Mixup Pause (fixed 5 %)", 0.0004, (-0.003064, 0.003864)),
    _effect(2, "32,000", "pause_short", "Mixup Pause (fixed 5 %)", -0.00164, (-0.004926, 0.001646)),
)
VIT_PAUSE_5 = (
    _vit(0, "2,000", "pause_5", "Mixup Pause (fixed 5 %)", 0.00602, (-0.006506, 0.018546)),
    _vit(1, "32,000", "pause_5", "Mixup Pause (fixed 5 %)", -0.00722, (-0.017679, 0.003239)),
)
#: no Mixup against always Mixup on the ResNet: a resolved gain at 32,000 images, a resolved loss at 8,000
EFFECT_NO_MIXUP = (
    _effect(1, "8,000", "none", "no Mixup", -0.00966, (-0.01245, -0.00687)),
    _effect(2, "32,000", "none", "no Mixup", 0.00458, (0.002666, 0.006494)),
)

# ---- a long period (vit_period.json: the metric boundary ended at 18-20 % of the run) ----
VIT_PAUSE_LONG = (
    _vit(0, "2,000", "pause_metric", "Mixup Pause (metric boundary, 18 % of the run)", 0.00702, (-0.007921, 0.021961)),
    _vit(1, "32,000", "pause_metric", "Mixup Pause (metric boundary, 20 % of the run)", 0.0117, (0.003288, 0.020112)),
    _vit(1, "32,000", "pause_20", "Mixup Pause (fixed 20 %)", 0.01308, (0.00158, 0.02458)),
)

# ---- Alpha Boost (effect.json: the only setting where it was trained) ----
EFFECT_ALPHA_BOOST = (
    _effect(0, "2,000", "alpha_boost", "Alpha Boost", 0.001, (-0.003729, 0.005729)),
    _effect(1, "8,000", "alpha_boost", "Alpha Boost", -0.00164, (-0.003445, 0.000165)),
    _effect(2, "32,000", "alpha_boost", "Alpha Boost", 0.00098, (-0.000894, 0.002854)),
)


def _det(pair: str, what: str, mean: float, ci95: tuple[float, float]) -> Citation:
    return Citation(
        "benchmarks/results/detection_effect.json",
        ("summary", "paired", pair),
        "mean_diff",
        "ci95",
        f"Faster R-CNN on the tree crowns, {what}, final val",
        mean,
        ci95,
        3,
        unit="mAP",
    )


# ---- detection (detection_effect.json: one detector, one data set, 3 seeds) ----
DETECTION = (
    _det("mixup_pause-always_mixup", "Mixup Pause - always Mixup", 0.005371, (-0.082809, 0.093551)),
    _det("mixup_pause-no_mixup", "Mixup Pause - no Mixup", -0.053671, (-0.117256, 0.009913)),
    _det("always_mixup-no_mixup", "always Mixup - no Mixup", -0.059042, (-0.197307, 0.079223)),
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
    *EFFECT_ALPHA_BOOST,
    *DETECTION,
)
