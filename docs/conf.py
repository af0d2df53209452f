"""Sphinx configuration: the API reference, generated at build time from each public package's ``__all__``.

The pages under ``docs/api/`` are written by :func:`write_api_pages` when the build starts, so moving a module
inside a package changes no file here. Every public name gets one page, at its home: the listed package that
exports it and is the closest to the module that defines it (``EnlightenmentCallback`` lives at
``lit_early_phase.callbacks``); the other packages that re-export it link to that page. One page per object keeps
cross-references unambiguous. Offline: no intersphinx.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from sphinx.pycode import ModuleAnalyzer

DOCS = Path(__file__).resolve().parent
# document this checkout's source, not whatever copy of the package the environment has installed
sys.path.insert(0, str(DOCS.parent / "src"))

import lit_early_phase  # noqa: E402  (after the path above)

project = "lit-early-phase"
author = "lit-early-phase developers"
copyright = "lit-early-phase developers"
release = lit_early_phase.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# autodoc / autosummary: the stubs come from the package pages written below; each class page lists its own
# documented members in source order
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# napoleon: the docstrings are Google style; `Attributes:` as fields, so a dataclass field documented there is
# not described a second time by autodoc
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

# myst: `docs/*.md` are the prose pages; heading anchors so `page.md#section` links resolve
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"lit-early-phase {release}"

# The packages whose public names (`__all__`) get pages, in the order the API index lists them.
API_PACKAGES = (
    "lit_early_phase",
    "lit_early_phase.strategies",
    "lit_early_phase.callbacks",
    "lit_early_phase.modules",
    "lit_early_phase.datamodules",
    "lit_early_phase.functional",
    "lit_early_phase.finder",
)
API_DIR = DOCS / "api"


def public_names(package: str) -> list[str]:
    """The names a package exports (its ``__all__``), sorted."""
    return sorted(importlib.import_module(package).__all__)


def home(package: str, name: str) -> str:
    """The listed package whose page documents ``package.name``.

    Among the listed packages that export the same object under the same name, the one whose name is the longest
    prefix of the module that defines it; when none is (a constant, a name re-exported from a private module),
    the first of them in :data:`API_PACKAGES`.
    """
    obj = getattr(importlib.import_module(package), name)
    exporters = [
        p for p in API_PACKAGES if name in public_names(p) and getattr(importlib.import_module(p), name) is obj
    ]
    defined_in = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) else None
    if isinstance(defined_in, str):
        prefixes = [p for p in exporters if defined_in == p or defined_in.startswith(p + ".")]
        if prefixes:
            return max(prefixes, key=len)
    return exporters[0] if exporters else package


def _relative(target: str, package: str) -> str:
    return target.removeprefix(package + ".") if target.startswith(package + ".") else target


def _package_page(package: str) -> str:
    names = public_names(package)
    own = [n for n in names if home(package, n) == package]
    # autosummary reads an entry relative to the current module: a home below it is written relative
    elsewhere = [f"~{_relative(home(package, n), package)}.{n}" for n in names if home(package, n) != package]
    title = f"``{package}``"
    lines = [
        title,
        "=" * len(title),
        "",
        f".. automodule:: {package}",
        "   :no-members:",
        "",
        f".. currentmodule:: {package}",
        "",
    ]
    if own:
        lines += [".. autosummary::", "   :toctree: generated", "", *(f"   {n}" for n in own), ""]
    if elsewhere:
        lines += [
            "Also exported here, documented where they live:",
            "",
            ".. autosummary::",
            "",
            *(f"   {n}" for n in elsewhere),
            "",
        ]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    # rewrite only on change, so an incremental build does not re-read unchanged pages
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api_pages(app: Any = None, config: Any = None) -> None:
    """Write ``docs/api/index.rst`` and one page per package listing its public names (autosummary stubs).

    Pages and stubs of names no longer public are deleted: left behind, they would be documents outside every
    toctree (a warning, so an error under ``-W``) on the next incremental build.
    """
    API_DIR.mkdir(exist_ok=True)
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {package}" for package in API_PACKAGES]
    pages = {API_DIR / "index.rst": "\n".join(index) + "\n"}
    pages.update({API_DIR / f"{package}.rst": _package_page(package) for package in API_PACKAGES})
    for path, text in pages.items():
        _write(path, text)
    stubs = {f"{home(package, name)}.{name}.rst" for package in API_PACKAGES for name in public_names(package)}
    stale = [p for p in API_DIR.glob("*.rst") if p not in pages]
    stale += [p for p in (API_DIR / "generated").glob("*.rst") if p.name not in stubs]
    for path in stale:
        path.unlink()


def constant_doc(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Document a re-exported constant with the ``#:`` comment where it is assigned, not its type's docstring.

    autodoc reads ``#:`` comments only in the module it documents (the package), so a constant defined in a
    submodule and exported by the package would show ``int``'s or ``str``'s docstring, and a type alias only its
    "alias of" line. The comment is looked up in the exporting package's modules first, then in the rest of the
    distribution; none found leaves no text.
    """
    if what != "data":
        return
    if lines and " ".join(" ".join(lines).split()) != " ".join((type(obj).__doc__ or "").split()):
        return  # a docstring or comment of its own
    package, attr = name.rsplit(".", 1)
    lines[:] = []
    for module_name in [*_modules(package), *_modules(package.split(".")[0])]:
        comment = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
        if comment:
            lines[:] = list(comment)
            return


def _modules(package: str) -> list[str]:
    path = getattr(importlib.import_module(package), "__path__", [])
    return [package, *(info.name for info in pkgutil.walk_packages(path, package + "."))]


def setup(app: Any) -> None:
    """Write the API pages when the configuration is read: before Sphinx lists the source files."""
    app.connect("config-inited", write_api_pages)
    app.connect("autodoc-process-docstring", constant_doc)
