"""One "node" of a 2-node DDP run (1 CPU process each, gloo), run twice by tests/integration/test_multinode.py.

The test starts this script once per node with Lightning's environment variables for processes launched by the
user (``LightningEnvironment``): ``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT``, ``NODE_RANK``, ``WORLD_SIZE=2`` and
``LOCAL_RANK=0``; with ``LOCAL_RANK`` set, Lightning starts no process itself and joins the group through
``torch.distributed`` on ``MASTER_ADDR:MASTER_PORT``. The global rank is ``NODE_RANK * devices + LOCAL_RANK``.

Each node trains the shipped ``ImageClassifier`` (timm's ``test_resnet``) with ``EnlightenmentCallback`` on the
metric boundary, on data of its own (no ``DistributedSampler``): node 0 easy images (a bright band at the row of
the label), node 1 blank images with random labels (chance, whatever the model learns). Each rank writes its
per-step ``(global_step, correct, total)`` counts and where its callback ended the period to ``<out>/node<r>.json``.

Usage: ``python tests/multinode_fit.py OUT_DIR`` (with the environment above).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import EnlightenmentCallback, ImageClassifier

#: running-accuracy threshold, window and steps: node 0 alone crosses it early, node 1 alone never
THRESHOLD, WINDOW, STEPS, BATCH = 0.45, 2, 16, 16


def node_data(node_rank: int, *, n: int = STEPS * BATCH, seed: int = 0) -> DataLoader:
    """Node 0: a bright band at row ``2 y + 4`` of a noisy 28 x 28 image (learnt in a few steps); node 1: blank
    images with random labels (at chance for any model). The same number of batches on both nodes."""
    g = torch.Generator().manual_seed(seed + node_rank)
    y = torch.randint(0, 10, (n,), generator=g)
    if node_rank == 0:
        x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
        for i in range(n):
            x[i, 0, 2 * y[i] + 4 : 2 * y[i] + 6] += 3.0
    else:
        x = torch.zeros(n, 1, 28, 28)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)


class CountsReport(Callback):
    """Each rank writes the (global_step, correct, total) of every batch and where its callback ended the period."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.rows: list[tuple[int, int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.rows.append((trainer.global_step, int(rec.correct), int(rec.total)))

    def on_fit_end(self, trainer, pl_module):
        cb = next(c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback))
        report = {
            "rows": self.rows,
            "boundary_step": cb.boundary_step,
            "reason": cb.reason,
            "last_value": cb.last_value,
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "environment": type(trainer.strategy.cluster_environment).__name__,
            "backend": trainer.strategy._process_group_backend,
        }
        (self.out_dir / f"node{trainer.node_rank}.json").write_text(json.dumps(report))


def main(out_dir: Path) -> None:
    node_rank = int(os.environ["NODE_RANK"])
    L.seed_everything(0, verbose=False)  # the same initial weights on both nodes (DDP broadcasts rank 0's anyway)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, optimizer=partial(torch.optim.AdamW, lr=0.01))
    cb = EnlightenmentCallback(threshold=THRESHOLD, window=WINDOW, check_every_n_steps=1, max_duration=None)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        # a peer that dies makes the other fail within a minute instead of waiting forever in a collective
        strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)),
        use_distributed_sampler=False,  # each node keeps its own (skewed) data
        max_steps=STEPS,
        callbacks=[cb, CountsReport(out_dir)],
        default_root_dir=out_dir,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, node_data(node_rank))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
