"""Every key the package writes to loggers and W&B runs, in one place.

The callback's logging, its history and run summary, the boundary figure, the W&B run, the finder and the
dashboard all read their keys from here, so a renamed key changes all of them at once; ``tests/test_keys.py``
fails on a key literal (``"enlightenment/..."``, ``"diagnostics/..."``, ``"trainer/..."``) anywhere else under
``src/``. Pure constants: this module imports nothing from the package.

Example:
    >>> from lit_early_phase import keys
    >>> keys.MONITOR_KEY
    'enlightenment/monitor'
    >>> keys.dead_layer_key("model.relu")
    'diagnostics/dead/model.relu'
"""

from __future__ import annotations

#: the prefix of every key :class:`~lit_early_phase.EnlightenmentCallback` writes
ENLIGHTENMENT_PREFIX = "enlightenment/"
#: the prefix of every key :class:`~lit_early_phase.callbacks.EnlightenmentDiagnostics` writes
DIAGNOSTICS_PREFIX = "diagnostics/"
#: the prefixes of the package's own keys
KEY_PREFIXES: tuple[str, ...] = (ENLIGHTENMENT_PREFIX, DIAGNOSTICS_PREFIX)
#: the glob of every ``enlightenment/*`` key (W&B's ``define_metric``)
ENLIGHTENMENT_GLOB = ENLIGHTENMENT_PREFIX + "*"
#: the step metric Lightning's ``WandbLogger`` writes; the period's keys are plotted against it
WANDB_STEP_KEY = "trainer/global_step"

# EnlightenmentCallback: what every written training step carries ------------------------------------------------
PHASE = ENLIGHTENMENT_PREFIX + "phase"
ALPHA = ENLIGHTENMENT_PREFIX + "alpha"
LAMBDA_MEAN = ENLIGHTENMENT_PREFIX + "lambda_mean"
MIXED_FRACTION = ENLIGHTENMENT_PREFIX + "mixed_fraction"
REMOVED_FRACTION = ENLIGHTENMENT_PREFIX + "removed_fraction"
#: the phase and what the module applied, in this order, at every written step (the history's ``applied`` keys)
APPLIED_KEYS: tuple[str, ...] = (PHASE, ALPHA, LAMBDA_MEAN, MIXED_FRACTION, REMOVED_FRACTION)
#: the monitor's value as compared with the threshold, at the checks that fall on written steps
MONITOR_KEY = ENLIGHTENMENT_PREFIX + "monitor"
#: the name of the built-in monitor, the running training accuracy (not written: its checks go to MONITOR_KEY)
RUNNING_ACC = ENLIGHTENMENT_PREFIX + "running_acc"
BOUNDARY_STEP = ENLIGHTENMENT_PREFIX + "boundary_step"
BOUNDARY_EPOCH = ENLIGHTENMENT_PREFIX + "boundary_epoch"
#: written once, at the boundary
BOUNDARY_KEYS: tuple[str, ...] = (BOUNDARY_STEP, BOUNDARY_EPOCH)
#: every key the callback writes to the loggers (the W&B dashboard's panels are built from this one list)
LOGGED_KEYS: tuple[str, ...] = (*APPLIED_KEYS, MONITOR_KEY, *BOUNDARY_KEYS)
#: the boundary figure's image key in the loggers that take images
FIGURE_KEY = ENLIGHTENMENT_PREFIX + "figure"

# EnlightenmentCallback: the run summary (W&B) -------------------------------------------------------------------
ENDED_BY = ENLIGHTENMENT_PREFIX + "ended_by"
REASON = ENLIGHTENMENT_PREFIX + "reason"
#: the monitored metric's name ("monitor" is the monitor's logged value)
MONITOR_NAME = ENLIGHTENMENT_PREFIX + "monitor_name"
MONITOR_AT_BOUNDARY = ENLIGHTENMENT_PREFIX + "monitor_at_boundary"
THRESHOLD = ENLIGHTENMENT_PREFIX + "threshold"
STRATEGY = ENLIGHTENMENT_PREFIX + "strategy"
STRATEGY_PARAMS = ENLIGHTENMENT_PREFIX + "strategy_params"
PERIOD_STEPS = ENLIGHTENMENT_PREFIX + "period_steps"
RUN_STEPS = ENLIGHTENMENT_PREFIX + "run_steps"
PERIOD_SHARE = ENLIGHTENMENT_PREFIX + "period_share"
#: the run-summary keys the callback writes, in this order (the dashboard reads them from here)
SUMMARY_KEYS: tuple[str, ...] = (
    BOUNDARY_STEP,
    BOUNDARY_EPOCH,
    ENDED_BY,
    REASON,
    MONITOR_NAME,
    MONITOR_AT_BOUNDARY,
    THRESHOLD,
    STRATEGY,
    STRATEGY_PARAMS,
    PERIOD_STEPS,
    RUN_STEPS,
    PERIOD_SHARE,
)

# EnlightenmentDiagnostics ---------------------------------------------------------------------------------------
BENR = DIAGNOSTICS_PREFIX + "benr"
BENR_EPOCH = DIAGNOSTICS_PREFIX + "benr_epoch"
DEAD_MEAN = DIAGNOSTICS_PREFIX + "dead_fraction"
DEAD_MIXED = DIAGNOSTICS_PREFIX + "dead_fraction_mixed"
#: the prefix of the per-layer dead fractions (:func:`dead_layer_key`)
DEAD_LAYER_PREFIX = DIAGNOSTICS_PREFIX + "dead/"
#: the regular expression of every per-layer dead-fraction key (the dashboard's per-layer panel)
DEAD_LAYER_REGEX = DEAD_LAYER_PREFIX + ".*"
INTERFERENCE = DIAGNOSTICS_PREFIX + "interference"
MIXED_COSINE = DIAGNOSTICS_PREFIX + "mixed_clean_cosine"
ATD = DIAGNOSTICS_PREFIX + "atd"
#: the keys written at every check (plus one :func:`dead_layer_key` per activation layer)
DIAGNOSTICS_CHECK_KEYS: tuple[str, ...] = (BENR, DEAD_MEAN, DEAD_MIXED, INTERFERENCE, MIXED_COSINE, ATD)
#: every fixed key the diagnostics write (the W&B dashboard's panels are built from it)
DIAGNOSTICS_LOGGED_KEYS: tuple[str, ...] = (*DIAGNOSTICS_CHECK_KEYS, BENR_EPOCH)
#: the diagnostics an EnlightenmentCallback's boundary figure draws, one panel each
DIAGNOSTICS_FIGURE_KEYS: tuple[str, ...] = (INTERFERENCE, DEAD_MEAN, BENR)


def dead_layer_key(layer: str) -> str:
    """The key of one activation layer's dead fraction.

    Args:
        layer: the layer's module name (``model.named_modules()``).

    Returns:
        ``"diagnostics/dead/<layer>"``.
    """
    return DEAD_LAYER_PREFIX + layer
