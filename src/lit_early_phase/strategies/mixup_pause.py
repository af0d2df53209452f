"""Mixup Pause: no mixing inside the enlightenment period, the configured Mixup/CutMix after it.

Method card
-----------
* **Use when**: small scale (small data set and/or small model) trained with Mixup or CutMix.
* **What it does**: α (Mixup and CutMix) is 0 from step 0 until the period ends, then the module's configured
  values apply. Targets stay dense soft targets throughout, so the loss never changes format.
* **Reported** (arXiv 2504.01737): +0.10 pp CIFAR-10, +0.45 pp PreActResNet50 / Tiny-ImageNet, +1.57 pp ViT-S /
  Tiny-ImageNet with a 10-epoch pause, but -0.69 pp with a 25-epoch pause: end the pause promptly.
* **Gotchas**: needs a module that mixes (``mixup_alpha > 0`` or ``cutmix_alpha > 0``); otherwise it would do
  nothing and is refused at ``setup``.
"""

from __future__ import annotations

from typing import Any

from lit_early_phase.knobs import Enlightenable
from lit_early_phase.strategies.base import Strategy


class MixupPause(Strategy):
    """Turn Mixup and CutMix off during the enlightenment period.

    Example:
        >>> from lit_early_phase.modules import ImageClassifier
        >>> model = ImageClassifier("resnet18", num_classes=10, in_chans=1, mixup_alpha=0.4)
        >>> strategy = MixupPause()
        >>> strategy.check(model); strategy.enter(model)
        >>> model.knobs.mixup_alpha
        0.0
        >>> strategy.exit(model); model.knobs.mixup_alpha
        0.4
    """

    name = "mixup_pause"

    def check(self, module: Any) -> None:
        """Refuse modules that do not mix (there would be nothing to pause)."""
        super().check(module)
        if not module.knobs_base.mixes:
            raise ValueError(
                f"MixupPause pauses mixing, but {type(module).__name__} does not mix (mixup_alpha="
                f"{module.knobs_base.mixup_alpha}, cutmix_alpha={module.knobs_base.cutmix_alpha}, mix_prob="
                f"{module.knobs_base.mix_prob}). Set `mixup_alpha` (e.g. 0.2-1.0) or `cutmix_alpha` > 0 on the "
                f"module, or use `HighLossRemoval()` (or strategy='auto', which picks it for modules that don't mix)."
            )

    def enter(self, module: Enlightenable) -> None:
        """α = 0 for Mixup and CutMix."""
        module.set_knobs(mixup_alpha=0.0, cutmix_alpha=0.0)
