"""The boundary figure reaches MLflow: Lightning's ``MLFlowLogger`` on a local file store, read back from its folder."""

from __future__ import annotations

from pathlib import Path

import mlflow  # noqa: F401  the `dev` extra (CI) installs mlflow-skinny: missing, this test fails, not skips
import pytest
from helpers import trainer_kwargs
from PIL import Image

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.reporting.loggers import FIGURE_FILE


def test_the_figure_is_an_artifact_of_the_mlflow_run(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.loggers import MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.x keeps the file store behind this switch
    store = tmp_path / "mlruns"
    logger = MLFlowLogger(experiment_name="enlightenment", tracking_uri=f"file:{store}")
    cb = EnlightenmentCallback(duration="3st")
    L.seed_everything(0)
    trainer = L.Trainer(max_steps=5, callbacks=[cb], **trainer_kwargs(tmp_path, logger=logger, log_every_n_steps=1))
    trainer.fit(
        ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4),
        MNIST5kDataModule(batch_size=16, train_subset=128, val_size=32),
    )
    assert cb.boundary_step == 3

    run_dir = store / logger.experiment_id / logger.run_id
    (artifact,) = (run_dir / "artifacts").rglob("*.png")
    assert artifact.name == FIGURE_FILE
    with Image.open(artifact) as image:
        assert image.width > 400 and image.height > 200  # a drawn figure, not an empty file
    # the same run holds the applied values the figure draws: in the period for steps 0-2, Mixup off, then on
    assert _metric(run_dir, "enlightenment/phase") == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert _metric(run_dir, "enlightenment/alpha") == pytest.approx([0.0, 0.0, 0.0, 0.4, 0.4])


def _metric(run_dir: Path, key: str) -> list[float]:
    """One metric of a file-store run, by step: each line of ``metrics/<key>`` is ``timestamp value step``."""
    rows = [line.split() for line in (run_dir / "metrics" / key).read_text().splitlines() if line]
    return [float(value) for _, value, _ in sorted(rows, key=lambda r: int(r[2]))]
