"""The hand-written prose of the pages that quote benchmark results, cut into units a reader sees as one statement.

A unit is a paragraph, a list item or a table row. Generated copies of results tables (between
``<!-- name:begin -->`` and ``<!-- name:end -->``) and fenced code are not prose: they are dropped. So are
pre-registered plans (a section whose heading says "pre-registered" or "the plan (written and committed before"):
a plan is kept verbatim as committed before its run, and the figures it planned with are not results it quotes.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
GENERATED = re.compile(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", re.S)
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
ITEM = re.compile(r"^(\s*)(- |\* |\d+\. )")
HEADING = re.compile(r"^(#+) ")
PLAN = re.compile(r"pre-registered|the plan \(written and committed before", re.I)


def pages() -> list[Path]:
    """README.md, benchmarks/README.md and every page under docs/ (relative order fixed)."""
    return [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _without_plans(text: str) -> str:
    """``text`` without its pre-registered plan sections (each heading to the next heading of its level or above)."""
    kept: list[str] = []
    plan_level = 0
    for line in text.splitlines():
        heading = HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if plan_level and level <= plan_level:
                plan_level = 0
            if not plan_level and PLAN.search(line):
                plan_level = level
        if not plan_level:
            kept.append(line)
    return "\n".join(kept)


def prose(text: str) -> str:
    """``text`` without its generated blocks, fenced code and pre-registered plans."""
    return _without_plans(FENCED.sub("\n\n", GENERATED.sub("\n\n", text)))


def units(text: str) -> list[str]:
    """The paragraphs, list items and table rows of the prose of ``text``, each joined into one line."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in prose(text).splitlines():
        starts_unit = not line.strip() or line.lstrip().startswith("|") or ITEM.match(line) is not None
        if starts_unit and current:
            found.append(current)
            current = []
        if line.lstrip().startswith("|"):
            found.append([line])
        elif line.strip():
            current.append(line.strip())
    if current:
        found.append(current)
    return [" ".join(unit) for unit in found]
