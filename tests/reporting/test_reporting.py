"""What the user sees of the period on the shipped classifier: the figure equals the logged values, it reaches
TensorBoard and W&B (offline, read back with `wandb leet inspect`), the W&B run has the config and summary, the
progress bar shows the phase, and a resumed run's figure covers the whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from helpers import column, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.keys import APPLIED_KEYS, FIGURE_KEY, MONITOR_KEY, SUMMARY_KEYS
from lit_early_phase.reporting.figure import figure_data
from lit_early_phase.reporting.loggers import FIGURE_FILE

STEPS = 16


def _same_points(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Same steps, same values (to float32 precision: CSV and W&B store what the loggers got as text/doubles)."""
    return [x for x, _ in a] == [x for x, _ in b] and [y for _, y in a] == pytest.approx([y for _, y in b], rel=1e-6)


def _fit(tmp_path: Path, cb: EnlightenmentCallback, *, steps: int = STEPS, **kw) -> L.Trainer:
    L.seed_everything(0)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4, mix_seed=0)
    dm = MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32)
    args = trainer_kwargs(tmp_path, log_every_n_steps=1, val_check_interval=8, limit_val_batches=1)
    args.update(kw)
    trainer = L.Trainer(max_steps=steps, callbacks=[cb, *args.pop("callbacks", [])], **args)
    trainer.fit(model, dm)
    return trainer


def test_the_figure_shows_exactly_what_the_loggers_got(tmp_path):
    cb = EnlightenmentCallback(threshold=0.2, check_every_n_steps=2, max_duration=None)
    trainer = _fit(tmp_path, cb, logger=CSVLogger(tmp_path, name="csv"))
    rows = read_metrics(tmp_path)
    boundary = int(next(iter(column(rows, "enlightenment/boundary_step").values())))
    assert cb.boundary_step == boundary and 2 <= boundary <= STEPS and cb.ended_by == "monitor"

    data = figure_data(cb.figure())
    for key in (*APPLIED_KEYS, MONITOR_KEY, "val/acc"):
        if key == "enlightenment/phase" or key == "enlightenment/mixed_fraction":
            continue  # drawn as the shaded period / not a track
        logged = sorted(column(rows, key).items())
        assert len(logged) >= 2, key
        assert _same_points(data[key], logged), key
    # the period is shaded up to the boundary: the phase column says 1 exactly before it
    phase = column(rows, "enlightenment/phase")
    assert {s for s, v in phase.items() if v == 1} == set(range(boundary))
    assert cb.report.history.boundary_step == boundary

    path = Path(trainer.log_dir) / FIGURE_FILE
    assert cb.report.figure_path == path and path.stat().st_size > 10_000

    s = cb.summary(trainer)
    assert set(s) == set(SUMMARY_KEYS)
    assert s["enlightenment/boundary_step"] == boundary and s["enlightenment/period_share"] == boundary / STEPS
    assert s["enlightenment/monitor_at_boundary"] == pytest.approx(column(rows, MONITOR_KEY)[boundary - 1])
    assert s["enlightenment/monitor_at_boundary"] >= 0.2 and s["enlightenment/strategy"] == "MixupPause"


def test_no_logger_saves_no_file_but_the_figure_is_there(tmp_path):
    cb = EnlightenmentCallback(duration="4st")
    _fit(tmp_path, cb, steps=6)
    assert cb.report.figure_path is None and not list(tmp_path.rglob(FIGURE_FILE))
    assert figure_data(cb.figure()) == {}  # nothing written to a logger, nothing drawn


def test_the_figure_goes_to_the_tensorboard_event_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cb = EnlightenmentCallback(duration="4st")
    trainer = _fit(tmp_path, cb, steps=8, logger=TensorBoardLogger(tmp_path, name="tb"))
    events = EventAccumulator(trainer.log_dir)
    events.Reload()
    assert FIGURE_KEY in events.Tags()["images"]
    (image,) = events.Images(FIGURE_KEY)
    assert image.step == 8 and image.width > 400
    assert [e.step for e in events.Scalars("enlightenment/phase")][:5] == [0, 1, 2, 3, 4]


class PhaseSpy(Callback):
    def __init__(self) -> None:
        self.phases: dict[int, str] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = trainer.progress_bar_callback
        self.phases[trainer.global_step] = bar.get_metrics(trainer, pl_module)["phase"]


