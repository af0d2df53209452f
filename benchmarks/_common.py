"""Shared helpers of the benchmark scripts: header (machine, versions, date, seeds), statistics, saving.

Record keeping: a script writes its newest results under the canonical name (``results/effect.json`` ...) and the
Markdown table made from them (``results/effect.md``); earlier results are git's history, not copies here. No
script edits the docs: tests check that the tables in the docs equal what the scripts generate from the saved
JSON. Raw per-run records (``*_runs.jsonl``) are only ever appended to.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
import threading
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


#: What decides a result: the package (its recipes included), the benchmark scripts and the dependency list. A change
#: outside these (docs, results, tests) does not change what a benchmark measures.
CODE_PATHS = ("src", "benchmarks", "pyproject.toml")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def git_state() -> dict[str, Any]:
    """Which code a result comes from: the commit, whether the tree differs from it, and a hash of the code.

    ``dirty`` is about the whole tree; ``code_dirty`` only about :data:`CODE_PATHS` (results being written and
    edited docs do not count). ``code_id`` hashes the content of every tracked or untracked (not ignored) file
    under :data:`CODE_PATHS` except ``benchmarks/results``, as it is on disk: two runs with the same
    ``code_id`` ran the same code, whatever was committed in between, and a run from a dirty tree gets an id no
    commit has. ``None`` values outside git.
    """
    try:
        commit = _git("rev-parse", "HEAD").strip()
        dirty = bool(_git("status", "--porcelain").strip())
        code_changes = _git("status", "--porcelain", "--", *CODE_PATHS, ":(exclude)benchmarks/results").strip()
        files = _git("ls-files", "--cached", "--others", "--exclude-standard", "--", *CODE_PATHS).split("\n")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "code_dirty": None, "code_id": None}
    digest = hashlib.sha1()
    for name in sorted(f for f in files if f and not f.startswith("benchmarks/results/")):
        path = ROOT / name
        if path.is_file():  # a file deleted in the working tree is still listed by --cached
            digest.update(name.encode() + b"\0" + hashlib.sha1(path.read_bytes()).digest())
    return {"commit": commit, "dirty": dirty, "code_dirty": bool(code_changes), "code_id": digest.hexdigest()[:12]}


def require_committed_code(mode: str, *, allow_dirty: bool) -> dict[str, Any]:
    """The :func:`git_state`; a full run refuses code that differs from the commit it would name.

    A result names the commit whose code produced it, so a full run (``mode="full"``) from a tree with
    uncommitted changes under :data:`CODE_PATHS` stops here, before any training, unless ``allow_dirty``
    (then the header and the Markdown say "uncommitted changes"). Quick runs are smoke tests and always run.

    Raises:
        SystemExit: for a full run from uncommitted code without ``allow_dirty``.
    """
    state = git_state()
    if mode == "full" and state["code_dirty"] and not allow_dirty:
        changed = _git("status", "--porcelain", "--", *CODE_PATHS, ":(exclude)benchmarks/results").strip()
        raise SystemExit(
            "A full benchmark run names the commit whose code produced it, but these code files differ from "
            f"commit {state['commit'][:12]}:\n{changed}\nCommit them first (or pass --allow-dirty; the results then "
            "say 'uncommitted changes')."
        )
    return state


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo``; the platform's processor elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every`` seconds while a benchmark runs (is anything else?)."""

    def __init__(self, every: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._stop_event.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, Any]:
        """Stop sampling; ``min``/``mean``/``max`` and every sample of the 1-minute load average."""
        self._stop_event.set()
        self.samples.append(os.getloadavg()[0])
        s = self.samples
        return {"min": min(s), "mean": sum(s) / len(s), "max": max(s), "samples": s}


