"""`PeriodReport`: the callback's reporting side, kept apart from its decision.

What the user sees of the period: the history behind the figure, the phase in the progress bar, the W&B run's
definitions, config and summary, the boundary figure saved and logged at the end of ``fit``, and the summary
line. All of it reads what the callback decided and wrote; none of it changes a decision.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lit_early_phase import _compat, keys
from lit_early_phase.callbacks.history import PeriodHistory
from lit_early_phase.reporting import loggers as report_loggers
from lit_early_phase.reporting import wandb_run

#: validation metrics the figure shows when they are logged
FIGURE_METRICS: tuple[str, ...] = ("val/acc", "val/map_50")
PHASE_KEY = "phase"


class PeriodReport:
    """History, progress-bar phase, W&B run, boundary figure and summary line of one ``EnlightenmentCallback``.

    Args:
        figure: save the boundary figure next to the run's logs and log it to every logger that takes images at
            the end of ``fit`` (only when the Trainer has a logger).
    """

    def __init__(self, *, figure: bool = True) -> None:
        self.history = PeriodHistory()
        self.figure_enabled = figure
        #: where the last ``fit`` saved the figure (``None``: not saved)
        self.figure_path: Any = None
        self._bar: Any = None
        self._phase = "enlightenment"

    # progress bar --------------------------------------------------------------------------------------------
    def attach_progress_bar(self, trainer: Any) -> None:
        """Show the phase in the progress bar's metrics (``phase=enlightenment``, then ``phase=after <step>``).

        Wraps the bar instance's public ``get_metrics`` (the hook Lightning documents for adding fields), so any
        progress bar works and nothing runs on steps the bar does not refresh.
        """
        bar = trainer.progress_bar_callback
        if bar is None or self._bar is bar or "get_metrics" in vars(bar):
            return
        original = bar.get_metrics

        def get_metrics(trainer: Any, pl_module: Any) -> dict[str, Any]:
            return {**original(trainer, pl_module), PHASE_KEY: self._phase}

        bar.get_metrics = get_metrics
        self._bar = bar

    def detach_progress_bar(self) -> None:
        """Give the bar its own ``get_metrics`` back."""
        if self._bar is not None:
            vars(self._bar).pop("get_metrics", None)
            self._bar = None

    def set_phase(self, *, in_period: bool, boundary_step: int | None) -> None:
        """The phase shown from now on."""
        self._phase = "enlightenment" if in_period else f"after {boundary_step}"
        self.history.boundary_step = boundary_step

    # recording -----------------------------------------------------------------------------------------------
    def record_step(self, trainer: Any, written: dict[str, float] | None) -> None:
        """Keep a written step's values (``None``: the step was not written) at the loggers' step."""
        if written is not None:
            self.history.record_applied(_compat.logging_step(trainer), written)

    def record_check(self, trainer: Any, value: float) -> None:
        """Keep the monitor's value at a check (written or not) at the loggers' step."""
        self.history.record_check(_compat.logging_step(trainer), value)

    def record_validation(self, trainer: Any, monitor: str | None) -> None:
        """Keep the validation metrics the figure shows (and a user monitor) at the loggers' step."""
        names = [*FIGURE_METRICS, *([monitor] if monitor and monitor not in FIGURE_METRICS else [])]
        for name in names:
            if name in trainer.callback_metrics:
                value = float(trainer.callback_metrics[name])
                self.history.record_metric(name, _compat.logging_step(trainer), value)

    # W&B -----------------------------------------------------------------------------------------------------
    def start(self, trainer: Any, config: dict[str, Any]) -> None:
        """At ``fit`` start: the W&B runs' metric definitions and the callback in their config."""
        wandb_run.start_runs(trainer.loggers, config)

    def summarise(self, trainer: Any, summary: dict[str, Any]) -> None:
        """The W&B runs' summary (at the boundary and again at the end of ``fit``)."""
        wandb_run.write_summaries(trainer.loggers, summary)

    def summary(self, cb: Any, run_steps: int) -> dict[str, Any]:
        """The run summary of callback ``cb`` after ``run_steps`` optimizer steps (keys of ``keys.SUMMARY_KEYS``)."""
        period = run_steps if cb.boundary_step is None else cb.boundary_step
        checked = self.history.checks[-1][1] if self.history.checks else None
        return {
            keys.BOUNDARY_STEP: cb.boundary_step,
            keys.BOUNDARY_EPOCH: cb.boundary_epoch,
            keys.ENDED_BY: cb.ended_by or "still running",
            keys.REASON: cb.reason,
            keys.MONITOR_NAME: cb.monitor_name,  # not "monitor": that key is the monitor's logged value
            keys.MONITOR_AT_BOUNDARY: checked,  # the last check's value: the one that decided, or the last
            keys.THRESHOLD: None if cb.duration is not None else cb.threshold,  # a fixed duration has none
            keys.STRATEGY: None if cb.strategy is None else type(cb.strategy).__name__,
            keys.STRATEGY_PARAMS: None if cb.strategy is None else cb.strategy.state_dict(),
            keys.PERIOD_STEPS: period,
            keys.RUN_STEPS: run_steps,
            keys.PERIOD_SHARE: period / run_steps if run_steps else None,
        }

    def final_line(self, trainer: Any, cb: Any) -> None:
        """One rank-zero line at the end of ``fit``: where the period ended and the final validation metrics."""
        finals = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") or k == "train/acc_epoch"
        }
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(finals.items()))
        if cb.in_period:
            rank_zero_info(
                f"Enlightenment period: still running at the end of fit (step {trainer.global_step}). Final: {shown}"
            )
        else:
            rank_zero_info(
                f"Enlightenment period: ended at step {cb.boundary_step} (epoch {cb.boundary_epoch}); "
                f"{cb.reason}. Final: {shown}"
            )

    # end of fit ----------------------------------------------------------------------------------------------
    def figure(self, cb: Any) -> Any:
        """The boundary figure of callback ``cb``'s history so far."""
        from lit_early_phase.reporting.figure import boundary_figure

        threshold = None if cb.duration is not None else cb.threshold  # a fixed duration has no threshold
        return boundary_figure(self.history, monitor_name=cb.monitor_name, threshold=threshold)

    def save_figure(self, trainer: Any, cb: Any) -> None:
        """Save the boundary figure in the run's log folder and send it to the loggers (rank zero)."""
        folder = report_loggers.figure_dir(trainer)
        if not self.figure_enabled or folder is None or not trainer.is_global_zero:
            return
        fig = self.figure(cb)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / report_loggers.FIGURE_FILE
        fig.savefig(path, dpi=110)
        sent = report_loggers.log_figure(trainer.loggers, fig, path, step=trainer.global_step)
        self.figure_path = path
        rank_zero_info(f"Enlightenment period figure: {path}" + (f" (also in {', '.join(sent)})" if sent else ""))

    def state_dict(self) -> dict[str, Any]:
        """The history (plain lists)."""
        return self.history.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the history."""
        self.history.load_state_dict(state)
