"""The paired-difference report of a sweep: raw and Holm-adjusted intervals, same runs, counts (effect, vit_period).

A sweep's family for Holm is every comparison it reports (each arm against the reference at each training-set
size), ``m`` of them. Arms whose runs are the same runs as another arm's (identical test accuracy and boundary
step, :func:`_common.same_runs`) stay in the family (``m`` is not reduced: conservative); the tables mark them and
the summary counts them once.
"""

from __future__ import annotations

from typing import Any

import _common as C


def _key(size: int, arm: str) -> str:
    return f"{size}|{arm}"


def sweep_holm(per_size: list[dict[str, Any]], others: list[str], reference: str) -> dict[tuple[int, str], dict]:
    """:func:`_common.holm` over every (size, arm) comparison to ``reference`` in ``per_size`` (one family)."""
    family = {_key(row["size"], a): row["vs_" + reference][a]["diffs"] for row in per_size for a in others}
    h = C.holm(family)
    return {(row["size"], a): h[_key(row["size"], a)] for row in per_size for a in others}


def result_holm(result: dict[str, Any]) -> dict[tuple[int, str], dict]:
    """:func:`sweep_holm` of a saved sweep (``effect.json``, ``vit_period.json``): every arm of the header against
    its ``reference``, the family the report's tables adjust over."""
    h = result["header"]
    others = [a for a in h["arms"] if a != h["reference"]]
    return sweep_holm(result["summary"]["per_size"], others, h["reference"])


def same_runs_by_size(runs: list[dict[str, Any]], sizes: list[int], arms: list[str]) -> dict[int, dict]:
    """size -> :func:`_common.same_runs` over the arms' runs at that size (seed -> run)."""
    out = {}
    for size in sizes:
        by_arm = {a: {r["seed"]: r for r in runs if r["size"] == size and r["arm"] == a} for a in arms}
        out[size] = C.same_runs(by_arm)
    return out


def difference_lines(
    per_size: list[dict[str, Any]],
    others: list[str],
    labels: dict[str, str],
    reference: str,
    runs: list[dict[str, Any]],
    n_seeds: int,
    *,
    label: str = "exploratory",
) -> list[str]:
    """Markdown: the paired-difference table (raw and Holm intervals; marks follow Holm), same runs, counts.

    Args:
        per_size: the summary's rows (each with ``size`` and ``vs_<reference>`` from ``paired_difference``).
        others: the compared arms, in column order.
        labels: arm -> column title.
        reference: the reference arm.
        runs: the run records (``size``, ``arm``, ``seed``, ``test_acc``, ``boundary_step``).
        n_seeds: seeds per arm.
        label: ``"exploratory"`` or ``"confirmatory"``, said in the table's caption.
    """
    h = sweep_holm(per_size, others, reference)
    m = len(h)
    sizes = [row["size"] for row in per_size]
    same = same_runs_by_size(runs, sizes, [reference, *others])
    lines = [
        "",
        f"Difference to {labels[reference]} (percentage points), paired by seed ({label} comparisons): mean "
        f"[raw 95 % t-interval] Holm [interval adjusted by Holm over the m = {m} comparisons of this sweep, "
        f"{C.holm_level_words(h)}] "
        "(+ / - : resolved after Holm, adjusted p < 0.05, above / below 0; 0: not resolved) and seeds "
        "better : worse.",
        "",
        "| train images | " + " | ".join(labels[a] for a in others) + " |",
        "|---:|" + "---|" * len(others),
    ]
    for row in per_size:
        cells = []
        marks = C.same_runs_notes(same[row["size"]], n_seeds, labels)
        for a in others:
            d, x = row["vs_" + reference][a], h[(row["size"], a)]
            mark = f"; {marks[a]}" if a in marks else ""
            cells.append(f"{C.holm_cell(x)} ({C.holm_sign(x)}; {d['pairs_better']}:{d['pairs_worse']}{mark})")
        lines.append(f"| {row['size']:,} | " + " | ".join(cells) + " |")
    notes = [
        f"{size:,} images: {labels[arm]} {note}"
        for size in sizes
        for arm, note in C.same_runs_notes(same[size], n_seeds, labels).items()
    ]
    raw = [k for k, x in h.items() if x["ci95"][0] > 0 or x["ci95"][1] < 0]
    resolved = [k for k, x in h.items() if x["resolved"]]

    def distinct(keys: list[tuple[int, str]]) -> int:
        return sum(C.distinct_count([a for z, a in keys if z == size], same[size], n_seeds) for size in sizes)

    def named(keys: list[tuple[int, str]]) -> str:
        return ", ".join(f"{labels[a]} at {z:,}" for z, a in keys) or "none"

    lines += [
        "",
        "Same runs (identical test accuracy and identical boundary step, so the same training): "
        + ("; ".join(notes) if notes else "none")
        + ". Holm's m counts every comparison, these included (conservative); the counts below count a "
        "comparison whose arm has the same runs as an earlier arm's in more than half of the seeds once.",
        "",
        f"Raw 95 % interval excludes 0: {len(raw)} of {m} comparisons ({named(raw)}; {distinct(raw)} distinct). "
        f"Resolved after Holm: {len(resolved)} of {m} ({named(resolved)}; {distinct(resolved)} distinct).",
    ]
    return lines