def machine() -> dict[str, Any]:
    """Platform, processor, CPU count, Python version, load average and the accelerator (if any)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
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


def header(
    script: str,
    *,
    mode: str,
    seeds: Sequence[int] | None,
    config: dict[str, Any],
    git: dict[str, Any] | None = None,
    versions: Sequence[str] = VERSIONED,
    **extra: Any,
) -> dict:
    """The record that heads every result file: what ran, where, with which versions, seeds and settings.

    Args:
        script: path of the script relative to the repository root.
        mode: ``"full"`` or ``"quick"`` (quick numbers are smoke tests, not figures).
        seeds: the seeds used (``None`` where none apply).
        config: the exact configuration.
        git: the :func:`git_state` taken before the runs (default: now).
        versions: the packages whose versions are recorded.
        **extra: more fields (threads, budgets...).
    """
    return {
        "script": script,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": mode,
        "date_utc": utc_now(),
        "machine": machine(),
        "versions": {p: package_version(p) for p in versions},
        "git": git_state() if git is None else git,
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
        (
            f"- Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m.get('memory_gb', '?')} GB, {m['platform']}, "
            if "cpu" in m  # headers written before the CPU model was recorded read as they did then
            else f"- Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['processor']}), "
        )
        + f"Python {m['python']}"
        + (f", accelerator {m['cuda']}" if m.get("cuda") else ", no accelerator")
        + (f"; load average at the start {load[0]} / {load[1]} / {load[2]} (1/5/15 min)." if load else "."),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items()) + ".",
        f"- Git: {h['git']['commit']}{' (uncommitted code changes)' if h['git'].get('code_dirty') else ''}"
        + (f", code id {h['git']['code_id']}." if h["git"].get("code_id") else "."),
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
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, lo, hi = t_interval(d, level)
    p = _raw_p(d)
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


def arg_parser(doc: str, *, quick: str, out: str) -> argparse.ArgumentParser:
    """The options every script has: ``--quick``, ``--out``, ``--report-only`` and ``--allow-dirty``.

    Args:
        doc: the script's docstring (its first line describes the script).
        quick: what ``--quick`` runs.
        out: the help of ``--out`` (the default output stem).

    Returns:
        The parser; the script adds its own options.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=None, help=out)
    parser.add_argument("--report-only", action="store_true", help="regenerate the .md from the saved .json")
    parser.add_argument("--allow-dirty", action="store_true", help="full run from uncommitted code (says so)")
    return parser


