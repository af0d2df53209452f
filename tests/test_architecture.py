"""The layers' import rules (docs/architecture.md), read from the source so that a new import breaks a test.

callbacks -> strategies -> core (knobs.py) <- modules <- functional; callbacks -> reporting (figure, loggers,
W&B), which imports none of the package's layers but the core's keys.py (the logged keys: pure constants, no
import); datamodules import no module; functional imports no Lightning;
the finder's rule is pure Python and its pilot knows no module or data module (only the ``find`` command, on top,
reaches the CLI);
nothing under src/ grows past ~500 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lit_early_phase"
MAX_LINES = 500


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files(layer: str) -> list[Path]:
    target = PACKAGE / layer
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in _files(layer):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("functional", ("lightning", "pytorch_lightning", "lit_early_phase.modules", "lit_early_phase.callbacks",
                        "lit_early_phase.strategies", "lit_early_phase.datamodules", "lit_early_phase.knobs")),
        ("keys.py", ("lightning", "torch", "lit_early_phase")),  # pure constants: no other layer, no library
        ("knobs.py", ("lightning", "lit_early_phase.modules", "lit_early_phase.callbacks",
                      "lit_early_phase.strategies", "lit_early_phase.datamodules")),
        ("strategies", ("lit_early_phase.modules", "lit_early_phase.callbacks", "lit_early_phase.datamodules")),
        ("callbacks", ("lit_early_phase.modules", "lit_early_phase.datamodules")),
        ("callbacks/boundary.py", ("lightning", "torch", "lit_early_phase.strategies", "lit_early_phase.knobs",
                                   "lit_early_phase.reporting", "lit_early_phase.callbacks.enlightenment")),
        ("datamodules", ("lit_early_phase.modules", "lit_early_phase.callbacks", "lit_early_phase.strategies")),
        ("reporting", ("lit_early_phase.modules", "lit_early_phase.datamodules", "lit_early_phase.callbacks",
                       "lit_early_phase.strategies", "lit_early_phase.cli")),
        ("finder/rule.py", ("lightning", "torch", "lit_early_phase.modules", "lit_early_phase.callbacks",
                            "lit_early_phase.datamodules", "lit_early_phase.strategies")),
        ("finder/pilot.py", ("lit_early_phase.modules", "lit_early_phase.datamodules", "lit_early_phase.cli")),
        ("hf", ("lit_early_phase.modules", "lit_early_phase.datamodules", "lit_early_phase.callbacks",
                "lit_early_phase.strategies")),
    ],
)  # fmt: skip
def test_imports_flow_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_reporting_uses_no_part_of_the_package_but_the_keys() -> None:
    used = {name for path in _files("reporting") for name in _imports(path) if name.startswith("lit_early_phase")}
    outside = {n for n in used if not n.startswith(("lit_early_phase.reporting", "lit_early_phase.keys"))}
    assert outside <= {"lit_early_phase"}  # `from lit_early_phase import keys` reads as this package name
    assert "lit_early_phase.keys" in used or any(n.startswith("lit_early_phase.keys.") for n in used)


def test_the_import_walk_sees_function_level_imports(tmp_path: Path) -> None:
    # the callback once imported the module layer inside a hook; the walk must catch that form too
    source = tmp_path / "x.py"
    source.write_text("def hook():\n    from lit_early_phase.modules.mixin import EnlightenmentMixin\n")
    assert "lit_early_phase.modules.mixin" in _imports(source)


def test_strategies_and_the_callback_load_neither_timm_nor_transformers_nor_peft() -> None:
    # `import lightning` alone loads torchmetrics, whose text metrics import transformers when it is installed;
    # what the package adds on top of Lightning must hold none of the three.
    code = (
        "import sys, lightning\n"
        "before = set(sys.modules)\n"
        "import lit_early_phase.strategies, lit_early_phase.callbacks, lit_early_phase\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.split('.')[0] in ('timm', 'transformers', 'peft')))\n"
        "print(sorted(m for m in ('timm', 'peft') if m in sys.modules))\n"
        "print(sorted(m for m in new if m.startswith('lit_early_phase.modules')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]", "[]"]


def test_lazy_names_of_the_package_still_work() -> None:
    import lit_early_phase
    from lit_early_phase.knobs import Knobs
    from lit_early_phase.modules.classifier import ImageClassifier
    from lit_early_phase.modules.knobs import Knobs as OldPathKnobs

    assert lit_early_phase.ImageClassifier is ImageClassifier
    assert OldPathKnobs is Knobs  # the core's old import path still works
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        _ = lit_early_phase.NotAName


def test_no_file_under_src_is_longer_than_the_limit() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
