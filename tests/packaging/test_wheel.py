"""The built wheel: recipes and py.typed inside, a light core, and a user's own module trains from it alone.

The wheel is built once per session from a copy of the sources (pyproject.toml, README.md, src/), so the build
writes no ``build/`` or ``*.egg-info`` into the checkout: setuptools never cleans ``build/lib``, and a module
deleted from ``src/`` would still ship from a stale one. It is installed with ``pip install --target`` and run
from a directory outside the repository, in a fresh interpreter whose only way to the package is that folder and
where the optional dependencies cannot be imported.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "lit_early_phase"
RECIPES = sorted(p.name for p in (PACKAGE / "recipes").glob("*.yaml"))
#: the optional dependencies (extras): none of them may be needed to import the package and train a mixin module
OPTIONAL = ("timm", "torchvision", "transformers", "peft", "aeon", "wandb", "litdata")
BUILD_SECONDS = 60

# Run in the fresh interpreter: block the optional packages, then list and resolve the recipes and fit a user's
# own mixin module with the callback (Mixup Pause for a fixed 4 steps) on random tensors.
# Lightning and torchmetrics ask the installed metadata first (lightning_utilities' RequirementCache) and import
# only what it says is there, so the blocked distributions' metadata is hidden too: as for a user without the extras.
SCRIPT = """
import importlib, importlib.abc, importlib.metadata, json, sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (made unimportable by test_wheel)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
_discover = importlib.metadata.Distribution.discover.__func__

def discover(cls, **kwargs):
    return (d for d in _discover(cls, **kwargs) if (d.name or "").lower() not in BLOCKED)

importlib.metadata.Distribution.discover = classmethod(discover)

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

import lit_early_phase
from lit_early_phase import EnlightenmentCallback, EnlightenmentMixin, recipes


class Own(EnlightenmentMixin, L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
        self.configure_enlightenment(num_classes=3, mixup_alpha=0.4)
        self.alphas = []

    def training_step(self, batch, batch_idx):
        self.alphas.append(self.knobs.mixup_alpha)
        return self.classification_step(*batch, self.net).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


torch.manual_seed(0)
data = DataLoader(TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,))), batch_size=8)
cb = EnlightenmentCallback(strategy="mixup_pause", duration="4st")
trainer = L.Trainer(max_steps=7, callbacks=[cb], logger=False, enable_progress_bar=False,
                    enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", default_root_dir=".")
model = Own()
trainer.fit(model, data)
blocked = []
for name in sorted(BLOCKED):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            blocked.append(name)
print(json.dumps({
    "file": lit_early_phase.__file__,
    "version": lit_early_phase.__version__,
    "names": recipes.names(),
    "descriptions": [recipes.description(n) for n in recipes.names()],
    "resolved": recipes.resolve_config_args(["fit", "--config", "recipe:demo_fashion_mnist"])[2],
    "boundary_step": cb.boundary_step,
    "ended_by": cb.ended_by,
    "global_step": trainer.global_step,
    "alphas": model.alphas,
    "loaded": sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED),
    "blocked": blocked,
}))
"""


def _pip(*args: str | Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources, once per session (its build time checked)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "src" / "lit_early_phase", ignore=shutil.ignore_patterns("__pycache__"))
    start = time.perf_counter()
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-w", tmp / "dist", source)
    seconds = time.perf_counter() - start
    assert seconds < BUILD_SECONDS, f"building the wheel took {seconds:.0f} s"
    (built,) = (tmp / "dist").glob("lit_early_phase-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_the_recipes_and_py_typed_are_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "lit_early_phase/py.typed" in names
    assert {f"lit_early_phase/recipes/{r}" for r in RECIPES} <= names and len(RECIPES) >= 4
    assert "lit_early_phase/recipes/__init__.py" in names


def test_the_core_requirements_name_no_optional_package(wheel: Path) -> None:
    metadata = _metadata(wheel)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert metadata["Version"] == version
    requires = metadata.get_all("Requires-Dist") or []
    core = {re.match(r"[A-Za-z0-9._-]+", r).group().lower() for r in requires if "extra ==" not in r}
    assert {"torch", "lightning"} <= core
    assert not core & set(OPTIONAL), f"core Requires-Dist names {sorted(core & set(OPTIONAL))}"
    extras = {r for r in requires if "extra ==" in r}
    assert any(r.startswith("timm") for r in extras)  # where the optional ones belong


def test_the_installed_wheel_lists_recipes_and_trains_a_users_module_without_the_extras(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-compile", "--target", site, wheel)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(OPTIONAL)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=outside,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(site)  # the wheel's copy, not the checkout's
    assert result["version"] == _metadata(wheel)["Version"]
    assert [f"{n}.yaml" for n in result["names"]] == RECIPES and all(result["descriptions"])
    assert result["resolved"] == str(site / "lit_early_phase" / "recipes" / "demo_fashion_mnist.yaml")
    assert result["blocked"] == sorted(OPTIONAL) and result["loaded"] == []
    # Mixup Pause for 4 steps: no mixing at steps 0-3, the configured α from step 4 on
    assert result["ended_by"] == "duration" and result["boundary_step"] == 4 and result["global_step"] == 7
    assert result["alphas"] == [0.0] * 4 + [0.4] * 3


def test_the_installed_console_script_lists_the_recipes_and_fits_one_by_name(wheel: Path, tmp_path: Path) -> None:
    # what a user does after `pip install lit-early-phase[vision]`: the console script, from any directory
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-compile", "--target", site, wheel)
    script = site / "bin" / "lit-early-phase"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300, cwd=outside, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    listed = run("recipes").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [r.removesuffix(".yaml") for r in RECIPES]
    fit = run("fit", "--config", "demo_fashion_mnist", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "2")
    assert "Traceback" not in fit.stderr
    (hparams,) = (outside / "lightning_logs").rglob("hparams.yaml")  # written in the user's directory
    assert "test_resnet" in hparams.read_text()
    (checkpoint,) = (outside / "lightning_logs").rglob("*.ckpt")
    assert "step=2" in checkpoint.name
