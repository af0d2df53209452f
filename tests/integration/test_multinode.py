"""2 nodes x 1 process on 127.0.0.1 (gloo): the callback ends the period at one step on both nodes, from both.

Each node is ``tests/multinode_fit.py`` started as its own subprocess with Lightning's environment variables for
processes launched by the user (``LightningEnvironment``: ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``), as a cluster launcher would start them on two machines; ``ddp_spawn`` (see
``test_distributed_precision.py``) never exercises ``num_nodes > 1``. The nodes see different data (node 0 learns,
node 1 stays at chance), so each node alone would end the period at another step than the reduced value does.

The second case trains both nodes from one set of LitData shards (written here from a folder of Fashion-MNIST PNGs)
through ``StreamingImageDataModule``: the nodes read disjoint samples, each LitData's per-rank share, and end the
period at the step computed from both nodes' counts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import first_crossing, make_image_folder
from multinode_fit import BATCH, STEPS, STREAM_THRESHOLD, THRESHOLD, WINDOW

import lit_early_phase

SCRIPT = Path(__file__).resolve().parents[1] / "multinode_fit.py"
#: what a cluster launcher (torchrun, SLURM) would set and would confuse Lightning's environment detection, and what
#: LitData's ``_DistributedEnv.detect()`` reads before torch.distributed's rank (``GLOBAL_RANK``, ``NNODES``)
FOREIGN_ENV = (
    "RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS",
    "SLURM_JOB_NAME",
    "GLOBAL_RANK",
    "NNODES",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(out: Path, *args: str, timeout: float = 120.0) -> list[dict]:
    """Start both nodes (``multinode_fit.py OUT *args``), wait for both (killing both past ``timeout``) and return
    what each wrote."""
    src = Path(lit_early_phase.__file__).resolve().parents[1]  # the package under test, not another install
    base = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV and not k.startswith("SLURM_")}
    base.update(
        PYTHONPATH=os.pathsep.join([str(SCRIPT.parent), str(src), os.environ.get("PYTHONPATH", "")]),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE="2",
        LOCAL_RANK="0",
        OMP_NUM_THREADS="1",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(out), *args],
            env={**base, "NODE_RANK": str(node)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    deadline = time.monotonic() + timeout  # one deadline for both: a node whose peer died fails within a minute
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=max(deadline - time.monotonic(), 1))[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the 2-node run did not finish within {timeout} s: {[p.communicate()[0][-2000:] for p in procs]}")
    for node, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"node {node} failed (exit {p.returncode}):\n{log[-4000:]}"
    return [json.loads((out / f"node{node}.json").read_text()) for node in (0, 1)]


def needs_gloo() -> None:
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")


def check_same_pooled_boundary(reports: list[dict], threshold: float) -> int:
    """Both nodes joined as 2 ranks over gloo, trained STEPS steps and ended the period at one step, computed from
    the per-step counts of both nodes and decided by the pooled window's accuracy; returns that step."""
    # two nodes of one process each, joined by Lightning's default environment over gloo
    assert [(r["node_rank"], r["global_rank"], r["world_size"]) for r in reports] == [(0, 0, 2), (1, 1, 2)]
    assert {(r["environment"], r["backend"]) for r in reports} == {("LightningEnvironment", "gloo")}
    rows = [r["rows"] for r in reports]
    assert [s for s, _, _ in rows[0]] == [s for s, _, _ in rows[1]] == list(range(1, STEPS + 1))
    assert [c for _, c, _ in rows[0]] != [c for _, c, _ in rows[1]]  # the nodes really saw different data
    # both nodes end the period at one step: the one computed from the counts of both nodes
    pooled = first_crossing(rows, window=WINDOW, threshold=threshold)
    assert pooled is not None, f"the reduced running accuracy never reached {threshold}: {rows}"
    assert [r["boundary_step"] for r in reports] == [pooled, pooled]
    assert reports[0]["reason"] == reports[1]["reason"] and f">= threshold {threshold}" in reports[0]["reason"]
    assert reports[0]["last_value"] == reports[1]["last_value"]
    # the value that decided is the pooled accuracy of the window at the boundary
    i = pooled - 1  # rows hold steps 1, 2, ...
    window = [row for r in rows for row in r[i - WINDOW + 1 : i + 1]]
    assert reports[0]["last_value"] == pytest.approx(sum(c for _, c, _ in window) / sum(t for _, _, t in window))
    return pooled


