"""EnlightenmentFinder: a short pilot of the user's recipe that says which strategy to use, and why."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from lit_early_phase._validation import check_int, check_number
from lit_early_phase.callbacks import EnlightenmentCallback, EnlightenmentDiagnostics
from lit_early_phase.callbacks.history import PeriodHistory
from lit_early_phase.finder.evidence import Citation
from lit_early_phase.finder.rule import Decision, Evidence, Setting, decide
from lit_early_phase.keys import BENR, DEAD_MEAN, DEAD_MIXED, INTERFERENCE, RUNNING_ACC
from lit_early_phase.reporting.figure import boundary_figure

#: the EnlightenmentCallback arguments the pilot copies from the user's callback (the rest are the finder's)
COPIED = ("monitor", "threshold", "mode", "chance_adjusted", "num_classes", "window", "check_every_n_steps")


@dataclass
class Recommendation:
    """The finder's answer: the strategy, the evidence behind it, and the pilot's figure.

    Attributes:
        strategy: ``"mixup_pause"``, ``"alpha_boost"``, ``"high_loss_removal"`` or ``"none"`` (train as usual,
            no strategy).
        reason: the sentence with the numbers that decided.
        callback_kwargs: ``EnlightenmentCallback`` arguments to train with (empty for ``"none"``).
        evidence: the pilot's measurements (:class:`~lit_early_phase.finder.rule.Evidence`).
        diagnostics: the pilot's ``EnlightenmentDiagnostics`` history (one dict per check).
        extrapolated: the rule went beyond what this repository measured.
        citations: the measured figures behind the rule's branch
            (:class:`~lit_early_phase.finder.evidence.Citation`: results file, keys, mean, raw and Holm intervals).
        uncertainty: how sure that branch is (seeds, settings, intervals, in-sample or not).
    """

    strategy: str
    reason: str
    callback_kwargs: dict[str, Any]
    evidence: Evidence
    diagnostics: list[dict[str, float]] = field(default_factory=list)
    extrapolated: bool = False
    citations: tuple[Citation, ...] = ()
    uncertainty: str = ""
    _history: PeriodHistory = field(default_factory=PeriodHistory, repr=False)
    _monitor_name: str = RUNNING_ACC
    _threshold: float | None = 0.5

    def callback(self, **overrides: Any) -> EnlightenmentCallback | None:
        """The recommended ``EnlightenmentCallback``.

        Args:
            **overrides: ``EnlightenmentCallback`` arguments that replace the recommended ones.

        Returns:
            The callback, or ``None`` for ``"none"`` (pass ``callbacks=[cb] if cb else []``).
        """
        if self.strategy == "none":
            return None
        return EnlightenmentCallback(**(self.callback_kwargs | overrides))

    def figure(self) -> Any:
        """The pilot's monitor against step with the boundary, and the diagnostics below, titled with the answer.

        Returns:
            A matplotlib ``Figure`` (:func:`~lit_early_phase.reporting.figure.boundary_figure`); save it with
            ``rec.figure().savefig("finder.png")``.
        """
        title = f"finder: {self.strategy} (period {100 * self.evidence.period_share:.1f} % of the planned run)"
        return boundary_figure(self._history, monitor_name=self._monitor_name, threshold=self._threshold, title=title)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready): strategy, reason, arguments, uncertainty, citations, evidence, diagnostics."""
        return {
            "strategy": self.strategy,
            "reason": self.reason,
            "callback_kwargs": dict(self.callback_kwargs),
            "extrapolated": self.extrapolated,
            "uncertainty": self.uncertainty,
            "citations": [c.to_dict() for c in self.citations],
            "evidence": self.evidence.to_dict(),
            "diagnostics": [dict(h) for h in self.diagnostics],
        }

    def __str__(self) -> str:
        e = self.evidence
        what = " (train as usual, no strategy)" if self.strategy == "none" else ""
        lines = [f"EnlightenmentFinder recommends: {self.strategy}{what}", f"  why: {self.reason}"]
        lines += ["  measured behind this rule:"] + [f"    {c}" for c in self.citations]
        lines += [f"  uncertainty: {self.uncertainty}" + (" [extrapolated]" if self.extrapolated else "")]
        lines += ["  pilot evidence:"] + [f"    {k}: {_fmt(v)}" for k, v in e.to_dict().items()]
        if self.callback_kwargs:
            args = ", ".join(f"{k}={v!r}" for k, v in self.callback_kwargs.items())
            lines.append(f"  use: EnlightenmentCallback({args})")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class _StopAfterBoundary(Callback):
    """End the pilot a few checks after the boundary: nothing after it changes the evidence."""

    def __init__(self, cb: EnlightenmentCallback, after: int) -> None:
        self.cb, self.after = cb, after

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.cb.boundary_step is not None and trainer.global_step >= self.cb.boundary_step + self.after:
            trainer.should_stop = True


