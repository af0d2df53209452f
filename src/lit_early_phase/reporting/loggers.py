"""The boundary figure to every Lightning logger that takes images, and where it is saved.

Each logger has its own image call (there is no common one in Lightning's ``Logger``): ``WandbLogger.log_image``,
TensorBoard's ``SummaryWriter.add_figure``, MLflow's ``log_figure``, ``NeptuneLogger`` (where the Lightning release
has it) and ``CometLogger`` through their experiment objects. Loggers without images (``CSVLogger``) get the PNG
file saved in their folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lit_early_phase.keys import FIGURE_KEY

log = logging.getLogger(__name__)

FIGURE_FILE = "enlightenment_period.png"


def figure_dir(trainer: Any) -> Path | None:
    """Where the figure is saved: the first logger's run folder (``trainer.log_dir``); ``None`` without loggers."""
    if not trainer.loggers:
        return None
    return Path(trainer.log_dir or trainer.default_root_dir)


def log_figure(loggers: list[Any], fig: Any, path: Path, *, step: int) -> list[str]:
    """Send ``fig`` (already saved at ``path``) to each logger that takes images.

    Args:
        loggers: ``trainer.loggers``.
        fig: the matplotlib figure.
        path: the saved PNG (W&B and MLflow upload the file).
        step: the step shown with the image.

    Returns:
        The names of the loggers that got the image.
    """
    import lightning.pytorch.loggers as pl_loggers

    def kind(name: str) -> type:
        return getattr(pl_loggers, name, type(None))  # a logger this Lightning release does not have matches none

    sent = []
    for logger in loggers:
        if isinstance(logger, kind("WandbLogger")):
            logger.log_image(key=FIGURE_KEY, images=[str(path)], step=step, caption=["enlightenment period"])
        elif isinstance(logger, kind("TensorBoardLogger")):
            logger.experiment.add_figure(FIGURE_KEY, fig, global_step=step, close=False)
            logger.experiment.flush()
        elif isinstance(logger, kind("MLFlowLogger")):
            logger.experiment.log_figure(logger.run_id, fig, FIGURE_FILE)
        elif isinstance(logger, kind("NeptuneLogger")):
            logger.run[FIGURE_KEY].upload(str(path))
        elif isinstance(logger, kind("CometLogger")):
            logger.experiment.log_image(str(path), name=FIGURE_FILE, step=step)
        else:
            continue
        sent.append(type(logger).__name__)
    return sent
