"""Load tokenizers and causal LMs (GGUF included), and save / reload what a fine-tune wrote.

A saved directory is what transformers and peft read back (``from_pretrained``), plus a small sidecar
(``lit_early_phase.json``) that records the base model of a LoRA adapter, so :func:`load_finetuned` finds it again.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from lit_early_phase.hf.imports import require
from lit_early_phase.hf.sources import SMOLLM2, load_error, resolve_model_source

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Written next to a saved model: what it was fine-tuned from, so an adapter can find its base again.
SIDECAR = "lit_early_phase.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Dtype = Literal["float32", "bfloat16", "float16"]
SaveKind = Literal["full", "lora", "merged"]


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(path: str, gguf_file: str | None, local_files_only: bool) -> PreTrainedTokenizerBase:
    transformers = require("transformers")
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    return transformers.AutoTokenizer.from_pretrained(path, local_files_only=local_files_only, **kwargs)


def load_tokenizer(
    model: str = SMOLLM2, *, gguf_file: str | None = None, local_files_only: bool = False
) -> PreTrainedTokenizerBase:
    """Load a tokenizer (cached per process: reading one from a GGUF takes seconds), with a pad token.

    A tokenizer without a pad token gets its eos token as pad (padding is masked from the loss anyway).

    Args:
        model: as for :func:`~lit_early_phase.hf.resolve_model_source`.
        gguf_file: GGUF file name inside a directory ``model``.
        local_files_only: never contact the hub.

    Returns:
        The tokenizer (the same object for the same arguments within a process).

    Raises:
        FileNotFoundError: see :func:`~lit_early_phase.hf.resolve_model_source`.
        OSError: when a hub name cannot be loaded.

    Example:
        >>> tok = load_tokenizer()  # doctest: +SKIP
        >>> tok.eos_token, tok.pad_token  # doctest: +SKIP
        ('<|im_end|>', '<|im_end|>')
    """
    source = resolve_model_source(model, gguf_file)
    try:
        tokenizer = _cached_tokenizer(source.path, source.gguf_file, local_files_only)
    except OSError as err:
        if source.local:
            raise
        raise load_error("tokenizer", source, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def plain_model(model: PreTrainedModel) -> PreTrainedModel:
    """Make a GGUF-loaded model an ordinary float model (in place): its weights are already de-quantized.

    ``save_pretrained`` refuses a model whose ``hf_quantizer`` is GGUF, and peft would treat it as quantized.

    Args:
        model: a transformers model (any other is returned unchanged).

    Returns:
        ``model``.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    return model


def load_causal_lm(
    model: str = SMOLLM2,
    *,
    gguf_file: str | None = None,
    dtype: Dtype = "float32",
    local_files_only: bool = False,
) -> PreTrainedModel:
    """Load a causal LM from a name, a directory, a GGUF file or a saved LoRA adapter (with its base).

    Args:
        model: as for :func:`~lit_early_phase.hf.resolve_model_source`; a directory with ``adapter_config.json``
            is a LoRA adapter saved by :meth:`CausalLMFineTune.save_pretrained
            <lit_early_phase.modules.CausalLMFineTune.save_pretrained>` (returned as a trainable ``PeftModel``).
        gguf_file: GGUF file name inside a directory ``model``.
        dtype: weights' dtype (GGUF weights are de-quantized to it).
        local_files_only: never contact the hub.

    Returns:
        The model (``PreTrainedModel`` or ``PeftModel``).

    Raises:
        FileNotFoundError: for missing paths (see :func:`~lit_early_phase.hf.resolve_model_source`), or an adapter
            whose base is unknown.
        OSError: when a hub name cannot be loaded.
        ValueError: for an unknown ``dtype``.

    Example:
        >>> model = load_causal_lm()  # doctest: +SKIP
        >>> sum(p.numel() for p in model.parameters())  # doctest: +SKIP
        134515008
    """
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {list(DTYPES)}, got {dtype!r}.")
    transformers = require("transformers")
    source = resolve_model_source(model, gguf_file)
    directory = Path(source.path)
    if source.local and (directory / "adapter_config.json").is_file():
        return _load_adapter(directory, dtype=dtype, local_files_only=local_files_only)
    try:
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            source.path, dtype=DTYPES[dtype], local_files_only=local_files_only, **source.kwargs()
        )
    except OSError as err:
        if source.local:
            raise
        raise load_error("model", source, err) from err
    return plain_model(loaded)


def _load_adapter(directory: Path, *, dtype: Dtype, local_files_only: bool, base: Any = None) -> Any:
    peft = require("peft")
    if base is None:
        sidecar = directory / SIDECAR
        info = json.loads(sidecar.read_text()).get("base_model") if sidecar.is_file() else None
        if not info:
            raise FileNotFoundError(
                f"`{directory}` holds a LoRA adapter but not where its base model is ({SIDECAR} is missing "
                f"or the base was passed as an object). Use `load_finetuned(directory, base_model=...)`."
            )
        base = load_causal_lm(
            info["model"], gguf_file=info.get("gguf_file"), dtype=dtype, local_files_only=local_files_only
        )
    return peft.PeftModel.from_pretrained(base, str(directory), is_trainable=True)


def save_finetuned(
    model: Any,
    tokenizer: Any,
    directory: str | os.PathLike,
    *,
    kind: SaveKind,
    base_model: dict[str, Any] | None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` where transformers / peft reload them, and the sidecar :data:`SIDECAR`.

    Args:
        model: a transformers model, or a peft model (then only its adapter is written).
        tokenizer: its tokenizer (written if it has ``save_pretrained``).
        directory: where to write (created if needed).
        kind: what is written, recorded in the sidecar: ``"full"``, ``"lora"`` (an adapter) or ``"merged"``.
        base_model: ``{"model": ..., "gguf_file": ...}`` the fine-tune started from (``None`` when it was an
            object), recorded so that :func:`load_finetuned` finds an adapter's base.
        state_dict: the model's full state when its own tensors are shards (FSDP); ``None`` reads the model.

    Returns:
        The directory.
    """
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    kwargs = {} if state_dict is None else {"state_dict": state_dict}
    plain_model(model).save_pretrained(str(path), **kwargs)
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(path))
    (path / SIDECAR).write_text(json.dumps({"kind": kind, "base_model": base_model}, indent=2) + "\n")
    return path


def load_finetuned(
    directory: str | os.PathLike, *, base_model: str | PreTrainedModel | None = None, dtype: Dtype = "float32"
) -> tuple[Any, PreTrainedTokenizerBase]:
    """Reload what :func:`save_finetuned` wrote: a full or merged model, or a LoRA adapter on its base.

    Args:
        directory: the save directory.
        base_model: for an adapter, the base model (name/path, or a fresh model object); ``None`` reads it
            from the ``lit_early_phase.json`` written at save time.
        dtype: weights' dtype.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.

    Raises:
        FileNotFoundError: if ``directory`` holds no saved model.

    Example:
        >>> model, tok = load_finetuned("runs/smollm2-lora/final")  # doctest: +SKIP
    """
    path = Path(directory).expanduser()
    if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        raise FileNotFoundError(f"`{path}` holds no saved model (no config.json or adapter_config.json).")
    if (path / "adapter_config.json").is_file():
        base = load_causal_lm(base_model, dtype=dtype) if isinstance(base_model, str) else base_model
        model = _load_adapter(path, dtype=dtype, local_files_only=True, base=base)
    else:
        model = load_causal_lm(str(path), dtype=dtype, local_files_only=True)
    return model.eval(), load_tokenizer(str(path), local_files_only=True)
