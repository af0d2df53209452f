"""Resume of the shipped modules: checkpoints load with weights_only=True, and a mid-epoch resume is exact.

On `ImageClassifier` (timm's `test_resnet`, the 1-D `fcn`) with the package's DataModules
(MNIST5k, UCR), from Python and from the CLI.
"""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import trainer_kwargs
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule, UCRDataModule

ROOT = Path(__file__).resolve().parents[2]


class Trace(Callback):
    """What every training step applied, keyed by the step it completed (global_step after it)."""

    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.rows[trainer.global_step] = {
            "x": batch[0].clone(),
            "y": batch[1].clone(),
            "loss": float(outputs["loss"]),
            "alpha": rec.alpha,
            "lambda": float(rec.lambda_mean),
            "correct": int(rec.correct),
        }


def _checkpoints(tmp_path: Path, every: int) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=every, save_top_k=-1, filename="{step}")


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# -- checkpoints hold plain values -----------------------------------------------------------------------------
def test_readme_example_checkpoint_loads_weights_only_and_resumes(tmp_path):
    """The README's first model (default optimizer class) -> ModelCheckpoint file -> fit(ckpt_path=...) and back."""
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    dm = MNIST5kDataModule(batch_size=16, train_subset=64, val_size=16)
    ckpt = _checkpoints(tmp_path / "ckpt", every=3)
    kw = trainer_kwargs(tmp_path, enable_checkpointing=True, limit_val_batches=1)
    L.Trainer(max_steps=3, callbacks=[EnlightenmentCallback(), ckpt], **kw).fit(model, dm)
    path = tmp_path / "ckpt" / "step=3.ckpt"

    raw = torch.load(path, weights_only=True)  # Lightning's default; failed with `Unsupported global: AdamW`
    assert raw["hyper_parameters"]["optimizer"] == {"class_path": "torch.optim.AdamW", "init_args": {}}
    assert raw["hyper_parameters"]["lr_scheduler"] is None
    assert raw["hyper_parameters"]["backbone"] == "test_resnet" and raw["hyper_parameters"]["mixup_alpha"] == 0.4

    resumed = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    trainer = L.Trainer(max_steps=5, callbacks=[EnlightenmentCallback()], **trainer_kwargs(tmp_path))
    trainer.fit(resumed, MNIST5kDataModule(batch_size=16, train_subset=64, val_size=16), ckpt_path=path)
    assert trainer.global_step == 5

    restored = ImageClassifier.load_from_checkpoint(path)
    assert dict(restored.hparams) == dict(model.hparams)
    assert restored.model.default_cfg["architecture"] == "test_resnet"
    assert _same_parameters(restored, model)  # the file holds `model` at step 3
    assert not _same_parameters(restored, resumed)  # which trained on to step 5
    assert type(restored.configure_optimizers()) is torch.optim.AdamW


def test_configured_optimizer_and_scheduler_are_rebuilt_from_the_checkpoint(tmp_path):
    model = ImageClassifier(
        "test_resnet",
        num_classes=10,
        in_chans=1,
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5),
        lr_interval="step",
    )
    assert model.hparams["optimizer"] == {
        "class_path": "torch.optim.SGD",
        "init_args": {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    }
    trainer = L.Trainer(max_steps=2, **trainer_kwargs(tmp_path, limit_val_batches=0))
    trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=64, val_size=16))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    raw = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert raw["hyper_parameters"]["lr_scheduler"] == {
        "class_path": "torch.optim.lr_scheduler.StepLR",
        "init_args": {"step_size": 2, "gamma": 0.5},
    }

    restored = ImageClassifier.load_from_checkpoint(tmp_path / "m.ckpt")
    config = restored.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.SGD and config["lr_scheduler"]["interval"] == "step"
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.05, 0.9, True)
    assert type(scheduler) is torch.optim.lr_scheduler.StepLR and (scheduler.step_size, scheduler.gamma) == (2, 0.5)


def test_a_lambda_optimizer_is_not_stored_and_asks_for_itself_when_trained(tmp_path):
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = L.Trainer(max_steps=1, **trainer_kwargs(tmp_path, limit_val_batches=0))
    trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=32, val_size=16))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    stored = torch.load(tmp_path / "m.ckpt", weights_only=True)["hyper_parameters"]["optimizer"]
    assert stored["class_path"] is None and stored["description"].startswith("test_a_lambda_optimizer")

    restored = ImageClassifier.load_from_checkpoint(tmp_path / "m.ckpt")  # inference works as usual
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(restored.eval()(x), model.eval()(x))
    with pytest.raises(RuntimeError, match=r"load_from_checkpoint\(path, optimizer=\.\.\.\)"):
        restored.configure_optimizers()
    again = ImageClassifier.load_from_checkpoint(tmp_path / "m.ckpt", optimizer=torch.optim.SGD)
    assert type(again.configure_optimizers()) is torch.optim.SGD


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (
            {"class_path": "torch.optim.Adamw"},
            r"'torch.optim.Adamw' does not name .* Did you mean \['torch.optim.AdamW'",
        ),
        ({"class_path": "os.system"}, r"'os.system' does not name an imported Optimizer class"),
        ({"class_path": "torch.optim.AdamW", "init_args": {"lrr": 1.0}}, r"init_args \{'lrr': 1.0\} do not fit"),
        ({"klass": "torch.optim.AdamW"}, r"is not a class-path dict"),
    ],
)
def test_bad_class_path_dicts_are_clear_errors(optimizer, match):
    with pytest.raises(ValueError, match=match):
        ImageClassifier("test_resnet", num_classes=10, optimizer=optimizer)


