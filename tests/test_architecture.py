"""The layers' import rules (docs/architecture.md), read from the source so that a new import breaks a test.

callbacks -> strategies -> core (knobs.py) <- modules <- functional; callbacks -> reporting (figure, loggers,
W&B, dashboard), which imports none of the package's layers but the core's keys.py (the logged keys: pure
constants, no import); datamodules import no module; functional imports no Lightning; the finder's rule is pure
Python and its pilot knows no module or data module (only the ``find`` command reaches the CLI); ``__main__``
dispatches on top and nothing imports it; ``cli`` knows neither the finder nor the dashboard; the layers' import
graph has no cycle. No module imports a callback. Nothing keeps a name importable from an old path; nothing under
src/ grows past ~500 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lit_early_phase"
MAX_LINES = 500


def _is_module(name: str) -> bool:
    """Whether ``name`` (dotted) is a module or package of this source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _literal_import(node: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")``, ``import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports and literal ``import_module`` included).

    ``from package import name`` counts as an import of ``package.name`` (and of ``package`` itself unless
    ``package.name`` is a module of this tree: ``from lit_early_phase import _compat`` imports ``_compat``, not the
    package's public names).
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                if not _is_module(f"{node.module}.{alias.name}"):
                    names.add(node.module)
        elif isinstance(node, ast.Call) and (literal := _literal_import(node)):
            names.add(literal)
    return names


def _files(layer: str) -> list[Path]:
    target = PACKAGE / layer
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def _violations_in(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files:
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path} imports {name}")
    return found


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return _violations_in(_files(layer), forbidden)


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
                       "lit_early_phase.strategies", "lit_early_phase.cli", "lit_early_phase.finder")),
        ("modules", ("lit_early_phase.callbacks", "lit_early_phase.strategies", "lit_early_phase.datamodules")),
        ("cli.py", ("lit_early_phase.finder", "lit_early_phase.reporting.dashboard")),
        ("finder/rule.py", ("lightning", "torch", "lit_early_phase.modules", "lit_early_phase.callbacks",
                            "lit_early_phase.datamodules", "lit_early_phase.strategies")),
        ("finder/pilot.py", ("lit_early_phase.modules", "lit_early_phase.datamodules", "lit_early_phase.cli")),
        ("hf", ("lit_early_phase.modules", "lit_early_phase.datamodules", "lit_early_phase.callbacks",
                "lit_early_phase.strategies")),
        ("recipes", ("lightning", "torch", "lit_early_phase")),
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


def test_the_import_walk_sees_import_module_strings(tmp_path: Path) -> None:
    # causal_lm once loaded the prediction-writer callback through importlib, which the walk could not see
    source = tmp_path / "x.py"
    source.write_text(
        "import importlib\nfrom importlib import import_module\n"
        "def writer():\n    return importlib.import_module('lit_early_phase.callbacks.predictions')\n"
        "def finder():\n    return import_module('lit_early_phase.finder.command')\n"
        "def board():\n    return __import__('lit_early_phase.reporting.dashboard')\n"
        "def dynamic(name):\n    return importlib.import_module(name)\n"
    )
    imported = _imports(source)
    assert {
        "lit_early_phase.callbacks.predictions",
        "lit_early_phase.finder.command",
        "lit_early_phase.reporting.dashboard",
    } <= imported
    assert _violations_in([source], ("lit_early_phase.callbacks",)) != []


def test_nothing_imports_the_dispatcher() -> None:
    # __main__ registers every command and sits on top: an import of it from below would be a cycle
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"]
    assert _violations_in(files, ("lit_early_phase.__main__",)) == []
    assert "lit_early_phase.finder.command" in _imports(PACKAGE / "__main__.py")  # the walk reads it at all


def _layer(module: str) -> str:
    """The layer of a dotted module of the package: its first name below the package (the package itself: ``""``)."""
    return module.split(".")[1] if "." in module else ""


def _layer_graph(package: Path) -> dict[str, set[str]]:
    """Layer -> the other layers its files import (module-level, function-level and literal ``import_module``)."""
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        source = _layer(".".join((package.name, *parts)) if parts != ("__init__",) else package.name)
        targets = {_layer(n) for n in _imports(path) if n == package.name or n.startswith(package.name + ".")}
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as the list of its nodes (first repeated at the end), or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node], found = 1, []
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return found

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_layers_import_graph_has_no_cycle() -> None:
    graph = _layer_graph(PACKAGE)
    assert {"cli", "__main__", "finder", "reporting", "modules", "callbacks"} <= set(graph)
    assert "cli" in graph["finder"] and "cli" in graph["__main__"]  # find builds on the CLI, the dispatcher on both
    assert _cycle(graph) == []


