"""One "node" of a 2-node DDP run (1 CPU process each, gloo), run twice by tests/integration/test_multinode.py.

The test starts this script once per node with Lightning's environment variables for processes launched by the
user (``LightningEnvironment``): ``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT``, ``NODE_RANK``, ``WORLD_SIZE=2`` and
``LOCAL_RANK=0``; with ``LOCAL_RANK`` set, Lightning starts no process itself and joins the group through
``torch.distributed`` on ``MASTER_ADDR:MASTER_PORT``. The global rank is ``NODE_RANK * devices + LOCAL_RANK``.

Each node trains the shipped ``ImageClassifier`` (timm's ``test_resnet``) with ``EnlightenmentCallback`` on the
metric boundary, on data of its own (no ``DistributedSampler``): node 0 easy images (a bright band at the row of
the label), node 1 blank images with random labels (chance, whatever the model learns). Each rank writes its
per-step ``(global_step, correct, total)`` counts and where its callback ended the period to ``<out>/node<r>.json``.

With ``SHARDS_DIR``, both nodes instead train one epoch from the same LitData shards through
``StreamingImageDataModule`` (LitData splits the samples between the ranks), and each node also writes the shard
sample indices (``"index"``, the image's place in the folder) of every step and what LitData detected
(``_DistributedEnv.detect()``, run in ``setup``, after Lightning joined the process group).

Usage: ``python tests/multinode_fit.py OUT_DIR [SHARDS_DIR]`` (with the environment above).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path
from unittest import mock

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import EnlightenmentCallback, ImageClassifier

#: running-accuracy threshold, window and steps: node 0 alone crosses it early, node 1 alone never
THRESHOLD, WINDOW, STEPS, BATCH = 0.45, 2, 16, 16
#: the streaming case: threshold of the running accuracy on Fashion-MNIST; one epoch of STEPS batches of BATCH per
#: node needs 2 * STEPS * BATCH images (LitData drops the tail below that, so up to 2 * BATCH - 1 more are fine)
STREAM_THRESHOLD = 0.45


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


def streaming_datamodule(shards: str) -> L.LightningDataModule:
    """The shared shards, unaugmented 28 x 28 grayscale, ``BATCH`` images a batch; no ``DistributedSampler``."""
    from lit_early_phase.datamodules import StreamingImageDataModule

    kw = {"image_size": 28, "in_chans": 1, "mean": (0.5,), "std": (0.5,), "interpolation": "bilinear"}
    return StreamingImageDataModule(shards, batch_size=BATCH, augment=False, seed=0, **kw)


def index_tap() -> tuple[type, list[int]]:
    """A ``KeyedImageStream`` that also notes the ``"index"`` of every sample it reads, and the list it notes into.

    The tap sits between ``KeyedImageStream`` and LitData's ``StreamingDataset`` in the MRO, so the sample is read
    and decoded exactly as the DataModule reads it. With ``num_workers=0`` the samples are read in the main process,
    batch after batch, in the order the loader yields them.
    """
    from litdata import StreamingDataset

    from lit_early_phase.datamodules.vision.litdata_stream import KeyedImageStream

    seen: list[int] = []

    class Tap(StreamingDataset):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            seen.append(int(item["index"]))
            return item

    class IndexedImageStream(KeyedImageStream, Tap):
        pass

    return IndexedImageStream, seen


class CountsReport(Callback):
    """Each rank writes the (global_step, correct, total) of every batch and where its callback ended the period."""

    def __init__(self, out_dir: Path, indices: list[int] | None = None) -> None:
        self.out_dir = out_dir
        self.rows: list[tuple[int, int, int]] = []
        self.labels: list[list[int]] = []
        self.indices = indices

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.rows.append((trainer.global_step, int(rec.correct), int(rec.total)))
        self.labels.append(batch[1].tolist())

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
            "labels": self.labels,
        }
        if self.indices is not None:  # the streaming case
            train_set = trainer.datamodule.train_set
            env = train_set.distributed_env
            sizes = [len(labels) for labels in self.labels]
            # the loader may have read one batch ahead (Lightning prefetches): keep the batches that were trained on
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            report["indices"] = [self.indices[a : a + n] for a, n in zip(starts, sizes, strict=True)]
            report["litdata_env"] = [env.world_size, env.global_rank, env.num_nodes]
            report["litdata_len"] = len(train_set)
            report["loader_len"] = len(trainer.train_dataloader)
        (self.out_dir / f"node{trainer.node_rank}.json").write_text(json.dumps(report))


def main(out_dir: Path, shards: str | None = None) -> None:
    node_rank = int(os.environ["NODE_RANK"])
    L.seed_everything(0, verbose=False)  # the same initial weights on both nodes (DDP broadcasts rank 0's anyway)
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, optimizer=partial(torch.optim.AdamW, lr=0.01))
    threshold = THRESHOLD if shards is None else STREAM_THRESHOLD
    cb = EnlightenmentCallback(threshold=threshold, window=WINDOW, check_every_n_steps=1, max_duration=None)
    stream, indices = (None, None) if shards is None else index_tap()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        # a peer that dies makes the other fail within a minute instead of waiting forever in a collective
        strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)),
        use_distributed_sampler=False,  # each node keeps its own data (LitData splits the shards itself)
        max_steps=STEPS if shards is None else -1,
        max_epochs=1,  # the streaming case: one epoch, all of this rank's share
        callbacks=[cb, CountsReport(out_dir, indices)],
        default_root_dir=out_dir,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    if shards is None:
        trainer.fit(model, node_data(node_rank))
        return
    # the DataModule builds its dataset from litdata_stream.KeyedImageStream when it opens the shards
    with mock.patch("lit_early_phase.datamodules.vision.litdata_stream.KeyedImageStream", stream):
        trainer.fit(model, datamodule=streaming_datamodule(shards))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
