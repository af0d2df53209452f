"""The YAML recipes shipped inside the package, found by name: ``lit-early-phase fit --config demo_fashion_mnist``.

Each recipe is a LightningCLI config file ``<name>.yaml`` in this folder whose first line is a one-line comment
that describes it. ``lit-early-phase recipes`` lists them; ``--config NAME`` (or ``--config recipe:NAME``, or
``-c NAME``, with or without ``.yaml``) runs one when ``NAME`` is not an existing file. Standard library only:
listing the recipes imports neither torch nor Lightning.

Example:
    >>> "demo_fashion_mnist" in names()
    True
    >>> recipe_path("recipe:demo_fashion_mnist.yaml").name
    'demo_fashion_mnist.yaml'
    >>> resolve_config_args(["fit", "-c", "demo_fashion_mnist"])[2] == str(recipe_path("demo_fashion_mnist"))
    True
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path

PREFIX = "recipe:"
"""The prefix that names a recipe explicitly (``--config recipe:NAME``), even when a file ``NAME`` exists."""

SUFFIX = ".yaml"

CONFIG_FLAGS = ("--config", "-c")
"""LightningCLI's config-file flags; their values are resolved by :func:`resolve_config_args`."""

HELP = (
    "`--config NAME` (or `-c NAME`) also takes the name of a packaged recipe, with or without `.yaml` "
    "(`--config demo_fashion_mnist`, or `--config recipe:demo_fashion_mnist` to prefer the recipe over a file of "
    "that name); `lit-early-phase recipes` lists them, `lit-early-phase recipes --show NAME` prints one to copy."
)
"""The recipe sentence of the commands' ``--help`` epilogs."""


def _folder() -> Path:
    # pip installs wheels unpacked, so the package's resources are plain files with a path
    return Path(str(files(__name__)))


def names() -> list[str]:
    """The packaged recipes' names, sorted (file names without ``.yaml``).

    Returns:
        The recipe names, e.g. ``["demo_fashion_mnist", ...]``.
    """
    return sorted(path.stem for path in _folder().glob(f"*{SUFFIX}"))


def _name(name: str) -> str:
    name = name.removeprefix(PREFIX)
    return name.removesuffix(SUFFIX)


class UnknownRecipeError(ValueError):
    """A ``--config`` value or recipe name that is neither an existing file nor a packaged recipe.

    The commands turn it into a usage error (``lit-early-phase: error: ...``, exit status 2), not a traceback.
    """


def recipe_path(name: str) -> Path:
    """The path of a packaged recipe.

    Args:
        name: a recipe name, with or without ``.yaml`` and the ``recipe:`` prefix.

    Returns:
        The recipe file's path inside the installed package.

    Raises:
        UnknownRecipeError: when no recipe has that name (the message lists the names).

    Example:
        >>> recipe_path("ucr_gunpoint_hlr").is_file()
        True
    """
    stem = _name(name)
    if stem not in names():
        raise UnknownRecipeError(
            f"No recipe named {name!r}. Packaged recipes: {', '.join(names())}. Give one of these names, or the "
            "path of your own YAML file (`lit-early-phase recipes` lists the recipes with a line each)."
        )
    return _folder() / f"{stem}{SUFFIX}"


def description(name: str) -> str:
    """A recipe's one-line description: the text of its first line, a ``#`` comment.

    Args:
        name: a recipe name, with or without ``.yaml`` and the ``recipe:`` prefix.

    Returns:
        The first line without its ``#``.

    Raises:
        ValueError: when no recipe has that name, or the recipe does not start with a comment line.
    """
    path = recipe_path(name)
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    text = first.removeprefix("#").strip()
    if not first.startswith("#") or not text:
        raise ValueError(f"{path} must start with a one-line `# description` comment; it starts with {first!r}.")
    return text


def _looks_inline(value: str) -> bool:
    # jsonargparse's --config also takes the YAML/JSON text itself (`--config '{trainer: {max_steps: 2}}'`)
    return "{" in value or "\n" in value or ": " in value


def resolve_config(value: str) -> str:
    """One ``--config`` value: a file or inline YAML as given, a recipe name as the packaged recipe's path.

    Args:
        value: what follows ``--config``: a path, ``NAME``, ``NAME.yaml``, ``recipe:NAME`` or inline YAML.

    Returns:
        ``value`` unchanged when it is an existing file (and has no ``recipe:`` prefix) or inline YAML, else the
        path of the recipe it names.

    Raises:
        UnknownRecipeError: when it is neither an existing file, inline YAML nor a recipe name (the message
            lists the names).
    """
    if not value.startswith(PREFIX) and (Path(value).is_file() or _looks_inline(value)):
        return value
    if not value.startswith(PREFIX) and _name(value) not in names():
        raise UnknownRecipeError(
            f"--config {value!r}: no such file, and no packaged recipe of that name. Packaged recipes: "
            f"{', '.join(names())}. Give one of these names (e.g. `--config {names()[0]}`) or the path of a YAML "
            "file that exists."
        )
    return str(recipe_path(value))


def resolve_config_args(argv: list[str]) -> list[str]:
    """Command-line arguments with every ``--config NAME`` / ``--config=NAME`` / ``-c NAME`` resolved.

    Args:
        argv: the arguments, e.g. ``["fit", "--config", "demo_fashion_mnist", "--trainer.max_steps", "2"]``.

    Returns:
        A new list where each config value went through :func:`resolve_config` (a recipe name becomes the
        packaged file's path; files and inline YAML stay as given).

    Raises:
        UnknownRecipeError: when a config value is neither a file, inline YAML nor a recipe name.
    """
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        if arg in CONFIG_FLAGS and i + 1 < len(resolved):
            resolved[i + 1] = resolve_config(resolved[i + 1])
        elif arg.startswith("--config="):
            resolved[i] = "--config=" + resolve_config(arg.removeprefix("--config="))
    return resolved


def main(argv: list[str] | None = None) -> int:
    """``lit-early-phase recipes``: one line per recipe (name and description); ``--path`` / ``--show`` one.

    Args:
        argv: the arguments after ``recipes`` (``None`` reads ``sys.argv``).

    Returns:
        The exit status (0; an unknown name exits with 2 through argparse).
    """
    parser = argparse.ArgumentParser(
        prog="lit-early-phase recipes",
        description="The YAML recipes shipped with lit-early-phase. Run one with "
        "`lit-early-phase fit --config NAME` (or `--config recipe:NAME`).",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--path", metavar="NAME", help="print the path of recipe NAME")
    group.add_argument("--show", metavar="NAME", help="print recipe NAME (to copy and edit)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.path is not None:
            print(recipe_path(args.path))
        elif args.show is not None:
            print(recipe_path(args.show).read_text(encoding="utf-8"), end="")
        else:
            width = max(map(len, names()))
            for name in names():
                print(f"{name:<{width}}  {description(name)}")
        sys.stdout.flush()
    except ValueError as error:
        parser.error(str(error))
    except BrokenPipeError:
        # the reader left early (`lit-early-phase recipes | head`): as a Unix tool, stop quietly (Python's docs'
        # pattern: point stdout at devnull so the interpreter's final flush does not raise again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
