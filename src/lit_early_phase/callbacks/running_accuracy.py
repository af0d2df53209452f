"""`RunningAccuracy`: the callback's default monitor, correct/total counts over the last batches of all ranks."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch


class RunningAccuracy:
    """Correct/total counts of the last ``window`` training batches, kept as recorded (device tensors).

    Appending costs no host sync; :meth:`compute` stacks the window once, sums it over ranks with the Trainer's
    strategy (so every rank sees the same value and switches at the same step) and syncs once.

    Args:
        window: batches summed (micro-batches under gradient accumulation).

    Example:
        >>> acc = RunningAccuracy(window=2)
        >>> for c in (1, 3, 4):
        ...     acc.append(torch.tensor(c), torch.tensor(4))
        >>> acc.state_dict()
        [(3, 4), (4, 4)]
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._counts: deque[tuple[Any, Any]] = deque(maxlen=window)

    def __len__(self) -> int:
        return len(self._counts)

    def append(self, correct: Any, total: Any) -> None:
        """Add one batch's counts (tensors or numbers); the oldest leaves a full window."""
        self._counts.append((correct, total))

    def clear(self) -> None:
        """Forget every batch (the period is over)."""
        self._counts.clear()

    def compute(self, strategy: Any) -> float | None:
        """The accuracy over the window and over all ranks, or ``None`` for an empty window.

        Args:
            strategy: the Trainer's strategy (``root_device`` and ``reduce``).

        Raises:
            RuntimeError: when the window holds batches but no predictions were recorded in them.
        """
        if not self._counts:
            return None
        flat = [torch.as_tensor(v, device=strategy.root_device) for pair in self._counts for v in pair]
        counts = torch.stack(flat).view(-1, 2).to(dtype=torch.float64).sum(0)
        counts = strategy.reduce(counts, reduce_op="sum")
        correct, total = float(counts[0]), float(counts[1])
        if total == 0:
            raise RuntimeError(
                "EnlightenmentCallback: the module recorded no predictions for the running accuracy. Call "
                "`self.classification_step(...)` or `self.record_accuracy(correct, total)` in `training_step`, or "
                "set `monitor=` to a metric you log (e.g. 'train/acc')."
            )
        return correct / total

    def state_dict(self) -> list[tuple[int, int]]:
        """The window as plain ints (checkpoints load with ``weights_only=True``)."""
        return [(int(c), int(t)) for c, t in self._counts]

    def load_state_dict(self, saved: list[tuple[int, int]]) -> None:
        """Restore a window saved by :meth:`state_dict`."""
        self._counts = deque(((torch.tensor(c), torch.tensor(t)) for c, t in saved), maxlen=self.window)
