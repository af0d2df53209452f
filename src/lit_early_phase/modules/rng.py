"""The global RNG state in checkpoints, so a resumed fit continues the uninterrupted run's random draws."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

RNG_KEY = "lit_early_phase/rng_states"


def rng_states(device: torch.device) -> dict[str, Tensor]:
    """The global CPU RNG state and, on a GPU, that device's (only tensors: ``weights_only`` loads them).

    Args:
        device: the module's device (its CUDA generator is saved too when it is a GPU).

    Returns:
        ``{"cpu": state}``, plus ``"cuda"`` on a GPU.

    Example:
        >>> sorted(rng_states(torch.device("cpu")))
        ['cpu']
    """
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


class GlobalRNGCheckpointMixin:
    """LightningModule hooks that save the global RNG states in checkpoints and put them back on resume.

    What draws from the global RNG inside a training step (dropout, stochastic depth, torchvision's RPN and RoI
    samplers, which call ``torch.randperm``) then continues the uninterrupted run's draws after
    ``fit(ckpt_path=...)``; Lightning itself saves no RNG state. Rank 0's state: exact under DDP when the ranks
    share one seed, as ``seed_everything`` gives them. Subclasses overriding a hook call ``super()``.
    """

    device: torch.device

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the global RNG states (tensors), so a resumed run draws what the uninterrupted one would."""
        checkpoint[RNG_KEY] = rng_states(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the saved RNG states until training starts (restoring happens before the loaders are built)."""
        self._rng_to_restore = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        """Put the saved global RNG states back, last thing before the first resumed step draws from them."""
        saved = getattr(self, "_rng_to_restore", None)
        if saved is not None:
            torch.set_rng_state(saved["cpu"])
            if "cuda" in saved and self.device.type == "cuda":
                torch.cuda.set_rng_state(saved["cuda"], self.device)
            self._rng_to_restore = None