@pytest.mark.timeout(180)
def test_two_nodes_end_the_period_at_the_same_step_from_both_nodes(tmp_path):
    needs_gloo()
    reports = launch_nodes(tmp_path)
    pooled = check_same_pooled_boundary(reports, THRESHOLD)
    rows = [r["rows"] for r in reports]
    # ... which is neither node's own step: node 0 alone would have ended clearly earlier, node 1 alone never
    alone = [first_crossing([r], window=WINDOW, threshold=THRESHOLD) for r in rows]
    assert alone[0] is not None and alone[0] <= pooled - 2, (alone, pooled)
    assert alone[1] is None, (alone, pooled)


#: images in the folder: one epoch of STEPS batches of BATCH per node, and a tail of 6 that LitData drops
STREAM_IMAGES = 2 * STEPS * BATCH + 6


@pytest.mark.timeout(180)
def test_two_nodes_stream_disjoint_shards_and_end_the_period_at_the_same_step(tmp_path):
    pytest.importorskip("litdata")
    pytest.importorskip("timm")
    needs_gloo()
    from lit_early_phase.datamodules import find_fashion_mnist, list_image_folder, write_image_shards

    if find_fashion_mnist() is None:
        pytest.skip("needs Fashion-MNIST (Debian package dataset-fashion-mnist)")
    folder = make_image_folder(tmp_path / "folder", STREAM_IMAGES)
    listing = list_image_folder(folder)  # a shard sample's "index" is its place in this listing
    labels = [label for _, label in listing.train]
    classes = write_image_shards(folder, str(tmp_path / "shards"), chunk_bytes="16KB")
    reports = launch_nodes(tmp_path, str(tmp_path / "shards"))

    # LitData sees the ranks Lightning made: torch.distributed's rank and WORLD_SIZE, read in the DataModule's setup
    # (its num_nodes, the third value, divides by the GPU count and is 1 on CPU nodes; it changes only the node-local
    # reshuffle of later epochs and the cache sizing, not which rank reads what)
    assert [r["litdata_env"][:2] for r in reports] == [[2, 0], [2, 1]]
    # (a) disjoint samples, each node exactly LitData's per-rank share of one epoch: floor(N / 2) rounded down to
    # whole batches (LitData drops the tail with several ranks)
    share = STREAM_IMAGES // 2 // BATCH * BATCH
    assert [(r["litdata_len"], r["loader_len"]) for r in reports] == [(share, STEPS)] * 2
    seen = [[i for step in r["indices"] for i in step] for r in reports]
    assert [len(s) for s in seen] == [len(set(s)) for s in seen] == [share, share]
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) <= set(range(STREAM_IMAGES))
    # the indices noted are those of the batches trained on: their folder labels are the labels of each step's batch
    assert classes == list(listing.classes)
    assert [[[labels[i] for i in step] for step in r["indices"]] for r in reports] == [r["labels"] for r in reports]
    # (b) both nodes end the period at one step, the one from both nodes' counts. Not asserted: that it differs
    # from either node's own step. Both nodes draw from one shuffled set of shards, so their accuracies differ by
    # sampling noise only (measured with torch 2.14, litdata 0.2.76: pooled step 11, node 0 alone 6, node 1 alone
    # 10); where a node alone would cross depends on the seed and the numerics, and a difference forced by skewing
    # the shards per node would no longer be this case (the first test covers skewed nodes).
    check_same_pooled_boundary(reports, STREAM_THRESHOLD)
