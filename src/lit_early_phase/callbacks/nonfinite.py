"""The NaN/inf per-sample loss count of a fit: summed on the device, read only where a sync happens anyway."""

from __future__ import annotations

from typing import Any

import torch

from lit_early_phase.callbacks import messages

#: steps whose counts are kept as they came before one addition folds them (bounded, one launch per FOLD)
FOLD = 32


class NonfiniteCount:
    """The module's NaN/inf per-sample loss counts, added up without a host sync per step; a warning once.

    A step's count is a device tensor (what ``reduce_losses`` records) or a plain number. Tensors wait in a list of
    at most ``FOLD`` entries and are then folded in with one stack and sum on their device: no kernel launch per
    step and no read of the value, which happens only in :meth:`warn`, called where the callback syncs anyway.

    Example:
        >>> count = NonfiniteCount()
        >>> for _ in range(40):
        ...     count.add(torch.tensor(0))
        >>> count.warn(step=40)
        False
    """

    def __init__(self) -> None:
        self.total: Any = 0
        self.pending: list[Any] = []
        self.warned = False

    def add(self, count: Any) -> None:
        """Keep a step's count: a number is added now, a tensor folded in with the next ``FOLD - 1``."""
        if self.warned:
            return
        if not isinstance(count, torch.Tensor):
            self.total = self.total + count
            return
        self.pending.append(count)
        if len(self.pending) >= FOLD:
            self.fold()

    def fold(self) -> None:
        """Add the pending counts to the running sum (one stack and sum on their device, no host sync)."""
        if self.pending:
            self.total = self.total + torch.stack([c.reshape(()) for c in self.pending]).sum()
            self.pending.clear()

    def warn(self, step: int) -> bool:
        """Warn once (the caller is on rank zero's path) when any count is non-zero; return whether it warned."""
        if self.warned:
            return False
        self.fold()
        count = int(self.total)
        if count == 0:
            return False
        self.warned = True
        messages.warn_nonfinite(count, step)
        return True
