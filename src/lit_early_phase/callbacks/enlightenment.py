"""`EnlightenmentCallback`: find where the enlightenment period ends and switch the strategy there.

Shaped like Lightning's ``EarlyStopping``: arguments validated in the constructor, timing resolved in ``setup``,
the decision in a pure rule (:class:`~lit_early_phase.callbacks.boundary.BoundaryRule`, see
:attr:`EnlightenmentCallback.rule`) behind thin hooks, a latched phase in ``state_dict`` and a decision computed
from values reduced over all ranks, so every rank switches at the same step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from lit_early_phase import _compat
from lit_early_phase._validation import check_choice, check_int, check_number
from lit_early_phase.callbacks import messages
from lit_early_phase.callbacks.applied_logging import log_applied, log_boundary
from lit_early_phase.callbacks.boundary import DEFAULT_MAX_DURATION, BoundaryRule
from lit_early_phase.callbacks.duration import Duration
from lit_early_phase.callbacks.nonfinite import NonfiniteCount
from lit_early_phase.callbacks.report import PeriodReport
from lit_early_phase.callbacks.running_accuracy import RunningAccuracy
from lit_early_phase.keys import RUNNING_ACC
from lit_early_phase.knobs import Enlightenable
from lit_early_phase.strategies import Strategy, StrategyName, resolve_strategy

DURATIONS = ("duration", "min_duration", "max_duration")


class EnlightenmentCallback(Callback):
    """End the enlightenment period when accuracy reaches a threshold (or after a fixed length) and switch strategy.

    From step 0 the strategy's period settings are in force (e.g. no Mixup for :class:`MixupPause`). The period
    ends, once and for good, at the first check where:

    * a fixed ``duration`` is reached (if given; the monitor is then ignored), else
    * ``max_duration`` is reached (a guard; the log says so), else
    * the monitored value reaches ``threshold`` and ``min_duration`` (if any) has passed.

    The default monitor is a running training accuracy: correct/total counts that the module records at each
    training batch (a mixed sample counts against its dominant label), summed over the last ``window`` batches
    and over all ranks, checked every ``check_every_n_steps`` optimizer steps. Any logged metric (``"val/acc"``)
    can be monitored instead; it is checked when produced (after validation, at epoch ends, and every
    ``check_every_n_steps`` steps if logged in training), averaged over ranks.

    With gradient accumulation (``accumulate_grad_batches=N``) the window counts batches (micro-batches) and
    every step-based length counts optimizer steps: a check happens once per optimizer step, after the last
    micro-batch of that step, and never before the first optimizer step.

    The callback acts only while fitting: ``trainer.validate``, ``test`` and ``predict`` (before or after a
    ``fit``) neither check nor change its state or the module's knobs, and a ``ckpt_path`` given to them does not
    overwrite its state. One ``EnlightenmentCallback`` per Trainer: a second one is refused in ``setup`` (both
    would turn the same knobs and log the same keys).

    Logged to every logger on the steps the Trainer writes: ``enlightenment/phase`` (1 inside the period),
    ``alpha``, ``lambda_mean``, ``mixed_fraction``, ``removed_fraction`` (what the module applied), at checks
    ``monitor``, once ``boundary_step`` / ``boundary_epoch``. The progress bar shows ``phase=enlightenment``, then
    ``phase=after <step>``. At the end of ``fit`` (with a logger) the boundary figure (:meth:`figure`) is saved
    as ``enlightenment_period.png`` in the run's log folder and sent to every logger that takes images; a
    ``WandbLogger`` run also gets the metric definitions, :meth:`config` and :meth:`summary` (docs/logging.md).

    Args:
        strategy: a :class:`~lit_early_phase.strategies.Strategy` or ``"auto"`` (Mixup Pause if the module
            mixes, High-Loss Removal otherwise), ``"mixup_pause"``, ``"alpha_boost"``, ``"high_loss_removal"``.
        monitor: ``None`` for the built-in running training accuracy, or the name of a logged metric.
        threshold: the period ends when the monitor reaches it (``mode="max"``) or falls to it (``"min"``).
            For accuracies (the default monitor, or ``chance_adjusted``) it must be in ``(0, 1)``.
        mode: ``"max"`` (accuracy-like) or ``"min"`` (loss-like).
        chance_adjusted: compare ``(acc - 1/K) / (1 - 1/K)`` instead of the raw accuracy (``K`` from
            ``num_classes`` or the module's ``num_classes``).
        num_classes: ``K`` for the chance level; ``None`` reads the module's.
        window: batches summed into the running accuracy.
        check_every_n_steps: optimizer steps between checks of a step-level monitor.
        duration: a fixed period length instead of the monitor (``"10ep"``, ``"500st"``, ``"0.05dur"``...).
        min_duration: the period lasts at least this long.
        max_duration: the period lasts at most this long (default ``"0.2dur"``: a fifth of the run, switched off
            with a warning on a run of unknown length; a guard given here is kept and needs a known length for a
            share of the run; the ``config.yaml`` LightningCLI saves writes the default out as ``0.2dur``, so a run
            started from that file counts it as given); ``None`` for no guard.
        verbose: announce the boundary and a summary at the end of ``fit`` (rank zero).
        figure: save and log the boundary figure at the end of ``fit`` (when the Trainer has a logger).

    Raises:
        ValueError: for an unknown strategy, a threshold out of range, bad window/check/duration arguments;
            at ``setup``, for a second ``EnlightenmentCallback`` on the same Trainer.

    Example:
        >>> import lightning as L
        >>> from lit_early_phase import EnlightenmentCallback
        >>> from lit_early_phase.strategies import AlphaBoost
        >>> cb = EnlightenmentCallback(strategy=AlphaBoost(alpha=1.0), threshold=0.5)
        >>> cb.in_period, cb.boundary_step
        (True, None)
        >>> trainer = L.Trainer(callbacks=[EnlightenmentCallback()], logger=False,
        ...                     enable_checkpointing=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        strategy: Strategy | StrategyName = "auto",
        monitor: str | None = None,
        threshold: float = 0.5,
        mode: Literal["max", "min"] = "max",
        chance_adjusted: bool = False,
        num_classes: int | None = None,
        window: int = 20,
        check_every_n_steps: int = 10,
        duration: int | float | str | None = None,
        min_duration: int | float | str | None = None,
        max_duration: int | float | str | None = DEFAULT_MAX_DURATION,
        verbose: bool = True,
        figure: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, Strategy):
            resolve_strategy(strategy, None)  # validates the name now, before any training
        check_choice("mode", mode, ("max", "min"), hint="'max' for accuracy-like monitors, 'min' for losses.")
        check_number("threshold", threshold)
        if (monitor is None or chance_adjusted) and not 0 < threshold < 1:
            raise ValueError(
                f"`threshold={threshold!r}` is not an accuracy: with the built-in running accuracy (monitor=None) "
                f"or `chance_adjusted=True` it must be in (0, 1); the paper's value is 0.5."
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"`monitor` must be a metric name or None, got {monitor!r}.")
        check_int("window", window, minimum=1)
        check_int("check_every_n_steps", check_every_n_steps, minimum=1)
        check_int("num_classes", num_classes, minimum=2, allow_none=True)
        self.strategy_arg = strategy
        self.monitor = monitor
        self.threshold = float(threshold)
        self.mode = mode
        self.chance_adjusted = chance_adjusted
        self.num_classes = num_classes
        self.window = window
        self.check_every_n_steps = check_every_n_steps
        self.duration = None if duration is None else Duration.parse(duration, name="duration")
        self.min_duration = None if min_duration is None else Duration.parse(min_duration, name="min_duration")
        self.max_duration = None if max_duration is None else Duration.parse(max_duration, name="max_duration")
        self._default_guard = max_duration is DEFAULT_MAX_DURATION  # the sentinel, not its text
        self.verbose = verbose
        #: history, progress bar, W&B run and figure (what the user sees; no decision is made there)
        self.report = PeriodReport(figure=figure)

        self.strategy: Strategy | None = strategy if isinstance(strategy, Strategy) else None
        # latched state (saved in checkpoints)
        self.in_period = True
        self.boundary_step: int | None = None
        self.boundary_epoch: int | None = None
        self.reason = ""
        self.ended_by: str | None = None  # "monitor", "max_duration" or "duration"
        self.last_value: float | None = None
        self.num_checks = 0
        self._window = RunningAccuracy(window)
        self._step_at_batch_start = 0
        self._total_steps = math.inf
        self._chance: float | None = None
        self._outside_fit = False  # inside validate/test/predict: a checkpoint must not overwrite the state
        self._nonfinite = NonfiniteCount()  # NaN/inf per-sample losses, read where a sync happens anyway
        self._fit_rule: BoundaryRule | None = None  # the rule for this fit, built once in on_fit_start

    def __repr__(self) -> str:
        shown = {"strategy": self.strategy_arg, "monitor": self.monitor, "threshold": self.threshold, **self._specs()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _specs(self) -> dict[str, str | None]:
        return {n: None if getattr(self, n) is None else getattr(self, n).spec for n in DURATIONS}

    # ----------------------------------------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        """Distinguishes several instances in one checkpoint (as ``EarlyStopping`` does)."""
        strategy = self.strategy_arg if isinstance(self.strategy_arg, str) else type(self.strategy_arg).__name__
        return self._generate_state_key(
            strategy=strategy,
            monitor=self.monitor,
            threshold=self.threshold,
            duration=None if self.duration is None else self.duration.spec,
        )

    @property
    def monitor_name(self) -> str:
        """The metric checked: the running accuracy's key or the user's metric."""
        return self.monitor or RUNNING_ACC

    def config(self) -> dict[str, Any]:
        """The arguments and the resolved strategy with its parameters (the W&B run config's ``enlightenment``)."""
        arg = self.strategy_arg if isinstance(self.strategy_arg, str) else type(self.strategy_arg).__name__
        resolved = None if self.strategy is None else self.strategy.state_dict()
        kept = ("monitor_name", "threshold", "mode", "chance_adjusted", "num_classes", "window", "check_every_n_steps")
        return {"strategy": arg, "resolved_strategy": resolved, **{k: getattr(self, k) for k in kept}, **self._specs()}

    def summary(self, trainer: L.Trainer) -> dict[str, Any]:
        """Where the period ended, why, the monitor there, the strategy and the share of the run it took."""
        return self.report.summary(self, trainer.global_step)

    def figure(self) -> Any:
        """The boundary figure of the run so far (matplotlib ``Figure``; saved at the end of ``fit`` anyway).

        Example:
            >>> fig = EnlightenmentCallback().figure()  # empty before a fit
            >>> fig.axes[0].get_xlabel() in ("", "step")
            True
        """
        return self.report.figure(self)

    # ----------------------------------------------------------------------------------------------------------
    @property
    def rule(self) -> BoundaryRule:
        """The pure boundary rule with this callback's configuration (the chance level is known after ``setup``).

        Example:
            >>> EnlightenmentCallback(max_duration="20st").rule.decide(value=0.7, step=10, epochs_done=0).reason
            'enlightenment/running_acc = 0.7000 >= threshold 0.5'
        """
        return BoundaryRule(
            threshold=self.threshold,
            mode=self.mode,
            monitor_name=self.monitor_name,
            chance=self._chance if self.chance_adjusted else None,
            duration=self.duration,
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            default_guard=self._default_guard,
        )

    # ----------------------------------------------------------------------------------------------------------
    # Lightning hooks
    @staticmethod
    def _fitting(trainer: L.Trainer) -> bool:
        """Whether the Trainer runs ``fit`` (its validation loop included); the callback acts only then."""
        return trainer.state.fn == TrainerFn.FITTING

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Resolve the strategy for this module and refuse modules (or a second callback) that cannot serve it."""
        self._outside_fit = stage != "fit"
        if stage != "fit":
            return
        self._fit_rule = None  # built again in on_fit_start, from this fit's configuration
        others = [c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback) and c is not self]
        if others:
            raise messages.second_callback([self, *others], type(pl_module).__name__)
        self.strategy = resolve_strategy(self.strategy_arg, pl_module)
        self.strategy.check(pl_module)
        _compat.destroy_gloo_group_at_exit()  # a ddp_spawn child on the CPU may otherwise abort at exit
        self.report.attach_progress_bar(trainer)
        k = self.num_classes or getattr(pl_module, "enlightenment_num_classes", None)
        self._chance = None if k is None else 1.0 / k
        if self.num_classes is None and hasattr(pl_module, "enlightenment_chance"):
            self._chance = pl_module.enlightenment_chance  # a module whose running accuracy is not at 1/K at chance
        if self.chance_adjusted and self._chance is None:
            raise messages.chance_needs_classes(type(pl_module).__name__, has_classes=k is not None)
        at_chance = self._chance is not None and self.threshold <= self._chance
        if at_chance and not self.chance_adjusted and self.mode == "max" and self.monitor is None and not self.duration:
            messages.warn_threshold_at_chance(self.threshold, k, self._chance)  # type: ignore[arg-type]

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Leave validate/test/predict: checkpoints load into the callback again; the progress bar is the bar's."""
        self._outside_fit = False
        self.report.detach_progress_bar()

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the phase in force (after a resume too) and learn the run's length for fractional durations."""
        assert self.strategy is not None  # set in setup
        self._total_steps = float(trainer.estimated_stepping_batches)
        _, guard_dropped = self.rule.for_run(self._total_steps)  # raises for a share of a run of unknown length
        if guard_dropped:
            messages.warn_guard_off()
            self.max_duration = None
        self._fit_rule = self.rule  # the configuration is final now: one rule for the whole fit
        self._apply_phase(pl_module)
        self.report.start(trainer, self.config())

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the phase in force again, now that every strategy has restored the checkpoint.

        Strategies that restore checkpoints after setup (FSDP, DeepSpeed) load the callback's state only after
        ``on_fit_start``.
        """
        self._apply_phase(pl_module)

    def _apply_phase(self, pl_module: L.LightningModule) -> None:
        assert self.strategy is not None  # set in setup
        self.report.set_phase(in_period=self.in_period, boundary_step=self.boundary_step)
        if self.in_period:
            self.strategy.enter(pl_module)  # type: ignore[arg-type]
        else:
            self.strategy.exit(pl_module)  # type: ignore[arg-type]

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Fresh step record, so nothing of the last step is reported as applied again."""
        self._module(pl_module).begin_enlightenment_step()
        if self.in_period:  # only a step inside the period is checked (the phase is latched after it)
            self._step_at_batch_start = trainer.global_step

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log what was applied; after every ``check_every_n_steps``-th optimizer step, decide.

        Per step this only keeps references (the window's counts, the NaN/inf count) and asks the rule about
        step-based lengths; device values are combined at a check, read (one host sync) at a check or a logged
        step, and the history grows on logged steps only.
        """
        rec = self._module(pl_module).enlightenment_record
        applied_in_period = self.in_period  # what this step ran under, even if the period ends at it
        self._nonfinite.add(rec.nonfinite)
        monitor = None
        if self.in_period:
            if self.monitor is None:
                self._window.append(rec.correct, rec.total)  # every micro-batch counts
            step = trainer.global_step
            # Decide only when this batch ran an optimizer step (the last micro-batch of an accumulation cycle):
            # never after a micro-batch that only accumulated, so never at global_step 0.
            if step > self._step_at_batch_start:
                value = None
                if step % self.check_every_n_steps == 0 and self.duration is None:
                    value = self._step_monitor_value(trainer)
                    monitor = None if value is None else self._rule().adjust(value)
                    if value is not None:  # the check synced with the device already: read the count too
                        self._warn_nonfinite(trainer)
                self._maybe_end(trainer, pl_module, value, epochs_done=trainer.current_epoch)
        written = log_applied(trainer, rec, in_period=applied_in_period, monitor=monitor)
        if written is not None:
            self.report.record_step(trainer, written)

    @staticmethod
    def _module(pl_module: L.LightningModule) -> Enlightenable:
        """The module as the protocol it implements (``Strategy.check`` refused it in ``setup`` otherwise)."""
        return pl_module  # type: ignore[return-value]

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check a user monitor produced by validation (inside ``fit`` only, never in ``trainer.validate``)."""
        if not self._fitting(trainer) or trainer.sanity_checking:
            return
        self.report.record_validation(trainer, self.monitor)
        if not self.in_period or self.monitor is None or self.duration is not None:
            return
        self._maybe_end(
            trainer, pl_module, self._logged_value(trainer, strict=False), epochs_done=trainer.current_epoch
        )

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check epoch-level lengths and epoch-level user monitors (strict: the metric must exist by now)."""
        self._warn_nonfinite(trainer)
        if not self.in_period:
            return
        value = None
        if self.monitor is not None and self.duration is None:
            value = self._logged_value(trainer, strict=True)
        self._maybe_end(trainer, pl_module, value, epochs_done=trainer.current_epoch + 1)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The W&B summary, the boundary figure and one summary line: where the period ended, the final metrics."""
        self._warn_nonfinite(trainer)
        self.report.summarise(trainer, self.summary(trainer))
        self.report.save_figure(trainer, self)
        if self.verbose:
            self.report.final_line(trainer, self)

    # ----------------------------------------------------------------------------------------------------------
    def _rule(self) -> BoundaryRule:
        """The rule of this fit (built in ``on_fit_start``), or a fresh one outside a fit."""
        return self._fit_rule if self._fit_rule is not None else self.rule

    def _warn_nonfinite(self, trainer: L.Trainer) -> None:
        """Warn once (rank zero) when the module reported NaN/inf per-sample losses."""
        self._nonfinite.warn(trainer.global_step)

    def _step_monitor_value(self, trainer: L.Trainer) -> float | None:
        if self.monitor is not None:
            if self.monitor not in trainer.callback_metrics:
                return None  # produced at epoch or validation end: checked there
            return self._logged_value(trainer, strict=False)
        value = self._window.compute(trainer.strategy)
        if value is not None:
            self.last_value = value
        return value

    def _logged_value(self, trainer: L.Trainer, *, strict: bool) -> float | None:
        assert self.monitor is not None
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            if strict:
                raise RuntimeError(
                    f"EnlightenmentCallback could not find the monitored metric {self.monitor!r}. Logged metrics: "
                    f"{sorted(metrics)}. Log it with `self.log({self.monitor!r}, ...)` or choose one of those."
                )
            return None
        value = torch.as_tensor(metrics[self.monitor], dtype=torch.float64, device=trainer.strategy.root_device)
        value = trainer.strategy.reduce(value, reduce_op="mean")
        self.last_value = float(value)
        return self.last_value

    def _maybe_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, value: float | None, *, epochs_done: int
    ) -> None:
        if value is not None:
            self.num_checks += 1
            self.report.record_check(trainer, self._rule().adjust(value))
        cause, reason = self._rule().decide(
            value=value,
            step=trainer.global_step,
            epochs_done=epochs_done,
            total_steps=self._total_steps,
            last_value=self.last_value,
        )
        if cause is None:
            return
        assert self.strategy is not None
        self.in_period = False
        self.boundary_step = trainer.global_step
        self.boundary_epoch = trainer.current_epoch
        self.reason, self.ended_by = reason, cause
        self._window.clear()
        self._apply_phase(pl_module)
        log_boundary(trainer, step=self.boundary_step, epoch=self.boundary_epoch)
        self.report.summarise(trainer, self.summary(trainer))
        if self.verbose:
            rank_zero_info(
                f"Enlightenment period ended at step {self.boundary_step} (epoch {self.boundary_epoch}): "
                f"{reason}. {type(self.strategy).__name__} switched to the configured settings."
            )
        if cause == "monitor" and self.num_checks == 1:
            messages.warn_empty_period(self.monitor_name, self.boundary_step)

    # ----------------------------------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        """Plain values: the latched phase, the boundary, the running window and the strategy's arguments."""
        return {
            "in_period": self.in_period,
            "boundary_step": self.boundary_step,
            "boundary_epoch": self.boundary_epoch,
            "reason": self.reason,
            "ended_by": self.ended_by,
            "last_value": self.last_value,
            "num_checks": self.num_checks,
            "window": self._window.state_dict(),
            "strategy": None if self.strategy is None else self.strategy.state_dict(),
            "report": self.report.state_dict(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the latched phase (new keys read with defaults, so older checkpoints load).

        Inside ``trainer.validate/test/predict(ckpt_path=...)`` the state is kept: those calls restore the weights,
        not the run, and the callback does not act in them.
        """
        if self._outside_fit:
            return
        self.in_period = state_dict.get("in_period", True)
        self.boundary_step = state_dict.get("boundary_step")
        self.boundary_epoch = state_dict.get("boundary_epoch")
        self.reason = state_dict.get("reason", "")
        self.ended_by = state_dict.get("ended_by")
        self.report.load_state_dict(state_dict.get("report", {}))
        self.report.set_phase(in_period=self.in_period, boundary_step=self.boundary_step)
        self.last_value = state_dict.get("last_value")
        self.num_checks = state_dict.get("num_checks", 0)
        self._window.load_state_dict(state_dict.get("window", []))
        saved = state_dict.get("strategy")
        if saved and self.strategy is not None and saved != self.strategy.state_dict():
            warnings.warn(
                f"EnlightenmentCallback: the checkpoint was saved with strategy {saved}, this run uses "
                f"{self.strategy.state_dict()}; the saved phase is kept.",
                stacklevel=2,
            )
