"""The prepared GPU check (scripts/gpu_check.sh) on a machine without a GPU: the shell script parses and refuses
clearly, the sync attribution is right, and its Python parts run with ``--device cpu``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipe_smoke import foolbox_images

import lit_early_phase

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
from gpu_check_hot_path import attribute  # noqa: E402

PACKAGE = "/site/lit_early_phase"
RESULTS = ROOT / "benchmarks" / "results"


def _env() -> dict[str, str]:
    src = Path(lit_early_phase.__file__).resolve().parents[1]  # the package under test, not another install
    pythonpath = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def test_gpu_check_sh_parses():
    done = subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script would run the whole check")
def test_gpu_check_sh_refuses_without_cuda_and_says_why():
    venv = Path(sys.executable).parents[1]
    done = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh")], env={**_env(), "VENV": str(venv)}, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr


@pytest.mark.parametrize(
    ("stack", "owner"),
    [
        (["/x/lightning/pytorch/loops/fit.py", f"{PACKAGE}/modules/mixin.py", "/x/torch/functional.py"], "package"),
        ([f"{PACKAGE}/callbacks/enlightenment.py", "/x/torchmetrics/metric.py"], "package"),
        ([f"{PACKAGE}/modules/classifier.py", "/x/lightning/pytorch/core/optimizer.py", "/x/torch/optim/adamw.py"],
         "lightning"),
        (["/x/lightning/pytorch/loops/fit.py", "/x/timm/models/resnet.py"], "lightning"),
        (["/home/me/train.py", "/x/torch/nn/modules/module.py"], "other"),
        (["/site/lit_early_phase_extra/a.py"], "other"),  # a sibling folder is not the package
        ([], "other"),
    ],
)  # fmt: skip
def test_a_sync_belongs_to_the_innermost_frame_of_the_package_or_lightning(stack, owner):
    assert attribute(stack, PACKAGE) == owner


def test_hot_path_check_runs_on_cpu_without_sync_mode(tmp_path):
    out = tmp_path / "hot_path"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_check_hot_path.py"), "--device", "cpu", "--steps", "2", "--warmup", "1",
         "--batch-size", "4", "--out", str(out)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["ok"] and result["device"] == "cpu" and result["device_name"].startswith("CPU")
    assert result["sync_debug"].startswith("skipped")
    assert [r["strategy"] for r in result["runs"]] == ["mixup_pause", "alpha_boost", "high_loss_removal"]
    for run in result["runs"]:
        assert run["global_step"] == 4 and run["in_period"] and run["error"] is None and run["syncs"] == []
    assert "| alpha_boost | off | 4 | 0 | 0 | none |" in out.with_suffix(".md").read_text()


@pytest.mark.skipif(not foolbox_images(), reason="the smoke image folder: `pip install --no-deps foolbox==3.3.4`")
def test_recipe_check_runs_a_recipe_on_cpu(tmp_path):
    out = tmp_path / "recipes"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_check_recipes.py"), "--device", "cpu", "--steps", "1",
         "--recipes", "cifar10_resnet18_mixup_pause", "--out", str(out)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    (run,) = result["runs"]
    assert run["recipe"] == "cifar10_resnet18_mixup_pause" and run["ok"] and run["global_step"] == 1
    assert result["device_name"].startswith("CPU") and run["peak_memory_mib"] is None


@pytest.mark.parametrize("path", sorted(RESULTS.glob("gpu_check_*.json")), ids=lambda p: p.stem)
def test_committed_gpu_check_results_name_the_gpu_and_the_commit(path):
    """Once scripts/gpu_check.sh has run on a GPU and its results are committed (none yet: this test is empty)."""
    result = json.loads(path.read_text())
    header = result.get("header", result)  # overhead.py nests its provenance in a header
    assert header["git"]["commit"] and path.with_suffix(".md").is_file()
    assert header["device"] == "cuda"
    named = header.get("device_name") or header.get("gpu_note", "")
    assert named and named in path.with_suffix(".md").read_text()