def write_results(stem: Path, result: dict[str, Any], markdown: str) -> None:
    """Write ``stem.json`` (everything) and ``stem.md`` (the table made from it); git keeps the earlier ones."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    stem.with_suffix(".md").write_text(markdown)


def report_only(stem: Path, markdown: Any) -> dict[str, Any]:
    """Regenerate ``stem.md`` from the saved ``stem.json`` with ``markdown`` (no measurement), print it.

    Args:
        stem: the results stem (``results/effect`` for ``results/effect.json``).
        markdown: the script's ``markdown(result) -> str``.

    Returns:
        The saved result.

    Raises:
        SystemExit: when ``stem.json`` does not exist.
    """
    path = stem.with_suffix(".json")
    if not path.exists():
        raise SystemExit(f"--report-only reads {path}, which does not exist; run the benchmark first.")
    result = json.loads(path.read_text())
    table = markdown(result)
    stem.with_suffix(".md").write_text(table)
    print(table)
    return result


def docs_section(path: Path, name: str) -> str:
    """The text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path`` (tests compare it).

    Raises:
        ValueError: when ``path`` lacks the two markers.
    """
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text.split(begin, 1)[1]:
        raise ValueError(f"{path} lacks the markers {begin!r} ... {end!r}; put them around the generated table.")
    return text.split(begin, 1)[1].split(end, 1)[0]


def pct(x: float, digits: int = 2) -> str:
    """A share as a percentage (``nan`` kept)."""
    return "nan" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}"


def signed_pp(x: float, digits: int = 2) -> str:
    """A difference of shares in percentage points with its sign."""
    return "nan" if x is None or math.isnan(x) else f"{100 * x:+.{digits}f}"


# ------------------------------------------------------------------------------------------------------------
# multiplicity and same runs
def _raw_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of ``d`` against 0 (``nan`` for fewer than 2 values or no variation)."""
    from scipy import stats

    if d.size < 2 or not np.any(d != d[0]):
        return math.nan
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(comparisons: dict[str, Sequence[float]], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Holm step-down over one family of paired comparisons: raw and adjusted p-values and intervals.

    Each comparison is the array of its paired differences (per seed or per set). The family is every comparison
    passed in: ``m = len(comparisons)``. A sweep passes all its comparisons, also those whose arms are the same
    runs as another's in some seeds (see :func:`same_runs`); that keeps ``m`` large, which is conservative.

    Raw p-values come from the two-sided one-sample t-test of the differences against 0 (the paired t-test).
    Ranked by raw p (rank ``k`` = 1 for the smallest), Holm tests the comparison of rank ``k`` at level
    ``alpha / (m - k + 1)``; the adjusted p-value is ``max over j <= k of min(1, (m - j + 1) * p_(j))`` (the running
    maximum makes it monotone in the rank: the step-down stops at the first comparison not rejected).

    Rule: a comparison is ``resolved`` when its adjusted p-value is below ``alpha``; ``r`` is how many are.

    Adjusted intervals (the stopping-level rule): every comparison's adjusted interval is the two-sided t-interval
    at the one level ``1 - alpha / max(m - r, 1)``, the level at which Holm's step-down stops (the test it failed
    at rank ``r + 1``, or ``1 - alpha`` when it rejected all ``m``). Such intervals are compatible with the test
    decisions: the adjusted interval excludes 0 exactly when the comparison is resolved, so "resolved" and "the
    adjusted interval excludes 0" read both ways. Proof: a comparison not rejected has ``p >= p_(r+1) >= alpha /
    (m - r)`` (the step-down stopped there), so its interval at ``1 - alpha / (m - r)`` contains 0; a rejected one
    of rank ``k <= r`` has ``p < alpha / (m - k + 1) <= alpha / (m - r)``, so its interval excludes 0; when
    ``r = m`` every ``p < alpha`` and the level is ``1 - alpha``. (Building each interval at its own rank's level
    ``1 - alpha / (m - k + 1)`` instead can exclude 0 for a comparison the step-down never rejected.)

    The equivalence holds for every comparison with a p-value. One without (fewer than 2 differences, or all
    equal) counts in ``m``, ranks last, gets adjusted p ``nan`` and is never resolved; its interval is ``nan`` (one
    difference) or has width 0 (all equal: ``[0, 0]`` for a comparison of the same runs).

    Args:
        comparisons: name -> paired differences (``a - b``), in the order the report lists them.
        alpha: the family-wise error rate.

    Returns:
        name -> ``n``, ``mean_diff``, ``ci95`` (raw), ``p_value`` (raw), ``rank``, ``m``, ``holm_level`` (the
        family's stopping level, one for all), ``p_holm``, ``ci_holm`` and ``resolved`` (bool), in the order of
        ``comparisons``.
    """
    diffs = {name: np.asarray(list(d), dtype=float) for name, d in comparisons.items()}
    raw = {name: _raw_p(d) for name, d in diffs.items()}
    m = len(diffs)
    order = sorted(diffs, key=lambda name: (math.isnan(raw[name]), raw[name] if not math.isnan(raw[name]) else 0))
    adjusted: list[tuple[str, float]] = []  # (name, adjusted p) in rank order
    running = 0.0
    for k, name in enumerate(order, start=1):
        if math.isnan(raw[name]):
            adjusted.append((name, math.nan))
        else:
            running = max(running, min(1.0, (m - k + 1) * raw[name]))
            adjusted.append((name, running))
    r = sum(1 for _, p_holm in adjusted if not math.isnan(p_holm) and p_holm < alpha)
    level = 1 - alpha / max(m - r, 1)  # where the step-down stops: the stopping-level rule above
    out: dict[str, dict[str, Any]] = {}
    for k, (name, p_holm) in enumerate(adjusted, start=1):
        mean, lo, hi = t_interval(diffs[name])
        _, hlo, hhi = t_interval(diffs[name], level)
        out[name] = {
            "n": int(diffs[name].size),
            "mean_diff": mean,
            "ci95": [lo, hi],
            "p_value": raw[name],
            "rank": k,
            "m": m,
            "holm_level": level,
            "p_holm": p_holm,
            "ci_holm": [hlo, hhi],
            "resolved": bool(not math.isnan(p_holm) and p_holm < alpha),
        }
    return {name: out[name] for name in comparisons}


def holm_sign(h: dict[str, Any]) -> str:
    """``"+"`` / ``"-"`` for a comparison :func:`holm` resolved above / below 0, ``"0"`` otherwise."""
    if not h["resolved"]:
        return "0"
    return "+" if h["mean_diff"] > 0 else "-"


def holm_level_words(family: dict[Any, dict[str, Any]]) -> str:
    """How a report names the level of a :func:`holm` family's adjusted intervals: the level where the step-down
    stopped, so an interval excludes 0 exactly when its comparison is resolved."""
    level = next(iter(family.values()))["holm_level"] if family else math.nan
    return f"at the {100 * level:.2f} % level, where the step-down stops, so it excludes 0 exactly when resolved"


def same_runs(runs_by_arm: dict[str, dict[Any, dict[str, Any]]]) -> dict[tuple[str, str], list[Any]]:
    """Per pair of arms, the seeds whose two runs are the same run.

    Two runs are the same run when their test accuracy is identical and their period ended at the identical step
    (``boundary_step``, ``None`` for an arm without a period): then the same boundary gave the same training.

    Args:
        runs_by_arm: arm -> seed -> run record (with ``test_acc`` and ``boundary_step``), arms in report order.

    Returns:
        ``(arm_a, arm_b) -> sorted seeds`` for each pair (``arm_a`` before ``arm_b`` in ``runs_by_arm``) with at
        least one such seed; pairs with none are left out.
    """
    arms = list(runs_by_arm)
    out: dict[tuple[str, str], list[Any]] = {}
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            seeds = sorted(
                s
                for s, ra in runs_by_arm[a].items()
                if s in runs_by_arm[b]
                and ra["test_acc"] == runs_by_arm[b][s]["test_acc"]
                and ra.get("boundary_step") == runs_by_arm[b][s].get("boundary_step")
            )
            if seeds:
                out[(a, b)] = seeds
    return out


def same_runs_notes(
    pairs: dict[tuple[str, str], list[Any]], n_seeds: int, labels: dict[str, str] | None = None
) -> dict[str, str]:
    """arm -> its mark in a table (``"same runs as Pause 20 % in 4 of 5 seeds"``) for the later arm of each pair."""
    labels = labels or {}
    notes: dict[str, list[str]] = {}
    for (a, b), seeds in pairs.items():
        notes.setdefault(b, []).append(f"same runs as {labels.get(a, a)} in {len(seeds)} of {n_seeds} seeds")
    return {arm: "; ".join(v) for arm, v in notes.items()}


def distinct_count(names: Sequence[str], pairs: dict[tuple[str, str], list[Any]], n_seeds: int) -> int:
    """How many of ``names`` (arms) remain when an arm whose runs are the same as an earlier arm's in more than
    half of the ``n_seeds`` seeds is counted once with it (summaries count such comparisons once)."""
    kept: list[str] = []
    for name in names:
        if not any(len(pairs.get((k, name), pairs.get((name, k), []))) * 2 > n_seeds for k in kept):
            kept.append(name)
    return len(kept)


def holm_cell(h: dict[str, Any], digits: int = 2, scale: float = 100.0) -> str:
    """``mean [raw 95 % interval] [Holm interval]`` of a :func:`holm` entry, in ``scale`` units with signs."""

    def f(x: float) -> str:
        return "nan" if x is None or math.isnan(x) else f"{scale * x:+.{digits}f}"

    lo, hi = h["ci95"]
    hlo, hhi = h["ci_holm"]
    return f"{f(h['mean_diff'])} [{f(lo)}, {f(hi)}] Holm [{f(hlo)}, {f(hhi)}]"


def goal_verdict(ci95: Sequence[float], goal: float, *, at_most: bool = True) -> str:
    """A goal judged on a 95 % interval: ``"met"``, ``"missed"`` or ``"not resolved"``.

    For an upper goal (``at_most``, e.g. a ratio <= 1.01) it is met only when the whole interval lies at or below
    it, missed when the whole interval lies above it, and not resolved when the interval straddles it (or has no
    bounds: a single repeat). A lower goal (``at_most=False``, e.g. a speed-up >= 1) mirrors that.
    """
    lo, hi = (float(x) for x in ci95)
    if math.isnan(lo) or math.isnan(hi):
        return "not resolved"
    if at_most:
        return "met" if hi <= goal else ("missed" if lo > goal else "not resolved")
    return "met" if lo >= goal else ("missed" if hi < goal else "not resolved")
