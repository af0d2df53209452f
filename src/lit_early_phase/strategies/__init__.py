"""Strategies: what changes inside the enlightenment period. One small file (with a method card) each."""

from __future__ import annotations

from typing import Any, Literal

from lit_early_phase.strategies.alpha_boost import AlphaBoost
from lit_early_phase.strategies.base import Strategy
from lit_early_phase.strategies.high_loss_removal import HighLossRemoval
from lit_early_phase.strategies.mixup_pause import MixupPause

#: The strategy names ``EnlightenmentCallback(strategy=...)`` accepts; ``"auto"`` picks one from the module.
StrategyName = Literal["auto", "mixup_pause", "alpha_boost", "high_loss_removal"]
#: Each strategy class by its ``name`` (``"mixup_pause"``, ``"alpha_boost"``, ``"high_loss_removal"``).
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (MixupPause, AlphaBoost, HighLossRemoval)}


def resolve_strategy(strategy: Strategy | str, module: Any) -> Strategy:
    """Turn a strategy argument into a :class:`Strategy` for ``module`` (``"auto"`` looks at the module).

    ``"auto"`` gives :class:`MixupPause` when the module mixes (configured α > 0), :class:`HighLossRemoval`
    otherwise. Names build the strategy with its default arguments.

    Args:
        strategy: a :class:`Strategy` or one of ``"auto"``, ``"mixup_pause"``, ``"alpha_boost"``,
            ``"high_loss_removal"``.
        module: the LightningModule (only read for ``"auto"``).

    Returns:
        The strategy instance.

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> resolve_strategy("alpha_boost", None)
        AlphaBoost(alpha=1.0, cutmix_alpha=None, mix_prob=None)
    """
    if isinstance(strategy, Strategy):
        return strategy
    if strategy == "auto":
        base = getattr(module, "knobs_base", None)
        return MixupPause() if base is not None and base.mixes else HighLossRemoval()
    if strategy not in STRATEGIES:
        raise ValueError(
            f"`strategy={strategy!r}` is unknown. Use one of {['auto', *STRATEGIES]} or a Strategy instance "
            f"such as `AlphaBoost(alpha=1.0)`."
        )
    return STRATEGIES[strategy]()


__all__ = [
    "STRATEGIES",
    "AlphaBoost",
    "HighLossRemoval",
    "MixupPause",
    "Strategy",
    "StrategyName",
    "resolve_strategy",
]