class EnlightenmentFinder:
    """Run a short pilot of a recipe and recommend a strategy, like Lightning's learning-rate finder.

    The pilot trains a *copy* of the model (the model passed in is not changed) for at most ``pilot_fraction``
    of the planned run, with an :class:`~lit_early_phase.EnlightenmentCallback` (the user's monitor and threshold
    if one is given, strategy ``"auto"``, no guard) and :class:`~lit_early_phase.EnlightenmentDiagnostics`. It
    stops a little after the boundary. The pilot runs on one device: for a multi-device recipe, give
    ``planned_steps`` as the steps of the same run on one device (the boundary is a number of batches seen).
    It measures when the monitor reaches the threshold (the period's share of the planned run), the Mixup
    gradient interference and the dead-activation fractions inside the period, and applies
    :func:`~lit_early_phase.finder.rule.decide` (the rule and its measured thresholds: docs/diagnostics.md). The
    answer may be ``"none"`` (train as usual) where the measured evidence shows no gain or a loss; every answer
    carries the figures behind it (``citations``) and how sure it is (``uncertainty``).

    Args:
        pilot_fraction: the pilot's longest length as a share of the planned run, in ``(0, 1]``.
        max_pilot_steps: an upper bound on the pilot's steps (``None``: none).
        every_n_steps: steps between the diagnostics' checks in the pilot.
        probe_size: samples of the diagnostics' probe batch.
        callback: the ``EnlightenmentCallback`` the user plans to train with (its monitor, threshold, window and
            check interval are used); ``None``: the defaults.
        trainer_kwargs: more ``Trainer`` arguments for the pilot (``accelerator``, ``precision``...).

    Raises:
        ValueError: for a ``pilot_fraction`` outside ``(0, 1]`` or step counts below 1.

    Example:
        >>> from lit_early_phase import ImageClassifier
        >>> from lit_early_phase.datamodules import MNIST5kDataModule
        >>> finder = EnlightenmentFinder(max_pilot_steps=4, every_n_steps=2)
        >>> model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
        >>> rec = finder.find(model, MNIST5kDataModule(batch_size=16, train_subset=64), planned_steps=40)
        >>> rec.strategy in ("mixup_pause", "alpha_boost", "none")
        True
    """

    def __init__(
        self,
        pilot_fraction: float = 0.25,
        max_pilot_steps: int | None = None,
        every_n_steps: int = 5,
        probe_size: int = 64,
        callback: EnlightenmentCallback | None = None,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_number("pilot_fraction", pilot_fraction, low=0.0, high=1.0, low_open=True, hint="A share of the run.")
        check_int("max_pilot_steps", max_pilot_steps, minimum=1, allow_none=True)
        check_int("every_n_steps", every_n_steps, minimum=1)
        self.pilot_fraction = float(pilot_fraction)
        self.max_pilot_steps = max_pilot_steps
        self.every_n_steps = every_n_steps
        self.probe_size = probe_size
        self.callback_args = {} if callback is None else {k: getattr(callback, k) for k in COPIED}
        self.trainer_kwargs = dict(trainer_kwargs or {})

    def pilot_steps(self, planned_steps: int) -> int:
        """The pilot's longest length.

        Args:
            planned_steps: optimizer steps of the planned run.

        Returns:
            ``ceil(pilot_fraction × planned_steps)``, at most ``max_pilot_steps``.

        Example:
            >>> EnlightenmentFinder(pilot_fraction=0.25, max_pilot_steps=100).pilot_steps(600)
            100
        """
        steps = max(1, math.ceil(self.pilot_fraction * planned_steps))
        return steps if self.max_pilot_steps is None else min(steps, self.max_pilot_steps)

    def find(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule | None = None,
        train_dataloaders: Any = None,
        *,
        planned_steps: int,
    ) -> Recommendation:
        """Run the pilot on a copy of ``model`` and return the recommendation.

        Args:
            model: the LightningModule of the recipe (an ``Enlightenable`` one; not modified).
            datamodule: the recipe's data (or ``train_dataloaders``).
            train_dataloaders: a training ``DataLoader`` instead of a data module.
            planned_steps: optimizer steps of the planned run (``Trainer.estimated_stepping_batches``).

        Returns:
            A :class:`Recommendation`.

        Raises:
            ValueError: for ``planned_steps < 1``.
        """
        check_int("planned_steps", planned_steps, minimum=1, hint="The planned run's optimizer steps.")
        steps = self.pilot_steps(planned_steps)
        pilot_model = copy.deepcopy(model)
        cb = EnlightenmentCallback(**(self.callback_args | {"max_duration": None, "verbose": False, "figure": False}))
        diag = EnlightenmentDiagnostics(every_n_steps=self.every_n_steps, probe_size=self.probe_size)
        kwargs = {
            "max_steps": steps,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "devices": 1,
        } | self.trainer_kwargs
        if self.callback_args.get("monitor"):  # a logged metric such as val/acc: the pilot validates as planned
            kwargs.pop("limit_val_batches")
            kwargs.pop("num_sanity_val_steps")
        trainer = L.Trainer(callbacks=[cb, diag, _StopAfterBoundary(cb, 2 * self.every_n_steps)], **kwargs)
        trainer.fit(pilot_model, datamodule=datamodule, train_dataloaders=train_dataloaders)
        boundary = cb.boundary_step
        inside = [h for h in diag.history if boundary is None or h["step"] <= boundary]
        evidence = Evidence(
            planned_steps=int(planned_steps),
            pilot_steps=int(trainer.global_step),
            boundary_step=boundary,
            mixes=bool(getattr(getattr(model, "knobs_base", None), "mixes", False)),
            interference=_mean(inside, INTERFERENCE),
            dead_fraction=_mean(inside, DEAD_MEAN),
            dead_fraction_mixed=_mean(inside, DEAD_MIXED),
            benr=_mean(inside, BENR),
            setting=setting_of(model, datamodule),
        )
        decision: Decision = decide(evidence)
        threshold = None if cb.duration is not None else cb.threshold
        return Recommendation(
            decision.strategy,
            decision.reason,
            {}  # "none": no callback to train with, so none of the user's callback arguments either
            if decision.strategy == "none"
            else decision.callback_kwargs | {k: v for k, v in self.callback_args.items() if v != _default(k)},
            evidence,
            diagnostics=[dict(h) for h in diag.history],
            extrapolated=decision.extrapolated,
            citations=decision.citations,
            uncertainty=decision.uncertainty,
            _history=cb.report.history,
            _monitor_name=cb.monitor_name,
            _threshold=threshold,
        )


def setting_of(model: L.LightningModule, datamodule: Any = None) -> Setting:
    """The kind of setting the rule's evidence is read for: detection, text, time series or images.

    Args:
        model: the recipe's LightningModule.
        datamodule: its data module, if any.

    Returns:
        ``"detection"`` (an ``ObjectDetector``), ``"text"`` (a ``CausalLMFineTune``), ``"series"`` (a series
        backbone, or UCR/UEA data) or ``"image"``.

    Example:
        >>> from lit_early_phase import ImageClassifier
        >>> setting_of(ImageClassifier("fcn", num_classes=2, in_chans=1))
        'series'
    """
    from lit_early_phase.backbones import SERIES_BACKBONES

    # class names through the MRO, so the check imports neither transformers (causal LM) nor aeon (UCR data)
    model_classes = {c.__name__ for c in type(model).__mro__}
    data_classes = {c.__name__ for c in type(datamodule).__mro__}
    if "ObjectDetector" in model_classes:
        return "detection"
    if "CausalLMFineTune" in model_classes:
        return "text"
    backbone = getattr(model, "hparams", {}).get("backbone")
    if (isinstance(backbone, str) and backbone in SERIES_BACKBONES) or "UCRDataModule" in data_classes:
        return "series"
    return "image"


def _mean(history: list[dict[str, float]], key: str) -> float:
    values = [h[key] for h in history if key in h and math.isfinite(h[key])]
    return float(np.mean(values)) if values else math.nan


def _default(name: str) -> Any:
    import inspect

    return inspect.signature(EnlightenmentCallback).parameters[name].default
