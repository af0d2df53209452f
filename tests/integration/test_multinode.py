"""2 nodes x 1 process on 127.0.0.1 (gloo): the callback ends the period at one step on both nodes, from both.

Each node is ``tests/multinode_fit.py`` started as its own subprocess with Lightning's environment variables for
processes launched by the user (``LightningEnvironment``: ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``), as a cluster launcher would start them on two machines; ``ddp_spawn`` (see
``test_distributed_precision.py``) never exercises ``num_nodes > 1``. The nodes see different data (node 0 learns,
node 1 stays at chance), so each node alone would end the period at another step than the reduced value does.
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
from helpers import first_crossing
from multinode_fit import STEPS, THRESHOLD, WINDOW

import lit_early_phase

SCRIPT = Path(__file__).resolve().parents[1] / "multinode_fit.py"
#: what a cluster launcher (torchrun, SLURM) would set and would confuse Lightning's environment detection
FOREIGN_ENV = ("RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(out: Path, *, timeout: float = 120.0) -> list[dict]:
    """Start both nodes, wait for both (killing both past ``timeout``) and return what each wrote."""
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
            [sys.executable, str(SCRIPT), str(out)],
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


@pytest.mark.timeout(180)
def test_two_nodes_end_the_period_at_the_same_step_from_both_nodes(tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    reports = launch_nodes(tmp_path)
    # two nodes of one process each, joined by Lightning's default environment over gloo
    assert [(r["node_rank"], r["global_rank"], r["world_size"]) for r in reports] == [(0, 0, 2), (1, 1, 2)]
    assert {(r["environment"], r["backend"]) for r in reports} == {("LightningEnvironment", "gloo")}
    rows = [r["rows"] for r in reports]
    assert [s for s, _, _ in rows[0]] == [s for s, _, _ in rows[1]] == list(range(1, STEPS + 1))
    assert [c for _, c, _ in rows[0]] != [c for _, c, _ in rows[1]]  # the nodes really saw different data
    # both nodes end the period at one step: the one computed from the counts of both nodes
    pooled = first_crossing(rows, window=WINDOW, threshold=THRESHOLD)
    assert pooled is not None, f"the reduced running accuracy never reached {THRESHOLD}: {rows}"
    assert [r["boundary_step"] for r in reports] == [pooled, pooled]
    assert reports[0]["reason"] == reports[1]["reason"] and f">= threshold {THRESHOLD}" in reports[0]["reason"]
    assert reports[0]["last_value"] == reports[1]["last_value"]
    # ... which is neither node's own step: node 0 alone would have ended clearly earlier, node 1 alone never
    alone = [first_crossing([r], window=WINDOW, threshold=THRESHOLD) for r in rows]
    assert alone[0] is not None and alone[0] <= pooled - 2, (alone, pooled)
    assert alone[1] is None, (alone, pooled)
    # the value that decided is the pooled accuracy of the window at the boundary
    i = pooled - 1  # rows hold steps 1, 2, ...
    window = [row for r in rows for row in r[i - WINDOW + 1 : i + 1]]
    assert reports[0]["last_value"] == pytest.approx(sum(c for _, c, _ in window) / sum(t for _, _, t in window))
