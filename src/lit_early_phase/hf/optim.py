"""The optimizer and learning-rate schedule of :class:`~lit_early_phase.modules.CausalLMFineTune`.

By default AdamW and a linear warm-up then cosine (transformers' schedule), set by five shorthand arguments
(``lr``, ``weight_decay``, ``betas``, ``warmup``, ``min_lr_ratio``); an ``optimizer`` / ``lr_scheduler`` factory
replaces either. The optimizer always gets two parameter groups: no weight decay on biases and norms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from lit_early_phase._validation import check_int, check_number
from lit_early_phase.hf.imports import require

#: The defaults of the shorthand arguments (the signature of ``CausalLMFineTune`` uses them).
DEFAULT_LR, DEFAULT_WEIGHT_DECAY, DEFAULT_BETAS = 2e-4, 0.0, (0.9, 0.999)
DEFAULT_WARMUP, DEFAULT_MIN_LR_RATIO = 0.05, 0.1


def check_argument(check: Callable[..., Any], name: str, value: Any, **kwargs: Any) -> Any:
    """A :mod:`lit_early_phase._validation` check whose message starts with ``CausalLMFineTune(name=value)``.

    The fine-tune's errors have named the argument as typed (``lr=0``) since they were written; users and tests
    search for that form.

    Example:
        >>> check_argument(check_number, "lr", 0, low=0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: CausalLMFineTune(lr=0): `lr` must be a finite number > 0, got 0.
    """
    try:
        return check(name, value, **kwargs)
    except ValueError as err:
        raise ValueError(f"CausalLMFineTune({name}={value!r}): {err}") from None


def _refuse_beside(factory: str, given: dict[str, tuple[Any, Any]], replaced: str, example: str) -> None:
    changed = [f"{k}={v!r}" for k, (v, default) in given.items() if v != default]
    if changed:
        raise ValueError(
            f"CausalLMFineTune: {', '.join(changed)} configure{'s' if len(changed) == 1 else ''} the default "
            f"{replaced}, but `{factory}=` was given too and replaces it. Set {'it' if len(changed) == 1 else 'them'} "
            f"in `{factory}` instead (e.g. {example}), or leave `{factory}` out."
        )


def resolve_optimizer_factory(
    optimizer: Callable[..., torch.optim.Optimizer] | None,
    lr_scheduler: Callable[..., Any] | None,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] | list[float],
    warmup: int | float,
    min_lr_ratio: float,
) -> Callable[..., torch.optim.Optimizer]:
    """Check the shorthand arguments and return the optimizer factory (``optimizer``, or AdamW from them).

    Args:
        optimizer: the given optimizer factory, or ``None`` for the default AdamW.
        lr_scheduler: the given scheduler factory, or ``None`` for the default warm-up + cosine.
        lr: peak learning rate of the default AdamW (> 0).
        weight_decay: the default AdamW's weight decay (>= 0).
        betas: the default AdamW's betas (two numbers in ``[0, 1)``).
        warmup: the default schedule's warm-up: optimizer steps (int >= 0) or a share of the run (float in
            ``[0, 1)``).
        min_lr_ratio: the default schedule's final factor, in ``[0, 1]``.

    Returns:
        ``params -> Optimizer``.

    Raises:
        ValueError: for a value out of range, or a shorthand argument away from its default beside the factory
            that replaces what it sets.

    Example:
        >>> factory = resolve_optimizer_factory(None, None, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), warmup=0,
        ...                             min_lr_ratio=0.1)
        >>> factory.func.__name__, factory.keywords["lr"]
        ('AdamW', 0.001)
    """
    check_argument(check_number, "lr", lr, low=0, low_open=True, hint="LoRA: ~1e-4-5e-4; full: ~1e-5.")
    check_argument(check_number, "weight_decay", weight_decay, low=0)
    if not (isinstance(betas, list | tuple) and len(betas) == 2):
        raise ValueError(f"CausalLMFineTune(betas={betas!r}): `betas` must be two numbers in [0, 1).")
    for i, beta in enumerate(betas):
        check_argument(check_number, f"betas[{i}]", beta, low=0, high=1, high_open=True)
    hint = "An int counts optimizer steps (>= 0); a float in [0, 1) is a share of the run."
    if isinstance(warmup, float):
        check_argument(check_number, "warmup", warmup, low=0, high=1, high_open=True, hint=hint)
    else:
        check_argument(check_int, "warmup", warmup, minimum=0, hint=hint)
    check_argument(check_number, "min_lr_ratio", min_lr_ratio, low=0, high=1)
    if lr_scheduler is not None:
        shorthand = {"warmup": (warmup, DEFAULT_WARMUP), "min_lr_ratio": (min_lr_ratio, DEFAULT_MIN_LR_RATIO)}
        example = "`functools.partial(transformers.get_constant_schedule_with_warmup, num_warmup_steps=10)`"
        _refuse_beside("lr_scheduler", shorthand, "warm-up + cosine schedule", example)
    betas = (float(betas[0]), float(betas[1]))
    if optimizer is not None:
        shorthand = {"lr": (lr, DEFAULT_LR), "weight_decay": (weight_decay, DEFAULT_WEIGHT_DECAY)}
        shorthand["betas"] = (betas, DEFAULT_BETAS)
        example = "`functools.partial(torch.optim.AdamW, lr=1e-3)`, or `--model.optimizer.lr 1e-3` from the CLI"
        _refuse_beside("optimizer", shorthand, "AdamW", example)
        return optimizer
    return functools.partial(torch.optim.AdamW, lr=float(lr), betas=betas, weight_decay=float(weight_decay))


def param_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters in two groups: matrices, then biases and norms with ``weight_decay=0``.

    The first group takes the optimizer's own ``weight_decay``; the second is left out when empty.

    Args:
        model: the model.

    Returns:
        Parameter groups for any ``torch.optim`` optimizer.

    Example:
        >>> groups = param_groups(torch.nn.Linear(3, 2))
        >>> [len(g["params"]) for g in groups], groups[1]["weight_decay"]
        ([1, 1], 0.0)
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups: list[dict[str, Any]] = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, *, warmup: int | float, total_steps: float, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then a cosine to ``min_lr_ratio``: transformers' schedule, stepped per optimizer step.

    With ``w`` warm-up steps and ``T`` steps in all, the factor at optimizer step ``s`` is ``(s + 1) / (w + 1)``
    while ``s < w`` (the first step already learns), then ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * p))
    / 2`` with ``p = (s - w) / max(1, T - w)``: 1 at the end of the warm-up, ``min_lr_ratio`` at step ``T``.

    It is transformers' ``get_cosine_with_min_lr_schedule_with_warmup_lr_rate`` (``get_scheduler``'s
    ``"cosine_warmup_with_min_lr"``), whose warm-up factor is ``(s + 1) / num_warmup_steps`` and whose cosine
    starts one step after the warm-up: ``num_warmup_steps = w + 1`` and ``num_training_steps = T + 1`` give the
    factors above. Past step ``T`` its cosine rises again (the hand-written schedule it replaces stayed at
    ``min_lr_ratio``); Lightning stops at ``T``, so a run never gets there.

    Args:
        optimizer: the optimizer (each group's ``lr`` is the peak).
        warmup: optimizer steps of warm-up (int), or a share of ``total_steps`` (float, rounded).
        total_steps: optimizer steps of the whole run (``trainer.estimated_stepping_batches``).
        min_lr_ratio: the final factor, in ``[0, 1]``.

    Returns:
        A ``LambdaLR`` whose state (a ``functools.partial`` of plain values) loads with ``weights_only=True``.

    Raises:
        ValueError: for a run of unknown length (``total_steps`` infinite).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = warmup_cosine_schedule(opt, warmup=2, total_steps=10)
        >>> [round(float(sched.lr_lambdas[0](s)), 3) for s in (0, 1, 2, 6, 10)]
        [0.333, 0.667, 1.0, 0.5, 0.0]
    """
    if not math.isfinite(total_steps):
        raise ValueError("The cosine schedule needs the run's length: set `max_steps` or `max_epochs`.")
    total = int(total_steps)
    steps = warmup if isinstance(warmup, int) else round(warmup * total)
    transformers = require("transformers")
    return transformers.get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
        optimizer, num_warmup_steps=steps + 1, num_training_steps=total + 1, min_lr_rate=min_lr_ratio
    )