def test_cli_recipe_checkpoint_loads_weights_only_resumes_and_rebuilds(tmp_path):
    """`lit-early-phase fit --config demo_fashion_mnist` (tiny), then `--ckpt_path`, then Python."""
    from lit_early_phase.cli import build_cli

    def cli(max_steps: int, *extra: str):
        return build_cli(
            [
                "fit", "--config", "demo_fashion_mnist",
                "--trainer.max_steps", str(max_steps), "--trainer.limit_val_batches", "1",
                "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_checkpointing", "true",
                "--data.train_subset", "64", "--data.batch_size", "16", "--data.val_size", "16",
                "--data.num_workers", "0", "--data.persistent_workers", "false", *extra,
            ]
        )  # fmt: skip

    first = cli(2)
    (path,) = (tmp_path / "checkpoints").glob("*.ckpt")
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert hparams["optimizer"]["init_args"]["lr"] == 0.003
    assert hparams["lr_scheduler"]["init_args"]["T_max"] == 4

    resumed = cli(4, "--ckpt_path", str(path))
    assert resumed.trainer.global_step == 4

    restored = ImageClassifier.load_from_checkpoint(path)
    config = restored.configure_optimizers()
    group = config["optimizer"].param_groups[0]
    assert type(config["optimizer"]) is torch.optim.AdamW and (group["lr"], group["weight_decay"]) == (0.003, 0.05)
    assert config["lr_scheduler"]["scheduler"].T_max == 4
    assert restored.hparams["backbone"] == "test_resnet" and restored.knobs_base.mixup_alpha == 0.4
    assert restored.model.default_cfg["architecture"] == "test_resnet"
    assert first.model.hparams["optimizer"] == restored.hparams["optimizer"]


# -- mid-epoch resume on the shipped modules ---------------------------------------------------------------------
def _mnist_run(tmp_path: Path, *, ckpt_path: Path | None = None, save_every: int | None = None):
    """Defaults of the callback (window 20, checks every 10 steps) and of the DataModule (augmentation on)."""
    L.seed_everything(0, verbose=False)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    dm = MNIST5kDataModule(batch_size=32, train_subset=800, val_size=64)  # 25 batches an epoch
    cb = EnlightenmentCallback(max_duration=None)  # a 50-step run: the 0.2dur guard would end it at step 10
    trace = Trace()
    callbacks = [cb, trace] + ([_checkpoints(tmp_path / "ckpt", save_every)] if save_every else [])
    kw = trainer_kwargs(tmp_path, enable_checkpointing=bool(save_every), limit_val_batches=1)
    trainer = L.Trainer(max_steps=50, callbacks=callbacks, **kw)
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model, cb, trace


@pytest.fixture(scope="module")
def mnist_uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mnist_full")
    return tmp, *_mnist_run(tmp, save_every=20)


def test_mid_epoch_resume_of_the_shipped_classifier_equals_the_uninterrupted_run(tmp_path, mnist_uninterrupted):
    """Checkpoint at step 20: mid-epoch (batch 20 of 25), inside the period, with 20 batches in the running window.

    The uninterrupted run ends the period at step 40; a resume that lost the window would end it at step 30 (the
    five batches 26-30 alone are above 0.5), one that restarted the epoch would train on other batches.
    """
    full_dir, full_model, full_cb, full_trace = mnist_uninterrupted
    assert full_cb.boundary_step == 40 and "running_acc" in full_cb.reason
    saved = torch.load(full_dir / "ckpt" / "step=20.ckpt", weights_only=True)
    assert saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["ready"] == 20  # mid-epoch
    assert len(saved["callbacks"][full_cb.state_key]["window"]) == 20 and saved["global_step"] < 40

    model, cb, trace = _mnist_run(tmp_path, ckpt_path=full_dir / "ckpt" / "step=20.ckpt")
    assert (cb.boundary_step, cb.boundary_epoch, cb.reason) == (40, full_cb.boundary_epoch, full_cb.reason)
    assert cb.in_period is False and model.knobs == full_model.knobs and model.knobs.mixup_alpha == 0.4
    assert sorted(trace.rows) == list(range(21, 51))  # steps 21..50, across the epoch boundary at 25
    for step, row in trace.rows.items():
        expected = full_trace.rows[step]
        assert torch.equal(row["x"], expected["x"]) and torch.equal(row["y"], expected["y"]), step  # same batches
        assert (row["alpha"], row["lambda"], row["loss"]) == (expected["alpha"], expected["lambda"], expected["loss"])
    assert all(trace.rows[s]["alpha"] == 0.0 for s in range(21, 41))
    assert all(trace.rows[s]["alpha"] == 0.4 and trace.rows[s]["lambda"] < 1.0 for s in range(41, 51))
    assert _same_parameters(model, full_model)


