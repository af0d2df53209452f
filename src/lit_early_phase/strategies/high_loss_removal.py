"""High-Loss Removal: the highest-loss samples of each batch leave the loss inside the enlightenment period.

Method card
-----------
* **Use when**: mixing does not fit (time series, language models) or the module does not mix.
* **What it does**: each training batch is ranked by per-sample loss (per sequence for language models) from
  the same forward pass (no extra pass); the top ``fraction`` (or ``count``) is removed and the loss is the mean
  over the rest (normalised by kept tokens for language models). After the period every sample counts.
* **Hyper-parameters**: the paper gives no ratio; 5-10 % per batch is our default range (``fraction=0.1``).
  The count is ``round(fraction * B)``: with batches under 5 samples at 0.1 nothing is removed, use ``count``.
* **Gotchas**: a batch where everything is removed yields a zero loss still connected to the parameters, so DDP
  does not hang. Ranking is per batch and per rank.
"""

from __future__ import annotations

from lit_early_phase.functional import validate_drop_args
from lit_early_phase.knobs import Enlightenable
from lit_early_phase.strategies.base import Strategy


class HighLossRemoval(Strategy):
    """Remove the highest-loss samples of each batch during the enlightenment period.

    Args:
        fraction: share of each batch removed, in ``[0, 1)`` (default 0.1).
        count: exact number removed per batch (overrides ``fraction``).

    Raises:
        ValueError: for a fraction outside ``[0, 1)`` or a negative count.

    Example:
        >>> from lit_early_phase.modules import ImageClassifier
        >>> model = ImageClassifier("resnet18", num_classes=10, in_chans=1)
        >>> hlr = HighLossRemoval(fraction=0.25)
        >>> hlr.enter(model); model.knobs.drop_fraction
        0.25
        >>> hlr.exit(model); model.knobs.drop_fraction
        0.0
    """

    name = "high_loss_removal"

    def __init__(self, fraction: float = 0.1, count: int | None = None) -> None:
        validate_drop_args(fraction, count)
        if count is None and fraction == 0:
            raise ValueError("HighLossRemoval with `fraction=0` and no `count` removes nothing; use e.g. 0.1.")
        self.fraction = float(fraction)
        self.count = count

    def enter(self, module: Enlightenable) -> None:
        """Drop fraction / count in force."""
        module.set_knobs(drop_fraction=self.fraction, drop_count=self.count)
