"""`lit-early-phase dashboard`: a W&B workspace that shows the enlightenment period of the project's runs.

Built with ``wandb-workspaces`` from the keys the callbacks really write (``lit_early_phase.keys``: ``LOGGED_KEYS``,
the run-summary keys ``SUMMARY_KEYS``, the figure's key and the diagnostics' keys), so a renamed key changes the
dashboard with it. Sections: the monitor with the boundary and the figure, Mixup α / λ, removal, the shipped
modules' accuracy / mAP / loss, and diagnostics (``diagnostics/*``) when runs log them. Like the rest of
:mod:`lit_early_phase.reporting`, it imports no other layer of the package (only the core's
:mod:`lit_early_phase.keys`).

    lit-early-phase dashboard --entity ENTITY --project PROJECT     # saves the workspace (needs the network)
    lit-early-phase dashboard --entity ENTITY --project PROJECT --print > workspace.json   # offline: its JSON
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lightning_utilities.core.imports import RequirementCache

from lit_early_phase import keys as K

_WORKSPACES = RequirementCache("wandb-workspaces")
#: what the shipped modules log that the accuracy section shows (ImageClassifier, ObjectDetector, CausalLMFineTune)
MODULE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accuracy", ("train/acc_step", "val/acc")),
    ("detection mAP", ("val/map_50", "val/map", "train/fg_acc")),
    ("loss", ("train/loss", "val/loss")),
)


def panel_keys(workspace: Any) -> set[str]:
    """Every metric key a workspace's panels name (line-plot ``y``, scalar ``metric``, media ``media_keys``)."""
    keys: set[str] = set()
    for section in workspace.sections:
        for panel in section.panels:
            for y in getattr(panel, "y", None) or []:
                keys.add(getattr(y, "name", y))
            metric = getattr(panel, "metric", None)
            if metric:
                keys.add(getattr(metric, "name", metric))
            keys.update(getattr(panel, "media_keys", None) or [])
    return keys


def build_workspace(entity: str, project: str, name: str = "Enlightenment period") -> Any:
    """The workspace: its sections and panels, not saved.

    Args:
        entity: the W&B entity (user or team).
        project: the W&B project holding the runs.
        name: the workspace's (view's) name.

    Returns:
        A ``wandb_workspaces.workspaces.Workspace``; ``.save()`` uploads it.

    Raises:
        ModuleNotFoundError: without ``wandb-workspaces`` (``pip install 'lit-early-phase[wandb]'``).

    Example:
        >>> ws = build_workspace("my-team", "my-project")
        >>> [s.name for s in ws.sections][:2]
        ['Enlightenment period: monitor and boundary', 'Mixup: alpha and lambda']
    """
    if not _WORKSPACES:
        raise ModuleNotFoundError(f"{_WORKSPACES}. The dashboard needs it: pip install 'lit-early-phase[wandb]'.")
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def line(title: str, *keys: str) -> Any:
        return wr.LinePlot(title=title, x=K.WANDB_STEP_KEY, y=list(keys))

    phase = K.PHASE
    sections = [
        ws.Section(
            name="Enlightenment period: monitor and boundary",
            is_open=True,
            panels=[
                line("monitor at the checks (the period ends at the threshold)", K.MONITOR_KEY, phase),
                wr.ScalarChart(title="boundary step", metric=wr.SummaryMetric(K.BOUNDARY_STEP)),
                wr.ScalarChart(title="share of the run in the period", metric=wr.SummaryMetric(K.PERIOD_SHARE)),
                wr.MediaBrowser(title="boundary figure", media_keys=[K.FIGURE_KEY]),
            ],
        ),
        ws.Section(
            name="Mixup: alpha and lambda",
            is_open=True,
            panels=[
                line("Mixup alpha in force", K.ALPHA, phase),
                line("mean lambda and mixed share of each batch", K.LAMBDA_MEAN, K.MIXED_FRACTION),
            ],
        ),
        ws.Section(
            name="High-Loss Removal",
            is_open=True,
            panels=[line("share of each batch removed", K.REMOVED_FRACTION, phase)],
        ),
        ws.Section(
            name="Accuracy, mAP and loss",
            is_open=True,
            panels=[line(title, *keys) for title, keys in MODULE_PANELS],
        ),
        ws.Section(
            name="Diagnostics (EnlightenmentDiagnostics)",
            is_open=False,
            panels=[
                line("Mixup gradient interference (perpendicular part / clean norm)", K.INTERFERENCE, phase),
                line("cosine of mixed and clean gradients", K.MIXED_COSINE),
                line("dead-activation fraction, clean and mixed probe", K.DEAD_MEAN, K.DEAD_MIXED, phase),
                line("BENR (per check window, per epoch)", K.BENR, K.BENR_EPOCH),
                line("activation trajectory distance", K.ATD),
                wr.LinePlot(title="dead fraction per layer", x=K.WANDB_STEP_KEY, metric_regex=K.DEAD_LAYER_REGEX),
            ],
        ),
    ]
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections)


def workspace_json(workspace: Any) -> str:
    """The workspace as the JSON W&B stores (no network)."""
    return workspace._to_model().model_dump_json(by_alias=True, indent=2)  # the library's own serialisation


def main(argv: list[str] | None = None) -> int:
    """``lit-early-phase dashboard``: build the workspace; save it (online) or print its JSON (``--print``).

    Args:
        argv: arguments after ``dashboard`` (``None``: ``sys.argv[2:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="lit-early-phase dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--entity", required=True, help="W&B entity (user or team)")
    parser.add_argument("--project", required=True, help="W&B project with the runs")
    parser.add_argument("--name", default="Enlightenment period", help="the workspace's name")
    parser.add_argument("--print", action="store_true", help="write the workspace's JSON to stdout, save nothing")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    try:
        workspace = build_workspace(args.entity, args.project, args.name)
    except ModuleNotFoundError as err:
        parser.exit(2, f"lit-early-phase dashboard: {err}\n")
    if args.print:
        print(workspace_json(workspace))
        return 0
    try:
        workspace.save()
    except Exception as err:  # network, login or permission: wandb raises many kinds
        parser.exit(
            1,
            f"lit-early-phase dashboard: could not save the workspace to W&B ({type(err).__name__}: {err}). "
            "Saving needs the network and a W&B login (`wandb login`). Without them, write its JSON with "
            "`--print` and import it later.\n",
        )
    print(f"saved: {workspace.url}")
    return 0
