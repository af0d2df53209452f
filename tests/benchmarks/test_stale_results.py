"""A results file whose measured code changed after its commit is marked as such wherever the docs cite it.

Each benchmark script declares ``MEASURES``, the repository paths whose change would change what it measures.
When ``git diff --name-only <commit> HEAD -- <MEASURES>`` lists a file (a rename counts: its new path is listed),
every paragraph, list item or table row of the docs that cites ``<name>.md`` or ``<name>.json`` must say
``measured at <short commit>, before <what changed>``. A marker whose commit is no longer that of the cited
file (the result was re-run) fails too, so the docs drop it when the result is fresh. The ``MEASURES`` block itself
is not measured code: a script whose only change is that block counts as unchanged.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from docs_prose import RESULTS, ROOT, pages, units

sys.path.insert(0, str(ROOT / "benchmarks"))

MARKER = re.compile(r"measured at ([0-9a-f]{7}), before (\S[^;)]*)")
DECLARATION = re.compile(r"\n# The repo paths whose change.*?^MEASURES = \(.*?^\)\n", re.S | re.M)
# full results only: a quick run's file says "not results" and measures nothing (gpu_check_* has its own test)
NAMES = sorted(
    p.stem
    for p in RESULTS.glob("*.json")
    if not p.stem.startswith("gpu_check_") and json.loads(p.read_text())["header"].get("mode") == "full"
)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@cache
def header_of(name: str) -> dict:
    """The header of ``<name>.json``: the script that wrote it and the commit it ran at."""
    return json.loads((RESULTS / f"{name}.json").read_text())["header"]


def measures_of(name: str) -> tuple[str, ...]:
    """The measured paths of the script that wrote ``<name>.json`` (its header names it: ``finder_oos.json`` comes
    from ``finder_check.py --out-of-sample``)."""
    return importlib.import_module(Path(header_of(name)["script"]).stem).MEASURES


def commit_of(name: str) -> str:
    """The full commit a saved full result ran at."""
    return header_of(name)["git"]["commit"]


def measured_changes(commit: str, measures: tuple[str, ...]) -> list[str]:
    """The files among ``measures`` that differ between ``commit`` and HEAD, a script's ``MEASURES`` block aside."""
    diff = _git("diff", "--name-only", commit, "HEAD", "--", *measures)
    assert diff.returncode == 0, diff.stderr
    changed = []
    for path in diff.stdout.split():
        if path.startswith("benchmarks/") and path.endswith(".py"):
            before, after = _git("show", f"{commit}:{path}"), _git("show", f"HEAD:{path}")
            if before.returncode == 0 and DECLARATION.sub("", after.stdout) == before.stdout:
                continue
        changed.append(path)
    return changed


@cache
def stale() -> dict[str, str]:
    """Short commit of every saved result whose measured code changed since, by results name."""
    found = {}
    for name in NAMES:
        commit = commit_of(name)
        if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            continue
        if measured_changes(commit, measures_of(name)):
            found[name] = commit[:7]
    return found


def citations(name: str) -> list[tuple[str, str]]:
    """(page, unit) for every prose unit of the docs that cites ``<name>.md`` or ``<name>.json``."""
    cited = re.compile(rf"(?<![\w-]){name}\.(?:md|json)\b")
    found = [(str(page.relative_to(ROOT)), unit) for page in pages() for unit in units(page.read_text())]
    return [(page, unit) for page, unit in found if cited.search(unit)]


def test_every_benchmark_script_declares_existing_measured_paths():
    scripts = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_"))
    for name in scripts:
        measures = importlib.import_module(name).MEASURES
        assert f"benchmarks/{name}.py" in measures, name
        missing = [p for p in measures if not (ROOT / p).exists()]
        assert not missing, f"{name}.MEASURES names paths that do not exist: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_a_stale_result_is_marked_wherever_the_docs_cite_it(name):
    commit = commit_of(name)
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        pytest.skip(f"{name}.json ran at {commit[:7]}, which this clone's history lacks (shallow clone?)")
    cites = citations(name)
    if name not in stale():
        for page, unit in cites:
            assert f"measured at {commit[:7]}, before" not in unit, f"{page}: {name} is fresh, drop the marker: {unit}"
        return
    unmarked = [f"{page}: {unit[:160]}" for page, unit in cites if f"measured at {commit[:7]}, before " not in unit]
    assert not unmarked, (
        f"benchmarks/results/{name}.json ran at {commit[:7]} and its measured code changed since "
        f"({measured_changes(commit, measures_of(name))[:5]} ...); "
        f"say 'measured at {commit[:7]}, before <what changed>' where it is cited:\n" + "\n".join(unmarked)
    )


def test_every_stale_marker_names_the_commit_of_a_stale_result():
    if any(_git("cat-file", "-e", f"{commit_of(n)}^{{commit}}").returncode != 0 for n in NAMES):
        pytest.skip("a results commit is missing from this clone's history (shallow clone?)")
    known = set(stale().values())
    for page in pages():
        where = page.relative_to(ROOT)
        for unit in units(page.read_text()):
            for commit, what in MARKER.findall(unit):
                assert commit in known, f"{where}: 'measured at {commit}' names no stale result: {unit[:160]}"
                assert len(what.split()) >= 2, f"{where}: say what changed after {commit}: {unit[:160]}"


def test_a_change_to_measured_code_makes_a_result_stale_and_the_declaration_does_not():
    commit = commit_of("image_folder_throughput")
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        pytest.skip(f"{commit[:7]} is not in this clone's history")
    # the script gained only its MEASURES block after that commit: not a change to what it measures
    assert measured_changes(commit, ("benchmarks/image_folder_throughput.py",)) == []
    # the 0.1.0 reorganisation renamed files after the effect sweep: renamed paths count as changed
    moved = measured_changes(commit_of("effect"), ("src/lit_early_phase/datamodules/vision/fashion_mnist.py",))
    assert moved == ["src/lit_early_phase/datamodules/vision/fashion_mnist.py"]
