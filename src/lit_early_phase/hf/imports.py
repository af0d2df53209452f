"""The optional packages of the language-model side, checked with Lightning's ``RequirementCache``.

transformers and peft are the ``llm`` extra: the rest of the package (strategies, callbacks, the classifier)
must import without them, so they are imported on first use, and a missing or too old one fails with the
command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Literal

from lightning_utilities.core.imports import RequirementCache

#: The versions of ``pyproject.toml``'s ``llm`` extra.
REQUIREMENTS = {
    "transformers": RequirementCache("transformers>=5.0"),
    "peft": RequirementCache("peft>=0.17"),
}
LLM_EXTRA = "pip install 'lit-early-phase[llm]'"


def require(package: Literal["transformers", "peft"]) -> ModuleType:
    """Import ``package``, or say how to install it.

    Args:
        package: ``"transformers"`` or ``"peft"``.

    Returns:
        The imported module.

    Raises:
        ModuleNotFoundError: when the package is missing or older than the ``llm`` extra asks (the message has the
            ``pip install`` command).

    Example:
        >>> require("transformers").__name__
        'transformers'
    """
    requirement = REQUIREMENTS[package]
    if not requirement:
        raise ModuleNotFoundError(
            f"CausalLMFineTune needs `{package}`: `{LLM_EXTRA}` (transformers, peft, gguf, accelerate). "
            f"{requirement.message}."
        )
    return importlib.import_module(package)
