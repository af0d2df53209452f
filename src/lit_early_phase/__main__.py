"""``lit-early-phase`` (and ``python -m lit_early_phase``): the one dispatcher on top of every command.

LightningCLI's subcommands (``fit``, ``validate``, ``test``, ``predict``) go to
:func:`lit_early_phase.cli.build_cli`; ``recipes`` to :mod:`lit_early_phase.recipes`; ``find`` to
:mod:`lit_early_phase.finder.command`; ``dashboard`` to :mod:`lit_early_phase.reporting.dashboard`.
Every command is registered here, and nothing in the package imports this module back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def _find(argv: list[str]) -> int:
    from lit_early_phase.finder import command

    return command.main(argv)


def _recipes(argv: list[str]) -> int:
    from lit_early_phase import recipes

    return recipes.main(argv)


def _dashboard(argv: list[str]) -> int:
    from lit_early_phase.reporting import dashboard

    return dashboard.main(argv)


#: the commands besides LightningCLI's: name -> (entry point taking the arguments after the name, one-line help)
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "recipes": (_recipes, "`recipes`: the packaged recipes, one line each (`--config NAME` runs one)"),
    "find": (_find, "`find --config recipe.yaml`: which strategy, and will the period matter (a short pilot run)"),
    "dashboard": (_dashboard, "`dashboard --entity E --project P`: a W&B workspace for the runs (`--print`: its JSON)"),
}


def commands_help() -> str:
    """The ``--help`` text that names the commands besides LightningCLI's, one line each.

    Returns:
        The text: ``"More commands (each has --help): ..."``.

    Example:
        >>> commands_help().startswith("More commands (each has --help): `recipes`: the packaged recipes")
        True
    """
    return "More commands (each has --help): " + "; ".join(text for _, text in COMMANDS.values()) + "."


def main(args: list[str] | None = None) -> None:
    """Console-script entry point ``lit-early-phase``: LightningCLI's subcommands, ``recipes``, ``find``, ``dashboard``.

    Args:
        args: command-line arguments (``None`` reads ``sys.argv``).

    Raises:
        SystemExit: with the exit status of ``recipes``, ``find`` and ``dashboard`` (LightningCLI's subcommands return).

    Example:
        >>> main(["dashboard", "--help"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        SystemExit: 0
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] and argv[0] in COMMANDS:
        entry, _ = COMMANDS[argv[0]]
        sys.exit(entry(argv[1:]))
    from lit_early_phase.cli import EPILOG, build_cli
    from lit_early_phase.recipes import UnknownRecipeError

    try:
        # `args` as given: LightningCLI reads sys.argv itself when it is None (and warns when given both)
        build_cli(args, epilog=f"{EPILOG} {commands_help()}", prog="lit-early-phase")
    except UnknownRecipeError as error:  # a usage error, as argparse reports one: no traceback
        print(f"lit-early-phase: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
