"""EnlightenmentDiagnostics: measure *why* the period matters (BENR, dead activations, interference, trajectory)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn

from lit_early_phase import _compat, keys
from lit_early_phase._validation import check_int, check_number
from lit_early_phase.functional import activation_distance, benr, dead_fraction, flatten, interference_ratio
from lit_early_phase.knobs import Probeable

#: the module types whose outputs count as activations ("ReLU-like": output <= 0 exactly where the input is)
ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Mish)


class EnlightenmentDiagnostics(Callback):
    """Measure the paper's diagnostics every ``every_n_steps`` optimizer steps of training (opt-in).

    At each check, on a fixed probe batch (the first ``probe_size`` samples of the first training batch, kept in
    the checkpoint) and in training mode, with the module's buffers (BatchNorm statistics) and the RNG restored
    afterwards so training continues exactly as without the callback:

    * ``diagnostics/benr``: BENR of the steps since the last check (``Σ‖Δθ_t‖ / ‖ΣΔθ_t‖``, trainable parameters);
      ``diagnostics/benr_epoch`` the same over each training epoch, at its end;
    * ``diagnostics/dead/<layer>``: share of activations ``<= 0`` per ReLU-like layer (types in
      :data:`ACTIVATIONS`, forward hooks registered for the probe and removed right after it) and
      ``diagnostics/dead_fraction`` their mean over layers, ``diagnostics/dead_fraction_mixed`` the same mean for
      the Mixup-mixed probe (the paper's activation revival: mixing leaves fewer units dead);
    * ``diagnostics/interference``: the probe batch's Mixup gradient interference
      (:func:`~lit_early_phase.functional.interference_ratio`), mixed with ``probe_alpha`` from the same seeded
      draws at every check; ``diagnostics/mixed_clean_cosine`` the cosine of the two gradients;
    * ``diagnostics/atd``: the L2 distance of the probe's activations (all hooked layers) from the last check.

    Values go straight to every logger at the check's step (like the rest of the package's keys) and to
    :attr:`history`; an :class:`~lit_early_phase.EnlightenmentCallback` on the same Trainer draws them in its
    boundary figure. Only BENR needs nothing from the module; the probe values need
    :class:`~lit_early_phase.knobs.Probeable` (``ImageClassifier`` has it) and are skipped, with one message,
    for other modules. Cost: three float32 copies of the trainable parameters (BENR's last step, window and epoch
    starts) and one subtraction per step, and per check
    two forward-backward passes and one forward of the probe: measured, every 50 steps no difference
    resolved, every 10 steps about 1.12x a plain step (``benchmarks/results/diagnostics_overhead.md``).

    Under DDP each rank measures its own probe and the loggers write rank zero's values; a checkpoint keeps rank
    zero's probe, which every rank uses after a resume.

    Args:
        every_n_steps: optimizer steps between checks (>= 1).
        probe_size: samples of the probe batch (>= 2, so a BatchNorm model can run it in training mode).
        probe_alpha: Mixup α of the interference probe; ``None``: the module's configured α, or 1.0 when it does
            not mix.
        probe_seed: seed of the probe's mixing draws (the same partners and λ at every check).

    Raises:
        ValueError: for ``every_n_steps < 1``, ``probe_size < 2`` or a negative ``probe_alpha``.

    Example:
        >>> import lightning as L
        >>> diag = EnlightenmentDiagnostics(every_n_steps=25)
        >>> trainer = L.Trainer(callbacks=[diag], max_steps=1, logger=False)
        >>> diag.every_n_steps
        25
    """

    def __init__(
        self, every_n_steps: int = 50, probe_size: int = 64, probe_alpha: float | None = None, probe_seed: int = 0
    ) -> None:
        self.every_n_steps = check_int(
            "every_n_steps", every_n_steps, minimum=1, hint="Optimizer steps between checks."
        )
        self.probe_size = check_int(
            "probe_size", probe_size, minimum=2, hint="Samples of the probe batch (BatchNorm needs at least 2)."
        )
        if probe_alpha is not None:
            check_number("probe_alpha", probe_alpha, low=0.0, hint="Mixup α of the interference probe.")
        self.probe_alpha = probe_alpha
        self.probe_seed = int(probe_seed)
        #: ``[{"step": s, key: value, ...}]``, one entry per check (and per epoch end for BENR)
        self.history: list[dict[str, float]] = []
        self._probe: Any = None
        self._reset_trackers()

    def _reset_trackers(self) -> None:
        self._last: Tensor | None = None
        self._last_step: int | None = None
        self._window_start: Tensor | None = None
        self._window_sum = 0.0
        self._epoch_start: Tensor | None = None
        self._epoch_sum = 0.0
        self._last_acts: list[Tensor] | None = None
        self._told_no_probe = False

    # ---------------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the BENR trackers from the current parameters (a resumed fit starts fresh windows)."""
        self._reset_trackers()
        self._last = self._window_start = self._epoch_start = self._params(pl_module)
        self._last_step = trainer.global_step

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the epoch's BENR from the current parameters."""
        if self._last is not None:
            self._epoch_start, self._epoch_sum = self._last, 0.0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """Keep the probe: the first ``probe_size`` samples of the first batch (no extra loader pass, no RNG)."""
        if self._probe is None:
            self._probe = _head(batch, self.probe_size)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Track each optimizer step's update norm; every ``every_n_steps`` steps, measure and write."""
        step = trainer.global_step
        if step == self._last_step:  # no optimizer step (gradient accumulation, skipped batch)
            return
        current = self._params(pl_module)
        norm = float((current - self._last).norm())
        self._window_sum += norm
        self._epoch_sum += norm
        self._last, self._last_step = current, step
        if step % self.every_n_steps:
            return
        values = {keys.BENR: float(benr(self._window_sum, current - self._window_start))}
        self._window_start, self._window_sum = current, 0.0
        values |= self.measure_probe(pl_module)
        self._write(trainer, step, values)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Write the epoch's BENR."""
        if self._last is None or self._epoch_start is None or self._epoch_sum == 0.0:
            return
        value = float(benr(self._epoch_sum, self._last - self._epoch_start))
        # at the step Lightning writes the epoch's own metrics (`train/acc_epoch`): the last step of the epoch
        self._write(trainer, trainer.global_step, {keys.BENR_EPOCH: value}, log_step=_compat.logging_step(trainer) - 1)

    # ---------------------------------------------------------------------------------------------- measuring
    def measure_probe(self, pl_module: Any) -> dict[str, float]:
        """Dead fractions, interference and trajectory distance on the probe batch, with no effect on training.

        Args:
            pl_module: a :class:`~lit_early_phase.knobs.Probeable` module.

        Returns:
            The values by key (empty for a module that is not Probeable or before the probe was taken).
        """
        if self._probe is None or not isinstance(pl_module, Probeable):
            if not self._told_no_probe and self._probe is not None:
                rank_zero_info(
                    f"EnlightenmentDiagnostics: {type(pl_module).__name__} has no `probe_loss`, so only BENR is "
                    "measured (see lit_early_phase.knobs.Probeable)."
                )
                self._told_no_probe = True
            return {}
        params = [p for p in pl_module.parameters() if p.requires_grad]
        layers = [(name, m) for name, m in pl_module.named_modules() if isinstance(m, ACTIVATIONS)]
        probe = move_data_to_device(self._probe, pl_module.device)
        values: dict[str, float] = {}
        with _untouched(pl_module), torch.enable_grad():
            outputs: dict[str, list[Tensor]] = {}
            with _hooked(layers, outputs):
                clean = pl_module.probe_loss(probe, mixup_alpha=0.0, generator=self._generator())
            g_clean = flatten(torch.autograd.grad(clean, params, allow_unused=True))
            mixed_outputs: dict[str, list[Tensor]] = {}
            with _hooked(layers, mixed_outputs):
                mixed = pl_module.probe_loss(probe, mixup_alpha=self._alpha(pl_module), generator=self._generator())
            g_mix = flatten(torch.autograd.grad(mixed, params, allow_unused=True))
        # a layer called several times (one ReLU module reused, as torchvision's ResNet does) counts all its calls;
        # a layer the forward never called has no value
        clean_acts = {name: flatten(outs) for name, outs in outputs.items()}
        mixed_acts = {name: flatten(outs) for name, outs in mixed_outputs.items()}
        if clean_acts:
            dead = {keys.dead_layer_key(name): float(dead_fraction(a)) for name, a in clean_acts.items()}
            values |= dead
            values[keys.DEAD_MEAN] = sum(dead.values()) / len(dead)
            values[keys.DEAD_MIXED] = sum(float(dead_fraction(a)) for a in mixed_acts.values()) / max(
                1, len(mixed_acts)
            )
            acts = list(clean_acts.values())
            if self._last_acts is not None and [a.shape for a in self._last_acts] == [a.shape for a in acts]:
                values[keys.ATD] = float(activation_distance(self._last_acts, acts))
            self._last_acts = acts
        values[keys.INTERFERENCE] = float(interference_ratio(g_mix, g_clean))
        denominator = float(g_mix.norm() * g_clean.norm())
        values[keys.MIXED_COSINE] = float(g_mix.dot(g_clean)) / denominator if denominator > 0 else math.nan
        return values

    def _alpha(self, pl_module: Any) -> float:
        if self.probe_alpha is not None:
            return self.probe_alpha
        base = getattr(getattr(pl_module, "knobs_base", None), "mixup_alpha", 0.0)
        return base if base > 0 else 1.0

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.probe_seed)

    @staticmethod
    def _params(pl_module: Any) -> Tensor:
        return flatten([p for p in pl_module.parameters() if p.requires_grad])  # a new tensor (torch.cat)

    def _write(self, trainer: Any, step: int, values: dict[str, float], log_step: int | None = None) -> None:
        self.history.append({"step": float(step), **values})
        log_step = _compat.logging_step(trainer) if log_step is None else log_step
        for logger in trainer.loggers:
            logger.log_metrics(values, step=log_step)
        for cb in trainer.callbacks:  # the boundary figure of an EnlightenmentCallback on the same Trainer
            history = getattr(getattr(cb, "report", None), "history", None)
            if hasattr(history, "record_metric"):
                for key in keys.DIAGNOSTICS_FIGURE_KEYS:
                    if key in values and math.isfinite(values[key]):
                        history.record_metric(key, log_step, values[key])

    # ---------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The probe batch and the history (tensors and plain values: loads with ``weights_only=True``)."""
        return {"probe": move_data_to_device(self._probe, "cpu"), "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue on the same probe batch; BENR windows and the trajectory restart at the resumed step."""
        self._probe = state_dict.get("probe")
        self.history = [dict(h) for h in state_dict.get("history", [])]


@contextmanager
def _hooked(layers: list[tuple[str, nn.Module]], outputs: dict[str, list[Tensor]]) -> Any:
    """Forward hooks that copy each call's output into ``outputs[name]``, removed on leaving (even on an error)."""

    def hook(name: str) -> Any:
        return lambda _m, _i, out: outputs.setdefault(name, []).append(out.detach().clone())

    handles = [m.register_forward_hook(hook(name)) for name, m in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _untouched(module: nn.Module) -> Any:
    """Run the probe without a trace: buffers (BatchNorm statistics) and the RNG as they were, no ``.grad``."""
    buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for name, b in module.named_buffers():
                    if name in buffers:
                        b.copy_(buffers[name])


def _head(batch: Any, n: int) -> Any:
    """The first ``n`` samples of every tensor in a batch (tuple, list, dict...), detached copies."""
    return apply_to_collection(batch, Tensor, lambda t: t[:n].detach().clone())
