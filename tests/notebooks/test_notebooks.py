"""The notebooks are stored without outputs; the test command runs each of them with nbmake (pyproject's addopts).

Their values are checked inside them: each ends with a "Checks" cell of asserts (the boundary step, what was
applied inside and after the period, read back from the logger), so a wrong value fails its nbmake test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "detection_tree_crowns.ipynb",
    "llm_finetune.ipynb",
    "quickstart.ipynb",
    "timeseries_high_loss_removal.ipynb",
]


def test_every_notebook_is_known():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_stored_without_outputs_and_ends_with_its_checks(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("outputs") == [] and c.get("execution_count") is None for c in code)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"  # the kernel of the interpreter running pytest
    assert "assert " in "".join(code[-1]["source"])  # the checks cell
