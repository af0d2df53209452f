"""One home for the logged keys: no key literal under ``src/`` outside ``lit_early_phase/keys.py``.

Every string constant (f-strings' constant parts included) is read with ``ast``; one that starts with a key
prefix names its file and line in the failure, and so does a key built outside keys.py from a prefix constant
(``X_PREFIX + "name"``, ``f"{X_PREFIX}name"``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from lit_early_phase import keys

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lit_early_phase"
KEYS_FILE = PACKAGE / "keys.py"
#: the package's own prefixes, and Lightning's ``trainer/`` (the W&B step metric lives in keys.py too)
PREFIXES: tuple[str, ...] = (*keys.KEY_PREFIXES, keys.WANDB_STEP_KEY.split("/")[0] + "/")


def _names_a_prefix(node: ast.AST) -> bool:
    """``X_PREFIX`` / ``K.X_PREFIX`` (also inside an f-string's ``{...}``): a key prefix of keys.py."""
    node = node.value if isinstance(node, ast.FormattedValue) else node
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.endswith("_PREFIX")


def _builds_a_key(node: ast.AST) -> bool:
    """``X_PREFIX + "..."`` or ``f"{X_PREFIX}..."``: a key made from a prefix constant."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _names_a_prefix(node.left)
    return isinstance(node, ast.JoinedStr) and bool(node.values) and _names_a_prefix(node.values[0])


def key_literals(path: Path, root: Path) -> list[str]:
    """``file:line: 'literal'`` for each string constant in ``path`` that starts with one of :data:`PREFIXES`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        # ast.walk visits the Constant parts of an f-string (JoinedStr.values) too
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(PREFIXES):
            found.append((node.lineno, node.col_offset, node.value))
        elif _builds_a_key(node):
            found.append((node.lineno, node.col_offset, ast.unparse(node)))
    return [f"{path.relative_to(root)}:{line}: {value!r}" for line, _, value in sorted(found)]


def test_no_key_literal_outside_the_keys_module() -> None:
    files = sorted(p for p in PACKAGE.rglob("*.py") if p != KEYS_FILE)
    assert len(files) > 50  # the walk really covers the package
    found = [hit for path in files for hit in key_literals(path, PACKAGE.parent)]
    assert found == [], "key literals outside lit_early_phase/keys.py (import them from there):\n" + "\n".join(found)


def test_the_scan_finds_plain_and_fstring_keys(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        'A = "enlightenment/phase"\n'
        'def f(name):\n    return f"diagnostics/dead/{name}"\n'
        'B = f"{A}: enlightenment/phase in a sentence"\n'  # not a key: it does not start with the prefix
        'STEP = "trainer/global_step"\n'
        'C = ENLIGHTENMENT_PREFIX + "phase"\n'
        'D = f"{K.DIAGNOSTICS_PREFIX}benr"\n'
        "E = name.startswith(K.DIAGNOSTICS_PREFIX)\n"  # reading a prefix is fine: no key is built
    )
    assert key_literals(source, tmp_path) == [
        "x.py:1: 'enlightenment/phase'",
        "x.py:3: 'diagnostics/dead/'",
        "x.py:5: 'trainer/global_step'",
        "x.py:6: \"ENLIGHTENMENT_PREFIX + 'phase'\"",
        "x.py:7: \"f'{K.DIAGNOSTICS_PREFIX}benr'\"",
    ]


def test_the_keys_module_holds_every_key_once() -> None:
    named = {name: v for name, v in vars(keys).items() if name.isupper() and isinstance(v, str)}
    prefixes = {keys.ENLIGHTENMENT_PREFIX, keys.DIAGNOSTICS_PREFIX, keys.DEAD_LAYER_PREFIX}
    values = [v for v in named.values() if v not in prefixes]
    assert len(values) == len(set(values))  # no two names for one key
    assert all(v.startswith(PREFIXES) for v in values)
    lists = (keys.LOGGED_KEYS, keys.SUMMARY_KEYS, keys.DIAGNOSTICS_LOGGED_KEYS)
    assert all(len(k) == len(set(k)) and set(k) <= set(values) for k in lists)
    assert keys.dead_layer_key("model.relu") == "diagnostics/dead/model.relu"
    assert keys.dead_layer_key("a").startswith(keys.DEAD_LAYER_PREFIX)
