"""Small modules and trainer settings shared by the tests (Lightning's BoringModel idea)."""

from __future__ import annotations

import atexit
import csv
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lit_early_phase import _compat
from lit_early_phase.modules import EnlightenmentMixin

# A ddp_spawn child imports this module (to unpickle the tests' modules and callbacks); a Gloo group still alive at
# its interpreter exit can abort it with SIGABRT after fit. EnlightenmentCallback registers the same handler
# (_compat.destroy_gloo_group_at_exit); this covers the spawned tests without the callback.
atexit.register(_compat.destroy_process_group)


def trainer_kwargs(tmp_path: Path, **overrides) -> dict:
    kw = {
        "default_root_dir": tmp_path,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    kw.update(overrides)
    return kw


def linear_schedule(batch: int, rank: int = 0) -> float:
    """Scripted training accuracy of the batch with global index ``batch``: 0.0, 0.01, 0.02, ..."""
    return min(batch / 100.0, 1.0)


class ScriptedModule(EnlightenmentMixin, L.LightningModule):
    """A linear classifier on random data whose recorded accuracy follows a script.

    The script is indexed by ``global_step`` (``schedule_by="step"``) or by the running micro-batch count of the
    fit (``"micro_batch"``: 0, 1, 2, ... for every ``training_step`` call, what gradient accumulation tests need).
    It really mixes (when ``mixup_alpha > 0``) and really removes (when the knobs say so), and it keeps a trace of
    what each training step applied, so tests can assert on the knobs, λ and removed samples step by step.
    """

    def __init__(
        self,
        schedule: Callable[[int, int], float] = linear_schedule,
        num_classes: int = 4,
        mixup_alpha: float = 0.0,
        val_schedule: Callable[[int], float] | None = None,
        mix_seed: int | None = 0,
        schedule_by: str = "step",
    ) -> None:
        super().__init__()
        assert schedule_by in ("step", "micro_batch")
        self.schedule_by = schedule_by
        self.schedule = schedule
        self.val_schedule = val_schedule
        self.net = torch.nn.Linear(8, num_classes)
        self.configure_enlightenment(num_classes=num_classes, mixup_alpha=mixup_alpha, mix_seed=mix_seed)
        self.trace: list[dict] = []
        self.micro_batches = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        step = self.classification_step(x, y, self.net)
        index = self.trainer.global_step if self.schedule_by == "step" else self.micro_batches
        acc = self.schedule(index, self.global_rank)
        assert 0.0 <= acc <= 1.0, f"a scripted accuracy must be in [0, 1], got {acc} (batch {index})"
        self.record_accuracy(torch.tensor(round(acc * 100)), torch.tensor(100))
        self.trace.append(
            {
                "step": self.trainer.global_step,
                "micro_batch": self.micro_batches,
                "alpha": self.knobs.mixup_alpha,
                "drop_fraction": self.knobs.drop_fraction,
                "lam": step.mix.params.lam.clone(),
                "kept": step.drop.kept.clone(),
                "losses": step.losses.detach().clone(),
            }
        )
        self.micro_batches += 1
        return step.loss

    def validation_step(self, batch, batch_idx):
        if self.val_schedule is not None:
            self.log("val/acc", self.val_schedule(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def random_loader(n: int = 64, batch_size: int = 8, num_classes: int = 4, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class InterleavedSampler(DistributedSampler):
    """Rank r of 2 reads the samples r, r + 2, ... in order. Lightning keeps a DistributedSampler it is given (it
    would shuffle one of its own); the rank is read in each process, where the process group exists."""

    def __init__(self, dataset):
        super().__init__(dataset, num_replicas=2, rank=0, shuffle=False)

    def __iter__(self):
        self.rank = torch.distributed.get_rank()
        return super().__iter__()


def first_crossing(per_rank_rows, *, window, threshold, every=1):
    """The first check step where the window's correct/total, summed over the given ranks, reaches threshold.

    ``per_rank_rows``: for each rank, its ``(global_step, correct, total)`` per batch, as the ranks recorded them.
    One rank's rows give the step where that rank alone would have ended the period.
    """
    n = len(per_rank_rows[0])
    for i in range(n):
        step = per_rank_rows[0][i][0]
        if step % every:
            continue
        lo = max(0, i + 1 - window)
        correct = sum(r[j][1] for r in per_rank_rows for j in range(lo, i + 1))
        total = sum(r[j][2] for r in per_rank_rows for j in range(lo, i + 1))
        if correct / total >= threshold:
            return step
    return None


def make_image_folder(root: Path, n: int) -> Path:
    """The first ``n`` Fashion-MNIST training images as PNGs in ``root/class_<label>/<i>.png`` (an image folder).

    Needs the Debian package dataset-fashion-mnist (``find_fashion_mnist``); callers skip without it.
    """
    from PIL import Image

    from lit_early_phase.datamodules import find_fashion_mnist, read_idx

    files = find_fashion_mnist()
    assert files is not None, "needs Fashion-MNIST (Debian package dataset-fashion-mnist): skip before calling"
    images, labels = read_idx(files["train_images"])[:n], read_idx(files["train_labels"])[:n]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def read_metrics(log_dir: Path) -> list[dict[str, str]]:
    files = sorted(Path(log_dir).rglob("metrics.csv"))
    assert files, f"no metrics.csv under {log_dir}"
    with open(files[-1]) as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """``{step: value}`` for the rows where ``key`` was logged."""
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key) not in (None, "")}