def test_mid_epoch_resume_without_the_callback_uses_lightnings_copy_of_the_loader_state(tmp_path):
    """No `estimated_stepping_batches` before the restore: Lightning puts its own saved loader state back too."""

    def run(ckpt_path=None, save=False):
        L.seed_everything(0, verbose=False)
        model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
        dm = MNIST5kDataModule(batch_size=32, train_subset=256, val_size=32)  # 8 batches an epoch
        callbacks = [_checkpoints(tmp_path / "ckpt", 5)] if save else []
        kw = trainer_kwargs(tmp_path, limit_val_batches=0, enable_checkpointing=save)
        trainer = L.Trainer(max_steps=12, callbacks=callbacks, **kw)
        trainer.fit(model, dm, ckpt_path=ckpt_path)
        return model

    full = run(save=True)
    resumed = run(ckpt_path=tmp_path / "ckpt" / "step=5.ckpt")
    assert _same_parameters(resumed, full)


def test_series_classifier_checkpoint_and_mid_epoch_resume(tmp_path):
    """The 1-D path: ImageClassifier('fcn') on UCRDataModule, resumed mid-epoch, equals the uninterrupted run."""

    def run(ckpt_path=None, save=False):
        L.seed_everything(0, verbose=False)
        dm = UCRDataModule("BasicMotions", batch_size=8, val_size=0)  # 40 series: 5 batches an epoch
        model = ImageClassifier("fcn", num_classes=4, in_chans=6, backbone_kwargs={"widths": (8, 16, 8)})
        cb = EnlightenmentCallback(window=4, check_every_n_steps=2, max_duration=None)
        callbacks = [cb] + ([_checkpoints(tmp_path / "ckpt", 7)] if save else [])
        trainer = L.Trainer(max_steps=14, callbacks=callbacks, **trainer_kwargs(tmp_path, enable_checkpointing=save))
        trainer.fit(model, dm, ckpt_path=ckpt_path)
        return model, cb

    full, full_cb = run(save=True)
    path = tmp_path / "ckpt" / "step=7.ckpt"  # batch 2 of epoch 1
    raw = torch.load(path, weights_only=True)
    assert raw["hyper_parameters"]["backbone"] == "fcn" and raw["hyper_parameters"]["backbone_kwargs"] == {
        "widths": (8, 16, 8)
    }
    restored = ImageClassifier.load_from_checkpoint(path)
    assert [m.out_channels for m in restored.model.modules() if isinstance(m, torch.nn.Conv1d)] == [8, 16, 8]

    resumed, cb = run(ckpt_path=path)
    assert (cb.boundary_step, cb.in_period, cb.reason) == (full_cb.boundary_step, full_cb.in_period, full_cb.reason)
    assert _same_parameters(resumed, full)


def _dropout_run(tmp_path: Path, ckpt_path: Path | None = None, save: bool = False) -> ImageClassifier:
    L.seed_everything(0, verbose=False)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, backbone_kwargs={"drop_rate": 0.5})
    dm = MNIST5kDataModule(batch_size=32, train_subset=256, val_size=32)  # 8 batches an epoch
    callbacks = [_checkpoints(tmp_path / "ckpt", 1)] if save else []
    kw = trainer_kwargs(tmp_path, limit_val_batches=1, enable_checkpointing=save)
    L.Trainer(max_steps=12, callbacks=callbacks, **kw).fit(model, dm, ckpt_path=ckpt_path)
    return model


@pytest.fixture(scope="module")
def dropout_uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dropout_full")
    return tmp, _dropout_run(tmp, save=True)


@pytest.mark.parametrize("resume_step", [5, 8], ids=["mid-epoch", "end-of-epoch"])
def test_resume_with_dropout_continues_the_global_rng(tmp_path, dropout_uninterrupted, resume_step):
    """Dropout draws from the global RNG: the checkpoint keeps its state and a resumed fit puts it back."""
    full_dir, full = dropout_uninterrupted
    path = full_dir / "ckpt" / f"step={resume_step}.ckpt"
    assert torch.load(path, weights_only=True)["lit_early_phase/rng_states"]["cpu"].dtype == torch.uint8
    assert _same_parameters(_dropout_run(tmp_path, ckpt_path=path), full)
