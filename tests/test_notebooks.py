"""The notebooks run top to bottom in a fresh process, and what they show is checked against the logs they read.

The code cells are joined into one script (no Jupyter kernel needed) and run with the non-interactive matplotlib
backend; ``TMPDIR`` points the notebook's temporary log directory into ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _run_notebook(path: Path, tmp_path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    script = tmp_path / f"{path.stem}.py"
    script.write_text("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    env = {**os.environ, "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == ["quickstart.ipynb"]


def test_quickstart_finds_the_boundary_and_the_log_shows_what_was_applied(tmp_path):
    out = _run_notebook(NOTEBOOKS / "quickstart.ipynb", tmp_path)
    boundary = int(re.search(r"boundary step: (\d+)", out).group(1))
    assert 10 <= boundary < 300 and boundary % 10 == 0  # checked every 10 steps, inside the 300-step run
    assert 0.5 < float(re.search(r"validation accuracy: ([0-9.]+)", out).group(1)) <= 1.0

    (csv,) = tmp_path.rglob("metrics.csv")
    metrics = pd.read_csv(csv)
    applied = metrics.dropna(subset=["enlightenment/phase"])
    inside = applied["step"] < boundary  # logged steps count from 0: step s is the (s + 1)-th optimizer step
    assert (applied.loc[inside, "enlightenment/phase"] == 1).all()
    assert (applied.loc[~inside, "enlightenment/phase"] == 0).all()
    assert (applied.loc[inside, "enlightenment/alpha"] == 0).all()  # Mixup paused
    assert (applied.loc[inside, "enlightenment/lambda_mean"] == 1).all()
    assert np.isclose(applied.loc[~inside, "enlightenment/alpha"], 0.4).all()
    assert (applied.loc[~inside, "enlightenment/lambda_mean"] < 1).mean() > 0.9  # Mixup applied after it
    checks = metrics.dropna(subset=["enlightenment/monitor"])
    assert (checks.loc[checks["step"] < boundary - 1, "enlightenment/monitor"] < 0.5).all()
    assert checks.loc[checks["step"] == boundary - 1, "enlightenment/monitor"].item() >= 0.5
