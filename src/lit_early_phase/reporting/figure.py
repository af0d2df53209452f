"""The boundary figure: the monitor against step with the period shaded, and what was applied on tracks below.

Pure matplotlib on the non-interactive ``Agg`` canvas (no screen, no pyplot state), built from a
:class:`~lit_early_phase.callbacks.history.PeriodHistory`. Every plotted line carries the logged key as its label
(``enlightenment/monitor``, ``enlightenment/alpha``, ``val/acc`` ...), so its data can be compared with what the
loggers got.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lit_early_phase.keys import ALPHA, DIAGNOSTICS_PREFIX, LAMBDA_MEAN, MONITOR_KEY, REMOVED_FRACTION

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the tracks below the monitor: (title, keys drawn on it)
TRACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Mixup", (ALPHA, LAMBDA_MEAN)),
    ("removal", (REMOVED_FRACTION,)),
)
PERIOD_COLOR = "#f4c542"


def boundary_figure(
    history: Any,
    *,
    monitor_name: str,
    threshold: float | None,
    title: str | None = None,
) -> Figure:
    """The monitor (and validation metrics) against step, the period shaded, α / mean λ / removal below.

    Args:
        history: a :class:`~lit_early_phase.callbacks.history.PeriodHistory` (or anything with its attributes).
        monitor_name: the monitored key, for the legend.
        threshold: drawn as a dashed line (``None``: a fixed duration, no threshold).
        title: the figure's title (default: where the period ended).

    Returns:
        A matplotlib ``Figure`` on an ``Agg`` canvas (save it with ``fig.savefig(path)``).

    Example:
        >>> from lit_early_phase.callbacks.history import PeriodHistory
        >>> h = PeriodHistory(boundary_step=2)
        >>> for s in range(4):
        ...     h.record_applied(s, {"enlightenment/phase": float(s < 2), "enlightenment/alpha": 0.4 * (s >= 2)})
        >>> h.record_check(1, 0.55)
        >>> fig = boundary_figure(h, monitor_name="enlightenment/running_acc", threshold=0.5)
        >>> sorted(figure_data(fig))
        ['enlightenment/alpha', 'enlightenment/monitor']
        >>> figure_data(fig)["enlightenment/alpha"]
        [(0.0, 0.0), (1.0, 0.0), (2.0, 0.4), (3.0, 0.4)]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tracks = [(name, [k for k in keys if k in history.applied]) for name, keys in TRACKS]
    tracks = [(name, keys) for name, keys in tracks if keys]
    # EnlightenmentDiagnostics' values (`diagnostics/...`), one panel each below the applied tracks
    diagnostics = {k: v for k, v in sorted(history.metrics.items()) if k.startswith(DIAGNOSTICS_PREFIX) and v}
    panels = len(tracks) + len(diagnostics)
    fig = Figure(figsize=(8, 2.6 + 1.4 * panels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1 + panels, 1, sharex=True, squeeze=False, height_ratios=[2.2] + [1] * panels)[:, 0]
    top = axes[0]
    if history.checks:
        xs, ys = zip(*history.checks, strict=True)
        top.plot(xs, ys, "o-", ms=3, color="black", label=MONITOR_KEY)
    for name, values in sorted(history.metrics.items()):
        if values and name not in diagnostics:
            xs, ys = zip(*values, strict=True)
            top.plot(xs, ys, "s--", ms=3, label=name)
    if threshold is not None:
        top.axhline(threshold, color="grey", linestyle=":", linewidth=1)
    shown = [y for line in top.get_lines() for y in line.get_ydata()]
    if shown and all(0 <= y <= 1 for y in shown) and (threshold is None or 0 <= threshold <= 1):
        top.set_ylim(-0.02, 1.02)  # accuracies and mAP on their whole scale
    top.set_ylabel(monitor_name.split("/")[-1])
    for ax, (name, keys) in zip(axes[1:], tracks, strict=False):
        for key in keys:
            ax.plot(history.steps, history.applied[key], drawstyle="steps-post", label=key)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    for ax, (key, values) in zip(axes[1 + len(tracks) :], diagnostics.items(), strict=True):
        xs, ys = zip(*values, strict=True)
        ax.plot(xs, ys, "o-", ms=3, color="#8e44ad", label=key)
        ax.set_ylabel(key.removeprefix(DIAGNOSTICS_PREFIX))
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    end = history.boundary_step
    last = max([*history.steps, *(s for s, _ in history.checks), 0])
    for ax in axes:
        ax.axvspan(0, last if end is None else end, color=PERIOD_COLOR, alpha=0.25, linewidth=0)
        if end is not None:
            ax.axvline(end, color="#c0392b", linewidth=1.2)
    if end is not None:
        top.annotate(f"boundary: step {end}", (end, 1), xycoords=("data", "axes fraction"), xytext=(4, -12),
                     textcoords="offset points", color="#c0392b", fontsize=8)  # fmt: skip
    if any(not str(line.get_label()).startswith("_") for line in top.get_lines()):
        top.legend(loc="lower right", fontsize=7, frameon=False)
    axes[-1].set_xlabel("step")
    default = "enlightenment period: still running" if end is None else f"enlightenment period: steps 0-{end}"
    fig.suptitle(title or default, fontsize=10)
    return fig


def figure_data(fig: Figure) -> dict[str, list[tuple[float, float]]]:
    """The ``(step, value)`` points of every line of a :func:`boundary_figure`, by its logged key.

    Args:
        fig: a figure made by :func:`boundary_figure`.

    Returns:
        ``key -> [(step, value), ...]`` for each labelled line (the period's shading and the boundary line are
        not data).
    """
    out: dict[str, list[tuple[float, float]]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = str(line.get_label())
            if not label.startswith("_"):
                out[label] = [(float(x), float(y)) for x, y in line.get_xydata()]
    return out
