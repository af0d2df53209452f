"""The hand-written prose of the pages that quote benchmark results, cut into units a reader sees as one statement.

A unit is a paragraph, a list item or a table row. Generated copies of results tables (between
``<!-- name:begin -->`` and ``<!-- name:end -->``) and fenced code are not prose: they are dropped. So is the text
of a pre-registered plan, fenced by ``<!-- plan:<commit>:begin -->`` and ``<!-- plan:<commit>:end -->``: a plan is
kept verbatim as committed at ``<commit>``, before its run (``test_plans_verbatim.py``), and the figures it planned
with are not results it quotes. Only the fenced text is dropped: the plan's heading, and any result written under
its own heading after the fence, are prose like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
GENERATED = re.compile(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", re.S)
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
ITEM = re.compile(r"^(\s*)(- |\* |\d+\. )")
#: a plan's fence; group 1 is the commit the plan was committed at (short or full), group 2 the plan's text
PLAN = re.compile(r"^<!-- plan:([0-9a-f]{7,40}):begin -->\n(.*?)\n<!-- plan:\1:end -->$", re.S | re.M)


def pages() -> list[Path]:
    """README.md, benchmarks/README.md and every page under docs/ (relative order fixed)."""
    return [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def plans(text: str) -> list[tuple[str, str]]:
    """``(commit, plan text)`` of every fenced plan in ``text``, the text without the blank lines at its ends."""
    return [(m.group(1), m.group(2).strip("\n")) for m in PLAN.finditer(text)]


def prose(text: str) -> str:
    """``text`` without its generated blocks, fenced code and fenced plans."""
    return FENCED.sub("\n\n", GENERATED.sub("\n\n", PLAN.sub("\n\n", text)))


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
