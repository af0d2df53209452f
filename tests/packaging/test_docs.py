"""The API reference (docs/conf.py): each public package's ``__all__`` is complete and resolves, and the built
site (``make docs``) has a page for every name."""

from __future__ import annotations

import html
import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

# the repository root, wherever under tests/ this file lives
DOCS = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()) / "docs"
SITE = DOCS / "_build" / "html"


def _conf() -> ModuleType:
    pytest.importorskip("sphinx", reason="the `docs` extra is not installed")
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


CONF = _conf()
PACKAGES = CONF.API_PACKAGES


def test_every_public_package_is_documented() -> None:
    assert set(PACKAGES) == {
        "lit_early_phase",
        "lit_early_phase.strategies",
        "lit_early_phase.callbacks",
        "lit_early_phase.modules",
        "lit_early_phase.datamodules",
        "lit_early_phase.functional",
        "lit_early_phase.finder",
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{package}.__all__ lists a name twice"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_public_definitions_are_in_all(package: str) -> None:
    module = importlib.import_module(package)
    left_out = [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and (obj.__module__ == package or obj.__module__.startswith(package + "."))
        and name not in module.__all__
    ]
    assert not left_out, f"{package} defines public names missing from its __all__: {left_out}"


def test_home_is_the_closest_exporting_package() -> None:
    assert CONF.home("lit_early_phase", "EnlightenmentCallback") == "lit_early_phase.callbacks"
    assert CONF.home("lit_early_phase.callbacks", "EnlightenmentCallback") == "lit_early_phase.callbacks"
    assert CONF.home("lit_early_phase", "MixupPause") == "lit_early_phase.strategies"
    assert CONF.home("lit_early_phase.functional", "mix_batch") == "lit_early_phase.functional"


@pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built (`make docs`)")
@pytest.mark.parametrize("package", PACKAGES)
def test_built_site_has_a_page_per_name(package: str) -> None:
    assert (SITE / "api" / f"{package}.html").exists(), "rebuild the site: make docs"
    pages = {
        name: SITE / "api" / "generated" / f"{CONF.home(package, name)}.{name}.html"
        for name in importlib.import_module(package).__all__
    }
    missing = sorted(name for name, page in pages.items() if not page.exists())
    assert not missing, f"no page for {package}: {missing} (rebuild the site: make docs)"


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", html.unescape(re.sub(r"<[^>]+>", " ", text))))


@pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built (`make docs`)")
@pytest.mark.parametrize("package", PACKAGES)
def test_constants_show_their_comment_not_their_type_docstring(package: str) -> None:
    module = importlib.import_module(package)
    shown = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or callable(obj) or type(obj).__doc__ is None:
            continue
        page = SITE / "api" / "generated" / f"{CONF.home(package, name)}.{name}.html"
        type_doc = " ".join(_words(type(obj).__doc__).split()[:8])
        if page.exists() and type_doc in _words(page.read_text()):
            shown.append(name)
    assert not shown, f"pages of {package} show a builtin type's docstring: {shown}"


@pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built (`make docs`)")
@pytest.mark.parametrize(
    ("name", "defined_in"),
    [("lit_early_phase.functional.MixMode", "mix_params"), ("lit_early_phase.functional.IGNORE_INDEX", "tokens")],
)
def test_reexported_constant_page_shows_the_comment_where_it_is_assigned(name: str, defined_in: str) -> None:
    from sphinx.pycode import ModuleAnalyzer

    comment = ModuleAnalyzer.for_module(f"lit_early_phase.functional.{defined_in}").find_attr_docs()
    text = _words(" ".join(comment["", name.rsplit(".", 1)[1]]))
    assert text and text in _words((SITE / "api" / "generated" / f"{name}.html").read_text())
