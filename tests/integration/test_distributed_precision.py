"""DDP (gloo, 2 CPU processes) gives one decision at one step; bf16-mixed runs the same code path."""

import json
from functools import partial

import lightning as L
import pytest
import torch
from helpers import InterleavedSampler, ScriptedModule, first_crossing, random_loader, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import EnlightenmentCallback, HighLossRemoval, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule

THRESHOLD = 0.45


def rank_skewed(i: int, rank: int) -> float:
    """Rank 0 sees min(i/50, 1), rank 1 always 0: the mean of the two is i/100 up to i = 50. Alone, rank 0 would
    end the period at step 26 (threshold 0.5) and rank 1 never; reduced over both ranks it ends at step 51."""
    return min(i / 50, 1.0) if rank == 0 else 0.0


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


class CountsReport(Callback):
    """Each rank writes the (global_step, correct, total) of every batch and where its callback ended the period."""

    def __init__(self, out_dir):
        self.out_dir = str(out_dir)
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.rows.append((trainer.global_step, int(rec.correct), int(rec.total)))

    def on_fit_end(self, trainer, pl_module):
        cb = next(c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback))
        report = {"rows": self.rows, "boundary_step": cb.boundary_step, "reason": cb.reason}
        with open(f"{self.out_dir}/counts{trainer.global_rank}.json", "w") as f:
            json.dump(report, f)


def rank_split_digits(n=768, seed=0):
    """Even samples are easy (a bright band at the row of the class), odd ones blank with random labels: rank 0
    (even indices) learns fast while rank 1 stays near chance."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    for i in range(0, n, 2):
        x[i, 0, 2 * y[i] + 4 : 2 * y[i] + 6] += 3.0
    x[1::2] = 0.0
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=16, sampler=InterleavedSampler(data))


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
    trainer.fit(ScriptedModule(schedule=rank_skewed), random_loader(n=960, batch_size=8))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["world_size"] == 2
    # the mean of the two ranks' counts is i/100, as in one process: boundary at step 51 on both ranks
    assert [r["boundary_step"] for r in reports] == [51, 51]
    assert [r["last_removing_step"] for r in reports] == [50, 50]
    assert all(r["in_period"] is False and r["knobs_drop"] == 0.0 for r in reports)


def test_image_classifier_metric_boundary_under_ddp_spawn_comes_from_reduced_counts(tmp_path):
    """The shipped classifier on 2 processes whose local accuracies differ (rank 0 learns, rank 1 cannot): both
    ranks end the period at the step computed from the counts of both, which is neither rank's own step."""
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, optimizer=partial(torch.optim.AdamW, lr=0.01))
    cb = EnlightenmentCallback(
        strategy=HighLossRemoval(fraction=0.125),
        threshold=THRESHOLD,
        window=2,
        check_every_n_steps=1,
        max_duration=None,
    )
    trainer = L.Trainer(
        callbacks=[cb, CountsReport(tmp_path)],
        max_steps=16,
        **trainer_kwargs(tmp_path, strategy="ddp_spawn", devices=2),
    )
    trainer.fit(model, rank_split_digits())
    reports = [json.loads((tmp_path / f"counts{r}.json").read_text()) for r in (0, 1)]
    rows = [rep["rows"] for rep in reports]
    assert [r[0] for r in rows[0]] == [r[0] for r in rows[1]] == list(range(1, 17))
    expected = first_crossing(rows, window=2, threshold=THRESHOLD)
    alone = [first_crossing([r], window=2, threshold=THRESHOLD) for r in rows]
    assert expected is not None, f"the reduced running accuracy never reached {THRESHOLD}: {rows}"
    assert [rep["boundary_step"] for rep in reports] == [expected, expected]
    assert alone[0] is not None and alone[0] <= expected - 3  # rank 0 alone would have ended clearly earlier ...
    assert alone[1] is None  # ... and rank 1 never: the decision used both
    assert all(f">= threshold {THRESHOLD}" in rep["reason"] for rep in reports)


def test_bf16_mixed_fit_with_mixing(tmp_path):
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


class KeepsSteps(ImageClassifier):
    """The shipped classifier, keeping what each step's classification_step computed and the logits' dtype."""

    def __init__(self):
        super().__init__("test_resnet", num_classes=10, in_chans=1)
        self.steps = []

    def classification_step(self, inputs, labels, forward):
        out = super().classification_step(inputs, labels, forward)
        self.steps.append({"global_step": self.trainer.global_step, "out": out, "logits_dtype": out.logits.dtype})
        return out


def test_bf16_mixed_fit_with_high_loss_removal(tmp_path):
    """Under bf16-mixed the 4 highest of 16 float32 per-sample losses leave the loss in the period, none after."""
    model = KeepsSteps()
    cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.25), duration="3st")
    trainer = L.Trainer(callbacks=[cb], max_steps=6, precision="bf16-mixed", **trainer_kwargs(tmp_path))
    trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32))
    assert cb.boundary_step == 3 and [s["global_step"] for s in model.steps] == list(range(6))
    assert all(s["logits_dtype"] == torch.bfloat16 for s in model.steps)  # the forward really ran in bf16
    for s in model.steps:
        losses, kept, drop = s["out"].losses.detach(), s["out"].drop.kept, s["out"].drop
        assert losses.dtype == torch.float32 and bool(torch.isfinite(losses).all())
        if s["global_step"] < 3:
            assert int(drop.num_removed) == 4 and float(drop.removed_fraction) == 0.25
            assert losses[~kept].min() >= losses[kept].max()  # exactly the highest losses left (ties allowed)
            assert s["out"].loss.item() == pytest.approx(losses[kept].mean().item(), rel=1e-5)
        else:
            assert bool(kept.all()) and int(drop.num_removed) == 0
            assert s["out"].loss.item() == pytest.approx(losses.mean().item(), rel=1e-5)


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
