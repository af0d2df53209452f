"""Shared helpers of the benchmark scripts: header (machine, versions, date, seeds), statistics, saving.

Record keeping: a script always writes its newest results under the canonical name (``results/effect.json`` ...),
so the docs link to the newest numbers; files already there are first moved, not overwritten, to
``results/history/<name>_<their date><suffix>`` (:func:`archive_previous`). Raw per-run records (``*_runs.jsonl``)
are only ever appended to.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VERSIONED = ("torch", "lightning", "timm", "torchvision", "numpy", "scipy", "lit-early-phase")


# ------------------------------------------------------------------------------------------------------------
# header
def utc_now() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_version(package: str) -> str:
    """Installed version of ``package`` or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def git_state() -> dict[str, Any]:
    """Commit of the working tree and whether it has uncommitted changes (``None`` outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """Platform, processor, CPU count, Python version, load average and the accelerator (if any)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        info["load_average_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        info["load_average_1_5_15min"] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover - depends on the machine
        info["cuda"] = None
    return info


def header(script: str, *, mode: str, seeds: Sequence[int] | None, config: dict[str, Any], **extra: Any) -> dict:
    """The record that heads every result file: what ran, where, with which versions, seeds and settings.

    Args:
        script: path of the script relative to the repository root.
        mode: ``"full"`` or ``"quick"`` (quick numbers are smoke tests, not figures).
        seeds: the seeds used (``None`` where none apply).
        config: the exact configuration.
        **extra: more fields (threads, budgets...).
    """
    return {
        "script": script,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": mode,
        "date_utc": utc_now(),
        "machine": machine(),
        "versions": {p: package_version(p) for p in VERSIONED},
        "git": git_state(),
        "seeds": None if seeds is None else list(seeds),
        "config": config,
        **extra,
    }


def header_markdown(h: dict[str, Any]) -> list[str]:
    """Bullet lines describing a header (for the top of every Markdown table)."""
    m = h["machine"]
    load = m.get("load_average_1_5_15min")
    lines = [
        f"- Produced by `{h['command']}` ({h['mode']} mode) on {h['date_utc']}.",
        f"- Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['processor']}), Python {m['python']}"
        + (f", accelerator {m['cuda']}" if m.get("cuda") else ", no accelerator")
        + (f"; load average at the start {load[0]} / {load[1]} / {load[2]} (1/5/15 min)." if load else "."),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items()) + ".",
        f"- Git: {h['git']['commit']}{' (uncommitted changes)' if h['git']['dirty'] else ''}.",
    ]
    if h.get("seeds") is not None:
        lines.append(f"- Seeds: {h['seeds']}.")
    if h["mode"] == "quick":
        lines.append("- **Quick mode: a smoke test of the script. These numbers are not results; do not quote them.**")
    return lines


# ------------------------------------------------------------------------------------------------------------
# statistics
def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value, nan for none)."""
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval (``nan`` bounds for fewer than 2 values)."""
    from scipy import stats

    a = np.asarray(list(values), dtype=float)
    n = a.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(a.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(a.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """``a - b`` paired element-wise (by seed): mean, t-interval, p-value, per-pair counts and the sign.

    ``sign`` is ``"+"`` when the interval lies above 0, ``"-"`` below 0, ``"0"`` when it contains 0.
    """
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, lo, hi = t_interval(d, level)
    p = math.nan
    if d.size >= 2 and np.any(d != d[0]):
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    sign = "0" if math.isnan(lo) or lo <= 0 <= hi else ("+" if lo > 0 else "-")
    return {
        "n": int(d.size),
        "mean_diff": mean,
        "ci95": [lo, hi],
        "p_value": p,
        "sign": sign,
        "pairs_better": int((d > 0).sum()),
        "pairs_equal": int((d == 0).sum()),
        "pairs_worse": int((d < 0).sum()),
        "diffs": [float(x) for x in d],
    }


def ratio_stats(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    """Per-pair ratios ``num/den`` (interleaved repeats): mean ± std, 95 % t-interval and the ratio of means."""
    r = np.asarray(numerators, dtype=float) / np.asarray(denominators, dtype=float)
    mean, lo, hi = t_interval(r)
    return {
        "ratios": [float(x) for x in r],
        "mean": mean,
        "std": mean_std(r)[1],
        "ci95": [lo, hi],
        "ratio_of_means": float(np.mean(numerators) / np.mean(denominators)),
    }


def quiet_trainer(*, steps: int, callbacks: list, **kw: Any) -> Any:
    """A Lightning ``Trainer`` for a benchmark fit of ``steps`` optimizer steps and nothing else.

    No logger, checkpoints, progress bar, model summary or sanity check; ``kw`` adds the run's own settings
    (``accelerator``, ``devices``, ``precision``, ``limit_val_batches``, ``strategy``, ...).
    """
    import lightning as L

    return L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **kw,
    )


# ------------------------------------------------------------------------------------------------------------
# output
def quiet() -> None:
    """Silence Lightning's info lines and the usual warnings (benchmarks print their own progress)."""
    import lightning.pytorch  # noqa: F401  (it sets its loggers' levels on import: import first, then override)

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lit_early_phase"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _date_tag(path: Path) -> str:
    """The date of an existing result (from its JSON header, else the file's mtime) as ``YYYYMMDD-HHMMSS``."""
    json_path = path.with_suffix(".json")
    try:
        date = json.loads(json_path.read_text())["header"]["date_utc"]
        return dt.datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d-%H%M%S")
    except (OSError, KeyError, ValueError, TypeError):
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y%m%d-%H%M%S")


def archive_previous(stem: Path, suffixes: Sequence[str] = (".json", ".md", ".png")) -> list[Path]:
    """Move existing ``stem.<suffix>`` files to ``stem.parent/history/<stem.name>_<date><suffix>``.

    Returns:
        The paths the old files were moved to (empty when there was nothing to keep).
    """
    existing = [stem.with_suffix(s) for s in suffixes if stem.with_suffix(s).exists()]
    if not existing:
        return []
    tag = _date_tag(existing[0])
    history = stem.parent / "history"
    history.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in existing:
        target = history / f"{stem.name}_{tag}{path.suffix}"
        n = 1
        while target.exists():
            n += 1
            target = history / f"{stem.name}_{tag}-{n}{path.suffix}"
        shutil.move(str(path), target)
        moved.append(target)
    return moved


def write_results(stem: Path, result: dict[str, Any], markdown: str) -> list[Path]:
    """Keep old records (see :func:`archive_previous`), then write ``stem.json`` and ``stem.md``.

    Returns:
        Where earlier results were moved.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    moved = archive_previous(stem)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    return moved


def replace_between(path: Path, name: str, text: str) -> bool:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    Returns:
        Whether the markers were found (the file is left alone otherwise).
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if not path.exists():
        return False
    content = path.read_text()
    i, j = content.find(begin), content.find(end)
    if i < 0 or j < i:
        return False
    path.write_text(content[: i + len(begin)] + "\n" + text.rstrip("\n") + "\n" + content[j:])
    return True


def pct(x: float, digits: int = 2) -> str:
    """A share as a percentage (``nan`` kept)."""
    return "nan" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}"


def signed_pp(x: float, digits: int = 2) -> str:
    """A difference of shares in percentage points with its sign."""
    return "nan" if x is None or math.isnan(x) else f"{100 * x:+.{digits}f}"
