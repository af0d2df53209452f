"""A pre-registered plan in the docs is the text committed before its run, byte for byte.

A plan is fenced by ``<!-- plan:<commit>:begin -->`` / ``<!-- plan:<commit>:end -->`` (``docs_prose.PLAN``); its
text must occur unchanged in ``git show <commit>:<page>``, the page as it was committed before any of the plan's
runs. Only the fenced text leaves the checked prose (``docs_prose.prose``): a result written under its own heading
after the fence is checked like any other prose.
"""

from __future__ import annotations

import subprocess

import pytest
from docs_prose import ROOT, pages, plans, prose, units

#: (page, commit) of the plans the docs hold: the confirmatory ViT run and the finder's out-of-sample check
EXPECTED = {("docs/benchmarks.md", "ebd3b56"), ("docs/diagnostics.md", "a87e0b5")}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True)


def fenced() -> list[tuple[str, str, str]]:
    """(page, commit, plan text) of every fenced plan on the pages that quote results."""
    return [(str(page.relative_to(ROOT)), commit, text) for page in pages() for commit, text in plans(page.read_text())]


FENCED = [pytest.param(*plan, id=f"{plan[0]}@{plan[1]}") for plan in fenced()]


def test_the_two_plans_are_fenced_and_every_fence_is_closed():
    found = fenced()
    assert {(page, commit) for page, commit, _ in found} == EXPECTED
    for page in pages():
        text = page.read_text()
        assert text.count("<!-- plan:") == 2 * len(plans(text)), page  # a begin without its end, or a stray marker


@pytest.mark.parametrize(("page", "commit", "text"), FENCED)
def test_a_fenced_plan_is_the_text_committed_before_its_run(page, commit, text):
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        if _git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true":
            pytest.skip(f"a shallow clone: the plan's commit {commit} is not in it")
        pytest.fail(f"{page}: the plan's commit {commit} is not in this repository")
    committed = _git("show", f"{commit}:{page}")
    assert committed.returncode == 0, committed.stderr.decode()
    assert text.strip() and text.encode() in committed.stdout, f"{page}: the plan differs from its text at {commit}"


def test_only_the_fenced_text_leaves_the_prose():
    page = (
        "## A run (pre-registered)\n\n<!-- plan:abc1234:begin -->\n\nPlanned: +1.00 pp.\n\n"
        "<!-- plan:abc1234:end -->\n\nA note on the plan.\n\n### A run: the result\n\nMeasured: +2.00 pp.\n"
    )
    assert plans(page) == [("abc1234", "Planned: +1.00 pp.")]
    assert "Planned" not in prose(page)
    expected = ["## A run (pre-registered)", "A note on the plan.", "### A run: the result", "Measured: +2.00 pp."]
    assert units(page) == expected
