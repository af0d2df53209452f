"""DDP (gloo, 2 CPU processes) gives one decision at one step; bf16-mixed runs the same code path."""

import json

import lightning as L
import torch
from helpers import ScriptedModule, random_loader, trainer_kwargs
from lightning.pytorch.callbacks import Callback

from lit_early_phase import EnlightenmentCallback, HighLossRemoval, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule


def rank_skewed(i: int, rank: int) -> float:
    """Rank 0 sees i/100 + 0.2, rank 1 sees i/100 - 0.2: alone they would end at steps 31 and 71."""
    return i / 100 + (0.2 if rank == 0 else -0.2)


class Report(Callback):
    def __init__(self, out_dir):
        self.out_dir = str(out_dir)

    def on_fit_end(self, trainer, pl_module):
        cb = next(c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback))
        removing = [t["step"] for t in pl_module.trace if t["drop_fraction"] > 0] if hasattr(pl_module, "trace") else []
        report = {
            "boundary_step": cb.boundary_step,
            "in_period": cb.in_period,
            "last_removing_step": max(removing, default=None),
            "knobs_drop": pl_module.knobs.drop_fraction,
            "world_size": trainer.world_size,
        }
        with open(f"{self.out_dir}/rank{trainer.global_rank}.json", "w") as f:
            json.dump(report, f)


class LamReport(Callback):
    def __init__(self, out_dir):
        self.out_dir = out_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with open(self.out_dir / f"lam{trainer.global_rank}_{trainer.global_step}.txt", "w") as f:
            f.write(str(float(pl_module.enlightenment_record.lambda_mean)))


def test_ddp_spawn_decides_once_for_all_ranks_from_reduced_counts(tmp_path):
    cb = EnlightenmentCallback(
        strategy=HighLossRemoval(fraction=0.25), window=1, check_every_n_steps=1, max_duration=None
    )
    trainer = L.Trainer(
        callbacks=[cb, Report(tmp_path)],
        max_epochs=1,
        **trainer_kwargs(tmp_path, strategy="ddp_spawn", devices=2),
    )
    trainer.fit(ScriptedModule(schedule=rank_skewed), random_loader(n=1600, batch_size=8))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["world_size"] == 2
    # the mean of the two ranks' counts is i/100, as in one process: boundary at step 51 on both ranks
    assert [r["boundary_step"] for r in reports] == [51, 51]
    assert [r["last_removing_step"] for r in reports] == [50, 50]
    assert all(r["in_period"] is False and r["knobs_drop"] == 0.0 for r in reports)


def test_image_classifier_fits_under_ddp_spawn(tmp_path):
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.2)
    cb = EnlightenmentCallback(duration="3st")
    trainer = L.Trainer(
        callbacks=[cb, Report(tmp_path)],
        max_steps=6,
        **trainer_kwargs(tmp_path, strategy="ddp_spawn", devices=2),
    )
    trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["boundary_step"] for r in reports] == [3, 3]


def test_bf16_mixed_fit_with_mixing_and_removal(tmp_path):
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    seen = []

    class Watch(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(
                (
                    float(outputs["loss"]),
                    pl_module.enlightenment_record.alpha,
                    float(pl_module.enlightenment_record.mixed_fraction),
                )
            )

    cb = EnlightenmentCallback(strategy="mixup_pause", duration="3st")
    trainer = L.Trainer(callbacks=[cb, Watch()], max_steps=6, precision="bf16-mixed", **trainer_kwargs(tmp_path))
    trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32))
    assert trainer.precision == "bf16-mixed"
    assert cb.boundary_step == 3
    assert all(torch.isfinite(torch.tensor(loss)) for loss, _, _ in seen)
    assert [(a, m) for _, a, m in seen] == [(0.0, 0.0)] * 3 + [(0.4, 1.0)] * 3


def test_lambda_differs_between_ranks(tmp_path):
    """Each rank draws its own λ (seeded by rank), so the two halves of the global batch are mixed differently."""
    model = ScriptedModule(mixup_alpha=1.0)
    trainer = L.Trainer(
        callbacks=[LamReport(tmp_path)],
        max_steps=2,
        **trainer_kwargs(tmp_path, strategy="ddp_spawn", devices=2),
    )
    trainer.fit(model, random_loader(n=64))
    for step in (1, 2):
        lams = [float((tmp_path / f"lam{r}_{step}.txt").read_text()) for r in (0, 1)]
        assert lams[0] != lams[1]
