"""`Strategy`: what changes in the data distribution inside the enlightenment period, and back after it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from lit_early_phase.knobs import Enlightenable


class Strategy(ABC):
    """Base class of the strategies. A strategy only turns the module's knobs; the module applies them.

    A strategy talks to the module only through :class:`~lit_early_phase.knobs.Enlightenable`. Subclasses
    implement :meth:`enter` (start of the period) and may override :meth:`check` (refuse a module that cannot
    serve the strategy, called in ``setup`` before any training). ``exit`` puts the configured knobs back.
    A strategy holds no run-time state of its own, so its ``state_dict`` is the arguments it was built with;
    the callback saves the phase.
    """

    name: ClassVar[str] = "strategy"

    def check(self, module: Any) -> None:
        """Raise a :class:`TypeError`/:class:`ValueError` that says what to change if ``module`` can't serve this.

        Args:
            module: the LightningModule being fitted.

        Raises:
            TypeError: if the module does not implement :class:`~lit_early_phase.knobs.Enlightenable` (e.g. with
                :class:`~lit_early_phase.modules.EnlightenmentMixin`).
        """
        if not isinstance(module, Enlightenable):
            raise TypeError(
                f"{type(self).__name__} needs a LightningModule with run-time data knobs, but "
                f"{type(module).__name__} does not use `EnlightenmentMixin` (or never called "
                f"`configure_enlightenment`). Use `lit_early_phase.modules.ImageClassifier`, or add "
                f"`EnlightenmentMixin` to your module's bases, call `self.configure_enlightenment(...)` in "
                f"`__init__` and `self.classification_step(...)` (or `mix`/`reduce_losses`) in `training_step` - or "
                f"implement the `lit_early_phase.knobs.Enlightenable` protocol yourself."
            )

    @abstractmethod
    def enter(self, module: Enlightenable) -> None:
        """Set the knobs for the enlightenment period."""

    def exit(self, module: Enlightenable) -> None:
        """Restore the configured knobs (the period is over)."""
        module.set_knobs()

    def state_dict(self) -> dict[str, Any]:
        """The arguments the strategy was built with (checked against the checkpoint on resume)."""
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