def test_the_cycle_check_fails_on_cli_and_finder_importing_each_other(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE.name
    (package / "finder").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "finder" / "__init__.py").write_text("")
    (package / "finder" / "command.py").write_text("def main():\n    from lit_early_phase.cli import build_cli\n")
    (package / "cli.py").write_text(
        "import importlib\ndef main():\n    importlib.import_module('lit_early_phase.finder.command')\n"
    )
    assert _cycle(_layer_graph(package)) in (["cli", "finder", "cli"], ["finder", "cli", "finder"])
    (package / "cli.py").write_text("def build_cli():\n    pass\n")
    assert _cycle(_layer_graph(package)) == []


#: what a file says when it keeps a name importable from an old place (nothing was released: no old place exists)
SHIM_PHRASES = ("old import path", "old path", "older path", "alias remains", "re-exported here", "keep working",
                "keeps working", "stay importable", "stays importable", "still importable", "names of 0.x")  # fmt: skip


def _shim_phrases(path: Path) -> list[str]:
    text = " ".join(path.read_text().lower().split())  # phrases broken over two lines count too
    return [phrase for phrase in SHIM_PHRASES if phrase in text]


def test_no_file_keeps_an_old_import_path(tmp_path: Path) -> None:
    found = {str(p.relative_to(PACKAGE)): hits for p in sorted(PACKAGE.rglob("*.py")) if (hits := _shim_phrases(p))}
    assert found == {}
    shim = tmp_path / "knobs.py"
    shim.write_text('"""Old import path of the core, kept so that existing\nimports keep working."""\n')
    assert _shim_phrases(shim) == ["old import path", "keep working"]


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run at import time: the top level and the branches of a top-level try / if."""
    found = []
    for node in body:
        found.append(node)
        if isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                found += _top_level(block)
        elif isinstance(node, ast.If):
            found += _top_level(node.body) + _top_level(node.orelse)
    return found


def _definition(module: str, name: str) -> str | None:
    """The module whose top level defines ``name`` (def, class, assignment), following ``from x import name``.

    Returns the external module for a name imported from outside the package, ``None`` where nothing defines it.
    """
    path = PACKAGE.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    for node in _top_level(tree.body):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigned = {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
        if getattr(node, "name", None) == name or name in assigned:
            return module
    for node in ast.walk(tree):  # TYPE_CHECKING blocks too: the PEP 562 names are declared there
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = node.module
                    if source != PACKAGE.name and not source.startswith(PACKAGE.name + "."):
                        return source
                    return (
                        source + "." + alias.name
                        if _is_module(f"{source}.{alias.name}")
                        else _definition(source, alias.name)
                    )
    return None


def _exported(init: Path) -> tuple[str, list[str]]:
    """A package's dotted name and the names of its ``__all__``."""
    parts = init.parent.relative_to(PACKAGE.parent).parts
    tree = ast.parse(init.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ".".join(parts), [ast.literal_eval(e) for e in node.value.elts]
    return ".".join(parts), []


def test_each_package_exports_its_own_public_names() -> None:
    # one public path per name: a package lists what its own (public) modules define, not another layer's names
    wrong = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        package, names = _exported(init)
        for name in names:
            where = _definition(package, name)
            inside = where is not None and (where == package or where.startswith(package + "."))
            private = where is None or any(part.startswith("_") for part in where.split(".")[1:])
            if not inside or private:
                wrong.append(f"{package}.{name} is defined in {where}")
    assert wrong == []
    assert _definition("lit_early_phase.modules", "ImageClassifier") == "lit_early_phase.modules.classifier"
    assert _definition("lit_early_phase", "CausalLMFineTune") == "lit_early_phase.modules.causal_lm"  # PEP 562
    assert _definition("lit_early_phase.modules.causal_lm", "load_tokenizer") == "lit_early_phase.hf.loading"


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
    from lit_early_phase.modules.classifier import ImageClassifier

    assert lit_early_phase.ImageClassifier is ImageClassifier
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        _ = lit_early_phase.NotAName


def test_no_file_under_src_is_longer_than_the_limit() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_relative_imports() -> None:
    # the walk above reads absolute names only; the package writes every import absolute, and this keeps it so
    relative = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []
