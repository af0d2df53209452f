"""Every result figure quoted in the prose of README.md, benchmarks/README.md and docs/*.md equals its results file.

``QUOTED`` is the table: (page, results name, quoted text). The quoted text holds its figures as ``{format:key.path}``
fields, read from ``benchmarks/results/<name>.json`` (a dotted path; integers index lists) and written the way the page
writes them; a path ``holm.<key>.<field>`` reads instead the Holm-adjusted comparison ``<key>`` that the script's own
report computes from that file (``HOLM``: the same function, so the same family; for ``finder_check`` the report's
agreement counts after Holm and raw). The rendered text must occur in the page's prose (whitespace joined, Unicode minus
read as ``-``). The generated table copies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` are checked by
``test_benchmark_provenance.py`` instead. A coverage guard finds every figure that looks like a result (an interval
``[a, b]``, a signed ``pp`` difference, a signed decimal, a ratio with 3-4 decimals) and fails unless it lies inside a
quoted text of the table or is in ``ALLOWED`` (the paper's own numbers, configuration values), so a new figure cannot go
unchecked.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from typing import Any

import pytest
from docs_prose import RESULTS, ROOT, pages, prose

sys.path.insert(0, str(ROOT / "benchmarks"))
import _comparisons as K  # the benchmark scripts are files, not a package
import detection_effect
import finder_check
import ucr_hlr

# results name -> the function its script's report builds its Holm family with (keys: "<size>|<arm>" for the sweeps,
# "<set>|<arm>" and "over sets|<arm>" for UCR, the difference's name for the detector); for the finder check, its
# agreement counts after Holm and raw
HOLM = {
    "finder_check": finder_check.agreement,
    "effect": K.result_holm,
    "vit_period": K.result_holm,
    "ucr_hlr": ucr_hlr.comparisons,
    "detection_effect": detection_effect.comparisons,
}

# (page, figure as written, why it is not from a results file)
ALLOWED = (
    ("docs/benchmarks.md", "+0.10 pp", "the paper's CIFAR-10 gain (METHOD.md)"),
    ("docs/benchmarks.md", "+1.57 pp", "the paper's Tiny-ImageNet gain (METHOD.md)"),
    ("docs/benchmarks.md", "-0.69 pp", "the paper's overlong-pause loss (METHOD.md)"),
    ("docs/scale.md", "+0.10 pp", "the paper's CIFAR-10 gain (METHOD.md), the recipe's target"),
    ("docs/scale.md", "+1.57 pp", "the paper's Tiny-ImageNet gain (METHOD.md), the recipe's target"),
    ("docs/scale.md", "+0.4 pp", "the paper's ImageNet Alpha Boost gain (METHOD.md), the recipe's target"),
    ("docs/timeseries.md", "0.002", "a learning rate in a configuration example"),
    ("docs/llm.md", "0.125", "HighLossRemoval(fraction=0.125), an argument in an example"),
)
FIGURE = re.compile(
    r"\[[+\-]?\d+(?:\.\d+)?, [+\-]?\d+(?:\.\d+)?\]"  # an interval
    r"|(?<![\w.])[+\-±]\s?\d+(?:\.\d+)? ?pp\b"  # a signed difference in percentage points
    r"|(?<![\w.])\d\.\d{3,4}(?![\w.])"  # a ratio or a score with 3-4 decimals
    r"|(?<![\w.])[+\-]\d+\.\d+"  # a signed decimal
)
FIELD = re.compile(r"\{(\w+):([^{}]+)\}")


def _signed(x: float, d: int) -> str:
    return f"{x:+.{d}f}"


FORMATS = {
    "pp": lambda x: _signed(100 * x, 2),  # a difference of shares in percentage points
    "pp1": lambda x: _signed(100 * x, 1),
    "ci": lambda v: f"[{_signed(100 * v[0], 2)}, {_signed(100 * v[1], 2)}]",
    "ci1": lambda v: f"[{_signed(100 * v[0], 1)}, {_signed(100 * v[1], 1)}]",
    "pd": lambda d: (
        f"{_signed(100 * d['mean_diff'], 2)} [{_signed(100 * d['ci95'][0], 2)}, {_signed(100 * d['ci95'][1], 2)}]"
    ),
    "npp": lambda x: _signed(-100 * x, 2),  # the same difference taken the other way round
    "f1": lambda x: f"{x:.1f}",
    "f2": lambda x: f"{x:.2f}",
    "sf2": lambda x: _signed(x, 2),
    "sf4": lambda x: _signed(x, 4),
    "sci4": lambda v: f"[{_signed(v[0], 4)}, {_signed(v[1], 4)}]",
    "f3": lambda x: f"{x:.3f}",
    "f4": lambda x: f"{x:.4f}",
    "sf3": lambda x: _signed(x, 3),
    "fci3": lambda v: f"[{v[0]:.3f}, {v[1]:.3f}]",
    "fci4": lambda v: f"[{v[0]:.4f}, {v[1]:.4f}]",
    "sci3": lambda v: f"[{_signed(v[0], 3)}, {_signed(v[1], 3)}]",
    "onep4": lambda x: f"{1 + x:.4f}",  # 1 + a share: a ratio
    "int": lambda x: f"{x:d}",  # a count, such as Holm's m
    "num": lambda s: re.search(r"\d+\.\d+", s).group(),  # the decimal a recorded message holds
    "revival3": lambda pilots: f"{max(abs(p['evidence']['revival']) for p in pilots):.3f}",  # largest |revival|
}

E = "summary.per_size.{}.vs_mixup.{}"  # effect.json / vit_period.json: paired difference to always-Mixup
DET = "summary.paired.{}"  # detection_effect.json
TOG = "toggle.comparisons.{}"  # overhead.json: the within-fit comparisons
WH = "whole.comparisons.{}"  # overhead.json: the whole per-step cost (0: batch 128, 1: the fast step)
DIAG = "measurements.{}.ratio_to_plain.{}"  # diagnostics_overhead.json
VD = "summary.per_size.{}.diagnostics.mixup.{}.{}"  # vit_period.json: diagnostics under always-Mixup, mean / std
UCR = "summary.overall.{}"
DETO = "models.fasterrcnn_mobilenet_v3_large_fpn.ratio"
IMG = "measurement.ratio"


def e(size: int, arm: str, fmt: str = "pd", key: str = "") -> str:
    """A field of a paired difference to always-Mixup (effect.json, vit_period.json) at size index ``size``."""
    path = E.format(size, arm) + (f".{key}" if key else "")
    return "{" + f"{fmt}:{path}" + "}"


def h(key: str, fmt: str = "ci", field: str = "ci_holm") -> str:
    """A field of the Holm-adjusted comparison ``key`` the script's report computes (``HOLM``), by default its
    interval."""
    return "{" + f"{fmt}:holm.{key}.{field}" + "}"


def eh(size: int, arm: str, fmt: str = "ci", field: str = "ci_holm") -> str:
    """A Holm field of the sweep comparison of ``arm`` to always-Mixup at ``size`` training images."""
    return h(f"{size}|{arm}", fmt, field)


def det(pair: str) -> str:
    """A paired difference of mAP in detection_effect.json, as ``+0.005 [-0.083, +0.094]``."""
    return f"{{sf3:{DET.format(pair)}.mean_diff}} {{sci3:{DET.format(pair)}.ci95}}"


def vd(size: int, key: str) -> str:
    """A ViT diagnostic under always-Mixup (vit_period.json) as ``mean ± std``."""
    return f"{{f3:{VD.format(size, key, 0)}}} ± {{f3:{VD.format(size, key, 1)}}}"


def ucr(arm: str) -> str:
    """The mean of per-set differences in ucr_hlr.json with its interval over sets, in pp."""
    return f"{{pp:{UCR.format(arm)}.mean_of_set_diffs}} {{ci:{UCR.format(arm)}.ci95_over_sets}}"


PAUSES_32K = ", ".join(e(1, arm, "pp", "mean_diff") for arm in ("pause_1", "pause_2", "pause_5", "pause_10"))
DEMO_FINAL = "final validation accuracy {f4:runs.0.final.val/acc} (val loss {f4:runs.0.final.val/loss})"
DEMO = "reached {num:runs.0.reason}; " + DEMO_FINAL
DET_ARMS = (
    "{f3:summary.arms.no_mixup.mean} ± {f3:summary.arms.no_mixup.std}, Mixup Pause "
    "{f3:summary.arms.mixup_pause.mean} ± {f3:summary.arms.mixup_pause.std}, always-Mixup "
    "{f3:summary.arms.always_mixup.mean} ± {f3:summary.arms.always_mixup.std}"
)
AGREE = (
    "{int:holm.after_holm} of {int:holm.settings} settings after Holm over the check's {int:holm.settings} settings "
    "({int:holm.raw} of {int:holm.settings} with a raw interval above 0)"
)
UCR_BOTH = (ucr("hlr_metric"), ucr("hlr_fixed"))

QUOTED: tuple[tuple[str, str, str], ...] = (
    # README.md, the evidence paragraph
    (
        "README.md",
        "vit_period",
        f"gained {e(1, 'pause_metric', 'pp', 'mean_diff')} pp {e(1, 'pause_metric', 'ci', 'ci95')}",
    ),
    ("README.md", "vit_period", f"and {e(1, 'pause_20')} with a fixed 20 % pause"),
    ("README.md", "vit_period", f"p = {e(1, 'pause_metric', 'f3', 'p_value')} and {e(1, 'pause_20', 'f3', 'p_value')}"),
    ("README.md", "vit_period", f"20 %: {PAUSES_32K}, {e(1, 'pause_20', 'pp', 'mean_diff')} pp"),
    (
        "README.md",
        "effect",
        f"(Mixup Pause {e(0, 'pause_metric', 'pp', 'mean_diff')}, "
        f"{e(1, 'pause_metric', 'pp', 'mean_diff')}, {e(2, 'pause_metric', 'pp', 'mean_diff')} pp",
    ),
    ("README.md", "effect", f"lost {e(1, 'pause_long')} at 8,000 images"),
    ("README.md", "effect", e(2, "none")),
    ("README.md", "ucr_hlr", f"was {UCR_BOTH[0]} pp with the metric boundary and {UCR_BOTH[1]} pp with a fixed period"),
    ("README.md", "detection_effect", f"(val mAP@0.5 {DET_ARMS};"),
    (
        "README.md",
        "vit_period",
        f"after Holm over those {eh(32000, 'pause_metric', 'int', 'm')} comparisons their intervals contain 0 "
        f"(Holm {eh(32000, 'pause_metric')} and {eh(32000, 'pause_20')})",
    ),
    ("README.md", "finder_check", f"in-sample, it agreed with the sweeps' outcome in {AGREE}"),
    (
        "README.md",
        "overhead",
        f"hooks take {{f1:{TOG.format(5)}.hook_us_per_step.0}}-{{f1:{TOG.format(0)}.hook_us_per_step.0}} µs per step",
    ),
    (
        "README.md",
        "overhead",
        f"is {{f4:{WH.format(0)}.ratio.mean}} {{fci4:{WH.format(0)}.ratio.ci95}} at batch 128 and "
        f"{{f4:{WH.format(1)}.ratio.mean}} {{fci4:{WH.format(1)}.ratio.ci95}} at a fast step",
    ),
    (
        "README.md",
        "vit_confirmatory",
        "always-Mixup: {pp:summary.primary.mean_diff} pp {ci:summary.primary.ci95}, better in "
        "{int:summary.primary.pairs_better} of 10 seeds",
    ),
    (
        "README.md",
        "vit_confirmatory",
        "Mixup Pause - no Mixup {pp:summary.secondary.pause_metric-none.mean_diff} pp "
        "{ci:summary.secondary.pause_metric-none.ci95}",
    ),
    (
        "docs/llm.md",
        "bf16_cpu",
        "the matmul took {f3:matmul.ratio_bf16_over_fp32.mean} {fci3:matmul.ratio_bf16_over_fp32.ci95} of its float32 "
        "time (10 pairs), the LoRA step {f3:lm_step.ratio_bf16_over_fp32.mean} "
        "{fci3:lm_step.ratio_bf16_over_fp32.ci95} (4 pairs",
    ),
    (
        "docs/llm.md",
        "llm_hlr",
        "baseline - HLR {sf4:compare.loss_reduction.mean_diff} {sci4:compare.loss_reduction.ci95} in nats "
        "({int:compare.loss_reduction.pairs_better} of 3 seeds better",
    ),
    ("docs/llm.md", "llm_hlr", "unchanged, {pp:compare.token_acc_gain.mean_diff} {ci:compare.token_acc_gain.ci95} pp"),
    (
        "docs/llm.md",
        "llm_hlr",
        "plain loop was {f3:step_time.ratio.mean} {fci3:step_time.ratio.ci95} (4 pairs)",
    ),
    (
        "docs/diagnostics.md",
        "vit_confirmatory",
        "measured Mixup Pause - always Mixup {pp:summary.primary.mean_diff} {ci:summary.primary.ci95} pp, and in the "
        "same runs no Mixup did better still (Mixup Pause - no Mixup "
        "{pp:summary.secondary.pause_metric-none.mean_diff} {ci:summary.secondary.pause_metric-none.ci95} pp",
    ),
    (
        "docs/diagnostics.md",
        "finder_oos",
        "Mixup Pause beat always Mixup by {pp:summary.difference.mean_diff} {ci:summary.difference.ci95} pp, "
        "{int:summary.difference.pairs_better} of 3 seeds: **yes**",
    ),
    (
        "README.md",
        "finder_oos",
        "always-Mixup by {pp:summary.difference.mean_diff} {ci:summary.difference.ci95} pp in "
        "{int:summary.difference.pairs_better} of 3 seeds",
    ),
    (
        "docs/benchmarks.md",
        "finder_oos",
        "always Mixup {pp:summary.difference.mean_diff} {ci:summary.difference.ci95} "
        "({int:summary.difference.pairs_better}:{int:summary.difference.pairs_worse} seeds): yes",
    ),
    (
        "docs/benchmarks.md",
        "llm_hlr",
        "a plain transformers + peft loop {f3:step_time.ratio.mean} {fci3:step_time.ratio.ci95} per step",
    ),
    # docs/benchmarks.md, At a glance and the prose around the generated tables
    (
        "docs/benchmarks.md",
        "vit_confirmatory",
        "| {pp:summary.primary.mean_diff} {ci:summary.primary.ci95} ({int:summary.primary.pairs_better}:"
        "{int:summary.primary.pairs_worse} seeds): confirmed;",
    ),
    ("docs/benchmarks.md", "effect", ", ".join(e(i, "pause_metric") for i in range(3)) + ": none resolved"),
    ("docs/benchmarks.md", "effect", ", ".join(e(i, "alpha_boost") for i in range(3)) + ": none resolved"),
    (
        "docs/benchmarks.md",
        "effect",
        f"{e(0, 'pause_long')}, {e(1, 'pause_long')} Holm {eh(8000, 'pause_long')}, {e(2, 'pause_long')}: worse at "
        f"8,000 images (0 of 5 seeds better; resolved after Holm over the sweep's {eh(8000, 'pause_long', 'int', 'm')} "
        "comparisons), the other two not resolved",
    ),
    ("docs/benchmarks.md", "effect", f"no Mixup beat the plan (always-Mixup) by {e(2, 'none')}"),
    (
        "docs/benchmarks.md",
        "finder_check",
        "the ViT at 32,000 images, {pd:summary.4.difference}, Holm {ci:summary.4.holm.ci_holm}",
    ),
    (
        "docs/benchmarks.md",
        "vit_period",
        f"{e(0, 'pause_metric')} (not resolved), {e(1, 'pause_metric')} Holm {eh(32000, 'pause_metric')} (5:0 seeds, "
        f"p = {e(1, 'pause_metric', 'f3', 'p_value')} uncorrected): neither resolved after Holm over the sweep's "
        f"{eh(32000, 'pause_metric', 'int', 'm')} comparisons",
    ),
    (
        "docs/benchmarks.md",
        "vit_period",
        f"{e(0, 'pause_20')} (not resolved), {e(1, 'pause_20')} Holm {eh(32000, 'pause_20')} (5:0 seeds, "
        f"p = {e(1, 'pause_20', 'f3', 'p_value')} uncorrected, not resolved after Holm",
    ),
    ("docs/benchmarks.md", "vit_period", f"at 32,000 images {PAUSES_32K}: no dose-response"),
    (
        "docs/benchmarks.md",
        "ucr_hlr",
        f"metric boundary {UCR_BOTH[0]} (not resolved); fixed 5 % period {UCR_BOTH[1]} "
        f"Holm {h('over sets|hlr_fixed', 'ci1')} (raw interval below 0, not resolved after Holm over the headline "
        f"family of the {h('over sets|hlr_fixed', 'int', 'm')} means over sets); every set a tie (raw, and after Holm "
        f"over the {h('ACSF1|hlr_fixed', 'int', 'm')} per-set comparisons)",
    ),
    (
        "docs/benchmarks.md",
        "detection_effect",
        f"vs always-Mixup {det('mixup_pause-always_mixup')}, vs no Mixup {det('mixup_pause-no_mixup')}",
    ),
    ("docs/benchmarks.md", "finder_check", f"outcome | agrees in {AGREE}"),
    (
        "docs/benchmarks.md",
        "overhead",
        f"{{f4:{WH.format(0)}.ratio.mean}} {{fci4:{WH.format(0)}.ratio.ci95}} (goal 1.01: missed); "
        f"{{f4:{WH.format(1)}.ratio.mean}} {{fci4:{WH.format(1)}.ratio.ci95}} (goal 1.02: missed)",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"| {{f4:{WH.format(0)}.ratio.mean}} {{fci4:{WH.format(0)}.ratio.ci95}} | missed |",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"| {{f4:{WH.format(1)}.ratio.mean}} {{fci4:{WH.format(1)}.ratio.ci95}} | missed |",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"{{f1:{TOG.format(5)}.hook_us_per_step.0}}-{{f1:{TOG.format(0)}.hook_us_per_step.0}} µs per step; met in 3",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"the hooks take {{f1:{TOG.format(5)}.hook_us_per_step.0}}-{{f1:{TOG.format(0)}.hook_us_per_step.0}} µs per "
        f"step; met for",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"adds {{sf2:{WH.format(0)}.extra_ms_per_step}} ms to a {{f2:{WH.format(0)}.plain_ms.0}} ms step at batch "
        f"128 and {{sf2:{WH.format(1)}.extra_ms_per_step}} ms to a {{f2:{WH.format(1)}.plain_ms.0}} ms step at batch 8",
    ),
    ("docs/benchmarks.md", "overhead", "| {f3:ddp.ratio.mean} ± {f3:ddp.ratio.std}× the samples/s"),
    (
        "docs/benchmarks.md",
        "overhead",
        f"| {{f4:{TOG.format(6)}.ratio.mean}} {{fci4:{TOG.format(6)}.ratio.ci95}}; 1.00 forward call per step | met",
    ),
    (
        "docs/benchmarks.md",
        "overhead",
        f"{{f4:{TOG.format(6)}.ratio.mean}} {{fci4:{TOG.format(6)}.ratio.ci95}}, 1.00 forward call",
    ),
    (
        "docs/benchmarks.md",
        "diagnostics_overhead",
        " / ".join(
            f"{{f3:{DIAG.format('test_resnet', k)}.mean}} {{fci3:{DIAG.format('test_resnet', k)}.ci95}}"
            for k in ("every_50", "every_10")
        )
        + " (`test_resnet`); "
        + " / ".join(
            f"{{f3:{DIAG.format('vit', k)}.mean}} {{fci3:{DIAG.format('vit', k)}.ci95}}"
            for k in ("every_50", "every_10")
        )
        + " (ViT)",
    ),
    ("docs/benchmarks.md", "detection_overhead", f"{{f3:{DETO}.mean}} ± {{f3:{DETO}.std}} {{fci3:{DETO}.ci95}}"),
    (
        "docs/benchmarks.md",
        "detection_overhead",
        f"| {{f3:{DETO}.mean}} ± {{f3:{DETO}.std}} {{fci3:{DETO}.ci95}} (`detection_overhead.md`) | met |",
    ),
    (
        "docs/benchmarks.md",
        "image_folder_throughput",
        f"{{f3:{IMG}.mean}} ± {{f3:{IMG}.std}} {{fci3:{IMG}.ci95}}: the mean misses",
    ),
    (
        "docs/benchmarks.md",
        "vit_period",
        f"(p = {e(1, 'pause_metric', 'f3', 'p_value')} and {e(1, 'pause_20', 'f3', 'p_value')})",
    ),
    (
        "docs/benchmarks.md",
        "vit_period",
        f"over those {eh(32000, 'pause_metric', 'int', 'm')} (Holm intervals {eh(32000, 'pause_metric')} and "
        f"{eh(32000, 'pause_20')} at 32,000 images",
    ),
    (
        "docs/benchmarks.md",
        "vit_period",
        f"pauses gave {PAUSES_32K.rsplit(', ', 1)[0]}, {e(1, 'pause_10', 'pp', 'mean_diff')} and "
        f"{e(1, 'pause_20', 'pp', 'mean_diff')} pp",
    ),
    ("docs/benchmarks.md", "demo", DEMO),
    (
        "docs/benchmarks.md",
        "effect",
        f"size**: {e(0, 'pause_metric', 'pp', 'mean_diff')}, {e(1, 'pause_metric', 'pp', 'mean_diff')} and "
        f"{e(2, 'pause_metric', 'pp', 'mean_diff')} pp, every interval containing 0 "
        f"(the widest {e(0, 'pause_metric', 'ci', 'ci95')}",
    ),
    (
        "docs/benchmarks.md",
        "effect",
        "(" + ", ".join(e(i, "pause_short", "pp", "mean_diff") for i in range(3)) + " pp, none resolved)",
    ),
    (
        "docs/benchmarks.md",
        "effect",
        f"by {e(0, 'pause_long', 'pp', 'mean_diff')} pp {e(0, 'pause_long', 'ci', 'ci95')} at 2,000 images "
        f"(not resolved), {e(1, 'pause_long', 'pp', 'mean_diff')} pp {e(1, 'pause_long', 'ci', 'ci95')} at 8,000 "
        f"(all 5 seeds worse; resolved after Holm over the sweep's {eh(8000, 'pause_long', 'int', 'm')} comparisons, "
        f"Holm {eh(8000, 'pause_long')}) and "
        f"{e(2, 'pause_long', 'pp', 'mean_diff')} pp {e(2, 'pause_long', 'ci', 'ci95')} at 32,000",
    ),
    (
        "docs/benchmarks.md",
        "effect",
        f"worth {e(1, 'none', 'npp', 'mean_diff')} pp over no Mixup at 8,000 images (no Mixup: {e(1, 'none')})",
    ),
    ("docs/benchmarks.md", "effect", f"(no Mixup: {e(2, 'none')})"),
    (
        "docs/benchmarks.md",
        "effect",
        f"underfit (both resolved after Holm over the sweep's {eh(8000, 'none', 'int', 'm')} comparisons: "
        f"{eh(8000, 'none')} and {eh(32000, 'none')};",
    ),
    (
        "docs/benchmarks.md",
        "finder_check",
        "the 32,000-image one is not resolved over the finder check's {int:summary.2.holm_better.m} comparisons",
    ),
    ("docs/benchmarks.md", "effect", f"no Mixup's {e(0, 'none')} is not resolved"),
    (
        "docs/benchmarks.md",
        "effect",
        "(" + ", ".join(e(i, "alpha_boost", "pp", "mean_diff") for i in range(3)) + " pp, none resolved)",
    ),
    (
        "docs/benchmarks.md",
        "effect",
        f"setting ({e(2, 'alpha_boost', 'pp', 'mean_diff')} pp {e(2, 'alpha_boost', 'ci', 'ci95')})",
    ),
    # docs/detection.md
    (
        "docs/detection.md",
        "detection_effect",
        "| always detection Mixup (α 0.2) | {f3:summary.arms.always_mixup.mean} ± {f3:summary.arms.always_mixup.std} |",
    ),
    (
        "docs/detection.md",
        "detection_effect",
        "| Mixup Pause (default callback) | {f3:summary.arms.mixup_pause.mean} ± {f3:summary.arms.mixup_pause.std} |",
    ),
    (
        "docs/detection.md",
        "detection_effect",
        "| no Mixup | {f3:summary.arms.no_mixup.mean} ± {f3:summary.arms.no_mixup.std} |",
    ),
    (
        "docs/detection.md",
        "detection_effect",
        "always-Mixup: " + det("mixup_pause-always_mixup").replace("} {", "}, 95 % interval {", 1),
    ),
    (
        "docs/detection.md",
        "detection_effect",
        f"no Mixup: {det('mixup_pause-no_mixup')}, worse in 3 of 3 seeds but not resolved (Holm-adjusted over the "
        f"three differences of `detection_effect.md`: {h('mixup_pause-no_mixup', 'sci3')};",
    ),
    (
        "docs/detection.md",
        "detection_effect",
        f"Always-Mixup - no Mixup: {det('always_mixup-no_mixup')}",
    ),
    (
        "docs/detection.md",
        "detection_overhead",
        f"ratio {{f3:{DETO}.mean}} ± {{f3:{DETO}.std}}, 95 % interval {{fci3:{DETO}.ci95}}, 7 pairs",
    ),
    # docs/diagnostics.md, the ViT sweep
    (
        "docs/diagnostics.md",
        "vit_period",
        f"20 % of the run, {e(1, 'pause_20', 'pp', 'mean_diff')} pp {e(1, 'pause_20', 'ci', 'ci95')} "
        f"(better in 5 of 5 seeds, p = {e(1, 'pause_20', 'f3', 'p_value')})",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"boundary, {e(1, 'pause_metric', 'pp', 'mean_diff')} pp {e(1, 'pause_metric', 'ci', 'ci95')} "
        f"(5 of 5, p = {e(1, 'pause_metric', 'f3', 'p_value')})",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"after Holm over the sweep's {eh(32000, 'pause_20', 'int', 'm')} comparisons their intervals contain 0 "
        f"({eh(32000, 'pause_20')} and {eh(32000, 'pause_metric')})",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"({e(0, 'pause_20', 'pp', 'mean_diff')} and {e(0, 'pause_metric', 'pp', 'mean_diff')} pp",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"gave {PAUSES_32K.rsplit(', ', 1)[0]}, {e(1, 'pause_10', 'pp', 'mean_diff')} and "
        f"{e(1, 'pause_20', 'pp', 'mean_diff')} pp",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        "gave "
        + ", ".join(e(0, a, "pp", "mean_diff") for a in ("pause_1", "pause_2", "pause_5"))
        + f" and {e(0, 'pause_10', 'pp', 'mean_diff')} pp, none resolved",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        " ".join(
            (
                f"{vd(0, 'interference_early')} (2k) vs {vd(1, 'interference_early')} (32k) in the first 20 % of the",
                f"run and {vd(0, 'interference_late')} vs {vd(1, 'interference_late')} after it",
            )
        ),
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"({{f3:{VD.format(0, 'dead_fraction_early', 0)}}} vs {{f3:{VD.format(1, 'dead_fraction_early', 0)}}}, "
        f"then {{f3:{VD.format(0, 'dead_fraction_late', 0)}}} vs {{f3:{VD.format(1, 'dead_fraction_late', 0)}}})",
    ),
    # docs/diagnostics.md, the finder: the figures each branch of the rule rests on
    (
        "docs/diagnostics.md",
        "ucr_hlr",
        f"fixed 5 % {UCR_BOTH[1]} pp, raw interval below 0, Holm {h('over sets|hlr_fixed')}; metric boundary "
        f"{UCR_BOTH[0]} pp, Holm {h('over sets|hlr_metric')}; neither resolved after Holm over the headline family of "
        f"the {h('over sets|hlr_fixed', 'int', 'm')} means over sets",
    ),
    (
        "docs/diagnostics.md",
        "detection_effect",
        f"{det('mixup_pause-always_mixup')} mAP@0.5), and no Mixup was ahead of both in every seed, not resolved "
        f"(always Mixup - no Mixup {det('always_mixup-no_mixup')} raw, Holm over "
        f"{h('always_mixup-no_mixup', 'int', 'm')} differences {h('always_mixup-no_mixup', 'sci3')})",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"metric boundary {e(1, 'pause_metric', 'pp', 'mean_diff')} to {e(2, 'pause_metric', 'pp', 'mean_diff')} pp, "
        f"fixed 5 % {e(2, 'pause_short', 'pp', 'mean_diff')} to {e(0, 'pause_short', 'pp', 'mean_diff')} pp;",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"fixed 5 % {e(1, 'pause_5', 'pp', 'mean_diff')} and {e(0, 'pause_5', 'pp', 'mean_diff')} pp; no raw "
        "interval excludes 0",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"no Mixup gained {e(2, 'none')} pp at 32,000 ResNet images and lost {e(1, 'none')} pp at 8,000 "
        f"(`effect.json`; both resolved after Holm over the sweep's {eh(8000, 'none', 'int', 'm')} comparisons)",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"{e(1, 'alpha_boost', 'pp', 'mean_diff')} to {e(0, 'alpha_boost', 'pp', 'mean_diff')} pp, no raw interval "
        "excludes 0, at interference",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"metric boundary {e(1, 'pause_metric')} pp, fixed 20 % {e(1, 'pause_20')} pp: raw intervals above 0, not "
        f"resolved after Holm over the sweep's {eh(32000, 'pause_metric', 'int', 'm')} comparisons, Holm "
        f"{eh(32000, 'pause_metric')} and {eh(32000, 'pause_20')}); at 2,000 images {e(0, 'pause_metric')} pp",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"(ResNet: the metric boundary at 2 % and a fixed 5 %, {e(2, 'pause_short', 'pp', 'mean_diff')} to "
        f"{e(0, 'pause_short', 'pp', 'mean_diff')} pp;",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"ViT: fixed 1, 2, 5 %, {e(1, 'pause_5', 'pp', 'mean_diff')} to {e(0, 'pause_5', 'pp', 'mean_diff')} pp; no "
        f"raw interval excludes 0), while the ViT's pauses of 18-20 % were ahead "
        f"({e(1, 'pause_metric', 'pp', 'mean_diff')} and {e(1, 'pause_20', 'pp', 'mean_diff')} pp at 32,000 images: "
        "raw 95 % intervals above 0, but not resolved "
        f"after Holm over the sweep's {eh(32000, 'pause_20', 'int', 'm')} comparisons",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"(ResNet: {e(1, 'alpha_boost', 'pp', 'mean_diff')} to {e(0, 'alpha_boost', 'pp', 'mean_diff')} pp)",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"(ViT: {e(0, 'pause_20', 'pp', 'mean_diff')} and {e(1, 'pause_20', 'pp', 'mean_diff')} pp)",
    ),
    ("docs/diagnostics.md", "finder_check", "it was within ±{revival3:pilots} in every pilot here"),
    # docs/diagnostics.md, the finder against the outcomes
    (
        "docs/diagnostics.md",
        "finder_check",
        "has a raw 95 % interval above 0 ({pd:summary.4.difference} pp), but after Holm over the "
        "{int:summary.4.holm.m} settings its interval contains 0 ({ci:summary.4.holm.ci_holm})",
    ),
    (
        "docs/diagnostics.md",
        "vit_period",
        f"as it does after Holm over `vit_period.md`'s {eh(32000, 'pause_metric', 'int', 'm')} comparisons",
    ),
    (
        "docs/diagnostics.md",
        "effect",
        f"beat the plan that `none` keeps ({e(2, 'none')} pp raw, resolved after Holm over `effect.md`'s "
        f"{eh(32000, 'none', 'int', 'm')} comparisons",
    ),
    (
        "docs/diagnostics.md",
        "finder_check",
        "over this check's {int:summary.2.holm_better.m} comparisons of another arm with the recommended one it is "
        "not resolved",
    ),
    # docs/timeseries.md
    (
        "docs/timeseries.md",
        "ucr_hlr",
        ucr("hlr_metric").replace("} {", "} pp {", 1) + " for the metric",
    ),
    (
        "docs/timeseries.md",
        "ucr_hlr",
        ucr("hlr_fixed").replace("} {", "} pp {", 1) + " for the fixed",
    ),
    (
        "docs/timeseries.md",
        "ucr_hlr",
        f"After Holm over the headline family, the run's {h('over sets|hlr_metric', 'int', 'm')} means over sets "
        f"(exploratory, like every sweep here; the {h('ACSF1|hlr_metric', 'int', 'm')} per-set comparisons are a "
        f"family of their own), both contain 0: {h('over sets|hlr_metric', 'ci1')} and "
        f"{h('over sets|hlr_fixed', 'ci1')}. Every set is a tie for both arms (no per-set raw interval excludes 0, and "
        f"none is resolved after Holm over the {h('ACSF1|hlr_fixed', 'int', 'm')} per-set comparisons)",
    ),
    (
        "docs/timeseries.md",
        "ucr_hlr",
        "PickupGestureWiimoteZ with the metric boundary, {pp1:summary.per_set.8.hlr_metric_vs_baseline.mean_diff} pp "
        "{ci1:summary.per_set.8.hlr_metric_vs_baseline.ci95}",
    ),
    # docs/usage.md
    ("docs/usage.md", "demo", "reached {num:runs.0.reason}"),
    ("docs/usage.md", "demo", DEMO_FINAL),
)


@cache
def result(name: str) -> dict:
    """A saved results file."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def value(data: object, path: str) -> object:
    """The value at a dotted ``path`` (integer segments index lists)."""
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


@cache
def holm(name: str) -> dict[str, dict[str, Any]]:
    """The Holm-adjusted comparisons (or, for ``finder_check``, agreement counts) the report of ``<name>.json``
    computes, by ``HOLM[name]``; tuple keys joined by ``|``."""
    return {"|".join(map(str, k)) if isinstance(k, tuple) else k: x for k, x in HOLM[name](result(name)).items()}


def field(name: str, path: str) -> object:
    """The value of a field's ``path``: in :func:`holm` for ``holm.<key>...``, else in ``<name>.json``."""
    return value(holm(name), path.removeprefix("holm.")) if path.startswith("holm.") else value(result(name), path)


def render(name: str, quoted: str) -> str:
    """``quoted`` with each ``{format:path}`` field replaced by its formatted value (:func:`field`)."""
    return FIELD.sub(lambda m: FORMATS[m.group(1)](field(name, m.group(2))), quoted)


def page_prose(page: str) -> str:
    """The prose of ``page`` (generated blocks and fenced code dropped), whitespace joined, Unicode minus as ``-``."""
    text = (ROOT / page).read_text()
    return re.sub(r"\s+", " ", prose(text).replace("\u2212", "-"))


@pytest.mark.parametrize(("page", "name", "quoted"), QUOTED, ids=[f"{p}:{n}:{i}" for i, (p, n, _) in enumerate(QUOTED)])
def test_a_quoted_figure_is_its_results_value(page, name, quoted):
    rendered = render(name, quoted)
    assert rendered in page_prose(page), f"{page} should quote {name}.json as: {rendered!r}"


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in pages()])
def test_every_result_like_figure_in_the_prose_is_in_the_table(page):
    text = page_prose(page)
    covered = [False] * len(text)
    for where, name, quoted in QUOTED:
        if where == page:
            rendered = render(name, quoted)
            for match in re.finditer(re.escape(rendered), text):
                covered[match.start() : match.end()] = [True] * (match.end() - match.start())
    allowed = {figure for where, figure, _ in ALLOWED if where == page}
    unchecked = [
        f"{m.group()!r} in ...{text[max(0, m.start() - 60) : m.end() + 30]}..."
        for m in FIGURE.finditer(text)
        if not all(covered[m.start() : m.end()]) and m.group() not in allowed
    ]
    assert not unchecked, f"{page}: figures not checked against a results file (add them to QUOTED):\n" + "\n".join(
        unchecked
    )


def test_every_allowed_figure_is_still_on_its_page():
    for page, figure, why in ALLOWED:
        assert figure in page_prose(page), f"{page} no longer quotes {figure!r} ({why}): drop it from ALLOWED"
