"""The image-folder loader benchmark runs end to end in its quick mode and writes well-formed results."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("foolbox") is None,
    reason="the folder is built from foolbox's 20 ImageNet JPEGs: `pip install --no-deps foolbox==3.3.4`",
)


def test_image_folder_throughput_quick_measures_both_loaders_side_by_side(tmp_path):
    out = tmp_path / "throughput"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "image_folder_throughput.py"), "--quick", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    header, m = result["header"], result["measurement"]
    assert header["mode"] == "quick" and header["git"]["commit"] and header["versions"]["timm"] != "not installed"
    assert header["config"]["transform"]["auto_augment"] == "rand-m9-mstd0.5"
    assert (m["images"], m["classes"]) == (40, 4)  # 20 JPEGs x 2 copies in 4 class folders
    repeats = header["config"]["repeats"]
    assert len(m["plain_images_per_s"]) == len(m["datamodule_images_per_s"]) == repeats == 2
    assert all(math.isfinite(v) and v > 0 for v in m["plain_images_per_s"] + m["datamodule_images_per_s"])
    ratios = [a / b for a, b in zip(m["datamodule_images_per_s"], m["plain_images_per_s"], strict=True)]
    assert m["ratio"]["ratios"] == pytest.approx(ratios) and m["goal"] == 0.95
    assert m["goal_met"] == (m["ratio"]["mean"] >= 0.95)
    table = out.with_suffix(".md").read_text()
    assert table.startswith("# ImageFolderDataModule's training loader vs torchvision's ImageFolder")
    assert "Quick mode" in table and f"{m['ratio']['mean']:.3f}" in table