def test_the_progress_bar_shows_the_phase_and_is_given_back(tmp_path):
    spy, bar = PhaseSpy(), TQDMProgressBar(refresh_rate=1)
    cb = EnlightenmentCallback(duration="3st")
    trainer = _fit(tmp_path, cb, steps=6, enable_progress_bar=True, callbacks=[spy, bar])
    # the callback runs before the spy (callback order), so the step that ends the period already says "after"
    assert spy.phases == {1: "enlightenment", 2: "enlightenment"} | {s: "after 3" for s in (3, 4, 5, 6)}
    assert "phase" not in bar.get_metrics(trainer, trainer.lightning_module)  # the bar's own method again


def test_a_resumed_run_draws_the_whole_run(tmp_path):
    full = EnlightenmentCallback(threshold=0.2, check_every_n_steps=2, max_duration=None)
    _fit(tmp_path / "full", full, logger=CSVLogger(tmp_path / "full"))

    # saved at step 6, between validations (a checkpoint taken at a validation step precedes that validation)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1, filename="{step}")
    first = EnlightenmentCallback(threshold=0.2, check_every_n_steps=2, max_duration=None)
    _fit(tmp_path / "a", first, steps=6, enable_checkpointing=True, callbacks=[ckpt], logger=CSVLogger(tmp_path / "a"))
    import torch

    state = torch.load(tmp_path / "ckpt" / "step=6.ckpt", weights_only=True)  # the history is plain values
    (saved,) = [v for k, v in state["callbacks"].items() if k.startswith("EnlightenmentCallback")]
    assert saved["report"]["steps"] == list(range(6))

    second = EnlightenmentCallback(threshold=0.2, check_every_n_steps=2, max_duration=None)
    L.seed_everything(0)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4, mix_seed=0)
    dm = MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32)
    kw = trainer_kwargs(tmp_path / "b", log_every_n_steps=1, val_check_interval=8, limit_val_batches=1)
    kw["logger"] = CSVLogger(tmp_path / "b")
    L.Trainer(max_steps=STEPS, callbacks=[second], **kw).fit(model, dm, ckpt_path=tmp_path / "ckpt" / "step=6.ckpt")
    assert second.report.history.steps == full.report.history.steps == list(range(STEPS))
    resumed, uninterrupted = figure_data(second.figure()), figure_data(full.figure())
    assert resumed.keys() == uninterrupted.keys()
    for k in resumed:
        assert _same_points(resumed[k], uninterrupted[k]), (k, resumed[k], uninterrupted[k])


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    # conftest defaults W&B to "disabled", and wandb reads its environment once per process: end any session an
    # earlier test started, so this one starts offline in tmp_path
    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield tmp_path
    wandb.finish()
    wandb.teardown()


def _inspect(run_dir: Path, *extra: str) -> str:
    wandb_cli = Path(sys.executable).with_name("wandb")
    cmd = [str(wandb_cli), "leet", "inspect", *extra, "--json", str(run_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_offline_wandb_run_holds_the_summary_config_history_and_figure(tmp_path, wandb_offline, caplog):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    cb = EnlightenmentCallback(threshold=0.2, check_every_n_steps=2, max_duration=None)
    logger = WandbLogger(save_dir=tmp_path, offline=True, project="lit-early-phase-test")
    trainer = _fit(tmp_path, cb, logger=logger)
    run_dir = Path(logger.experiment.dir).parent
    assert run_dir.name.startswith("offline-run-") and run_dir.is_relative_to(tmp_path)
    expected = cb.summary(trainer)
    wandb.finish()

    got = json.loads(_inspect(run_dir, "--summary"))
    summary, config = got["summary"], got["config"]["enlightenment"]
    for key, value in expected.items():
        assert summary[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert summary["enlightenment/boundary_step"] == cb.boundary_step
    assert config["threshold"] == 0.2 and config["resolved_strategy"] == {"name": "mixup_pause"}
    assert config["monitor_name"] == "enlightenment/running_acc" and config["check_every_n_steps"] == 2
    assert summary[FIGURE_KEY]["_type"] == "images/separated"
    (media,) = summary[FIGURE_KEY]["filenames"]
    assert (run_dir / "files" / media).is_file()

    records = [json.loads(line) for line in _inspect(run_dir).splitlines() if line.strip()]
    history = [r for r in records if r.get("type") == "history"]
    rows = [r["history"]["item"] for r in history if "enlightenment/alpha" in r["history"]["item"]]
    alphas = {int(r["trainer/global_step"]): r["enlightenment/alpha"] for r in rows}
    kept = cb.report.history
    assert alphas == pytest.approx(dict(zip(kept.steps, kept.applied["enlightenment/alpha"], strict=True)))
    assert {a for s, a in alphas.items() if s < cb.boundary_step} == {0.0} and alphas[STEPS - 1] == 0.4
