"""The paper's GPU settings as recipes: each trains a few steps on CPU on a small real image folder, with the
knobs, schedule and strategy the recipe names; their GPU settings and DeiT's warm-up + cosine are checked as
values."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
import yaml
from recipe_smoke import build_image_folder, foolbox_images, smoke_args

from lit_early_phase import EnlightenmentCallback
from lit_early_phase.cli import build_cli
from lit_early_phase.recipes import recipe_path
from lit_early_phase.strategies import AlphaBoost, MixupPause

PAPER_RECIPES = {
    # name: (strategy class, (Mixup α, CutMix α) in force inside the period, still in the period after 2 steps of a
    # 2-step run: a guard given as a share of the run ends it at once, a fixed 10 epochs does not)
    "cifar10_resnet18_mixup_pause": (MixupPause, (0.0, 0.0), False),
    "tinyimagenet_vit_s_mixup_pause": (MixupPause, (0.0, 0.0), True),
    "imagenet_vit_t_alpha_boost": (AlphaBoost, (2.0, 2.0), False),
}
NEEDS_FOOLBOX = pytest.mark.skipif(
    not foolbox_images(), reason="the smoke image folder: `pip install --no-deps foolbox==3.3.4`"
)


def _recipe(name: str) -> dict:
    return yaml.safe_load(recipe_path(name).read_text())


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_holds_the_gpu_settings_and_a_data_dir_placeholder(name):
    recipe = _recipe(name)
    trainer, model, data = recipe["trainer"], recipe["model"]["init_args"], recipe["data"]
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"]) == ("gpu", "auto", "ddp")
    assert trainer["precision"] == "bf16-mixed"
    assert data["class_path"] == "lit_early_phase.datamodules.ImageFolderDataModule"
    assert data["init_args"]["data_dir"].startswith("/path/to/")
    assert data["init_args"]["auto_augment"].startswith("rand-m9")  # RandAugment
    assert model["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert model["label_smoothing"] == 0.1 and model["mixup_alpha"] > 0 and model["cutmix_alpha"] > 0
    assert model["lr_interval"] == "epoch"
    assert model["lr_scheduler"]["init_args"]["total_steps"] == trainer["max_epochs"]
    assert recipe_path(name).read_text().count("not measured") >= 1  # no unsourced memory / time claims


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_schedule_is_deit_warm_up_then_cosine(name):
    """1e-6 at epoch 0, linear to max_lr at epoch 5, cosine to 1e-5 at the last epoch (the scheduler steps per
    epoch): a wrong `pct_start` or divisor fails here."""
    recipe = _recipe(name)
    spec = recipe["model"]["init_args"]["lr_scheduler"]
    assert spec["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    max_lr, epochs = spec["init_args"]["max_lr"], recipe["trainer"]["max_epochs"]
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=max_lr)
    scheduler = functools.partial(torch.optim.lr_scheduler.OneCycleLR, **spec["init_args"])(optimizer)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert math.isclose(lrs[0], 1e-6, rel_tol=1e-6)
    assert lrs[1] < lrs[2] < lrs[3] < lrs[4] < lrs[5]  # warm-up rises every epoch ...
    assert math.isclose(lrs[5], max_lr, rel_tol=1e-6) and max(lrs) == lrs[5]  # ... to its peak at epoch 5
    assert all(a >= b for a, b in itertools.pairwise(lrs[5:]))  # then only decreases
    assert math.isclose(lrs[-1], 1e-5, rel_tol=1e-3)


@NEEDS_FOOLBOX
@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_trains_on_cpu_on_a_real_image_folder(name, tmp_path):
    folder = build_image_folder(tmp_path / "images", classes=4)
    cli = build_cli(
        [
            "fit",
            "--config",
            name,
            *smoke_args(name, folder),
            "--trainer.max_steps=2",
            "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.logger=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    strategy, in_period_knobs, in_period = PAPER_RECIPES[name]
    model, trainer = cli.model, cli.trainer
    assert trainer.global_step == 2
    assert model.num_classes == 4  # linked from the folder's class subfolders
    (callback,) = [c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback)]
    assert isinstance(callback.strategy, strategy) and callback.in_period is in_period
    base = (0.8, 1.0)  # DeiT's Mixup / CutMix α: the recipes' values outside the period
    assert (model.knobs_base.mixup_alpha, model.knobs_base.cutmix_alpha) == base
    # the strategy's knobs in force inside the period, the base after it
    assert (model.knobs.mixup_alpha, model.knobs.cutmix_alpha) == (in_period_knobs if in_period else base)
    if not in_period:
        assert callback.boundary_step is not None and callback.boundary_step <= 2
    assert model.hparams.label_smoothing == 0.1
    (config,) = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.OneCycleLR) and config.interval == "epoch"
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert math.isclose(trainer.optimizers[0].param_groups[0]["lr"], 1e-6, rel_tol=1e-6)  # warm-up's first lr
    assert all(torch.isfinite(p).all() for p in model.parameters())
