"""LoRA through peft: wrap a model, and check that a checkpoint's adapter is exactly a module's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from lit_early_phase.hf.imports import require

DEFAULT_LORA_TARGETS = ("q_proj", "v_proj")


def add_lora(model: Any, *, r: int, alpha: float, dropout: float, targets: list[str] | str | None) -> Any:
    """Wrap ``model`` with a peft LoRA adapter on ``targets``; only the adapter is trainable then.

    Args:
        model: a transformers causal LM.
        r: LoRA rank (> 0).
        alpha: LoRA scaling α (the update is scaled by ``alpha / r``).
        dropout: dropout on the LoRA input.
        targets: module names to adapt (``None``: :data:`DEFAULT_LORA_TARGETS`), or ``"all-linear"``.

    Returns:
        The ``PeftModel``.

    Raises:
        ValueError: for targets that are not linear modules of the model (the message lists those it has).

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        ...                   num_attention_heads=2, num_key_value_heads=2, vocab_size=100)
        >>> add_lora(LlamaForCausalLM(cfg), r=4, alpha=8, dropout=0.0, targets=["c_attn"])
        Traceback (most recent call last):
        ...
        ValueError: `lora_target_modules=['c_attn']`: ['c_attn'] not among the model's linear modules ...
    """
    peft = require("peft")
    targets = list(DEFAULT_LORA_TARGETS) if targets is None else targets
    if isinstance(targets, str) and targets != "all-linear":
        targets = [targets]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    if isinstance(targets, list):
        missing = [t for t in targets if t not in linear]
        if missing or not targets:
            raise ValueError(
                f"`lora_target_modules={targets!r}`: {missing or 'none given'} not among the model's "
                f"linear modules {linear}. Pick from those, or use 'all-linear'."
            )
    config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, config)


def check_adapter_keys(
    saved: Iterable[str], *, known: Iterable[str], trainable: Iterable[str], hparams: Mapping[str, Any]
) -> None:
    """Refuse a checkpoint whose adapter is not exactly the module's.

    Lightning loads adapter-only checkpoints with ``strict=False`` (the frozen base is not in them), which alone
    would let a renamed, missing or extra key pass silently.

    Args:
        saved: the checkpoint's keys.
        known: every parameter and buffer name of the module.
        trainable: the module's trainable tensors' names (each must be in the checkpoint).
        hparams: the checkpoint's hyper-parameters (their ``model``, ``lora_r``, ``lora_target_modules`` are named
            in the message).

    Raises:
        RuntimeError: naming the keys that do not match, and what to do.
    """
    saved = set(saved)
    unknown = sorted(saved - set(known))
    missing = sorted(set(trainable) - saved)
    if not (unknown or missing):
        return
    saved_with = {k: hparams[k] for k in ("model", "lora_r", "lora_target_modules") if k in hparams}
    raise RuntimeError(
        f"The checkpoint does not hold this CausalLMFineTune's LoRA adapter: {len(unknown)} of its keys are not "
        f"in the module {unknown[:3]}{' ...' if len(unknown) > 3 else ''} and {len(missing)} trainable tensors "
        f"of the module are not in it {missing[:3]}{' ...' if len(missing) > 3 else ''}. Resume with the base "
        f"`model`, `lora_r` and `lora_target_modules` it was trained with"
        f"{f' (saved: {saved_with})' if saved_with else ''}."
    )
