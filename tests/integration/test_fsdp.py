"""CausalLMFineTune (LoRA) under Lightning's FSDPStrategy on 2 CPU processes with High-Loss Removal.

The run itself is ``tests/fsdp_finetune.py`` (Lightning's launcher starts rank 1 by running the script again,
which a test function cannot be); this file runs it once and checks what each rank wrote. On Lightning 2.6.6 the
plain ``FSDPStrategy`` cannot run on a CPU (see ``CPUFSDPStrategy`` in the script for the three gaps and the
upstream issues); the script's subclass fills them and is the same strategy otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fsdp_finetune import THRESHOLD, WINDOW

SCRIPT = Path(__file__).resolve().parents[1] / "fsdp_finetune.py"


@pytest.fixture(scope="module")
def fsdp_run(tokenizer, tmp_path_factory):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    out = tmp_path_factory.mktemp("fsdp")
    tokenizer.save_pretrained(out / "tokenizer")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parent), os.environ.get("PYTHONPATH", "")])}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), str(out / "tokenizer")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)], proc.stderr


def _local_boundary(steps: list[dict]) -> int | None:
    """Where one rank alone would have ended the period: its own accuracy over the last `WINDOW` steps."""
    for i in range(len(steps)):
        window = steps[max(0, i - WINDOW + 1) : i + 1]
        if sum(s["correct"] for s in window) / sum(s["total"] for s in window) >= THRESHOLD:
            return steps[i]["step"]
    return None


@pytest.mark.timeout(300)
def test_fsdp_fit_with_high_loss_removal_same_boundary_on_both_ranks(fsdp_run):
    (r0, r1), _ = fsdp_run
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    b0, b1 = r0["first"]["boundary_step"], r1["first"]["boundary_step"]
    assert b0 == b1 is not None and f">= threshold {THRESHOLD}" in r0["first"]["reason"]  # the metric, no guard
    # the ranks saw different data: alone, they would have ended the period at different steps
    steps0, steps1 = r0["first"]["steps"], r1["first"]["steps"]
    assert [s["correct"] for s in steps0] != [s["correct"] for s in steps1]
    assert _local_boundary(steps0) != _local_boundary(steps1)
    # the decision used both ranks' counts over the window
    i = next(k for k, s in enumerate(steps0) if s["step"] == b0)
    window = steps0[i - WINDOW + 1 : i + 1] + steps1[i - WINDOW + 1 : i + 1]
    pooled = sum(s["correct"] for s in window) / sum(s["total"] for s in window)
    assert f"= {pooled:.4f} >=" in r0["first"]["reason"]
    # removal (1 of 4 sequences) inside the period on both ranks, none after
    for steps in (steps0, steps1):
        assert [s["removed"] for s in steps] == [0.25 if s["step"] <= b0 else 0.0 for s in steps]


@pytest.mark.timeout(300)
def test_fsdp_checkpoint_is_the_adapter_and_resumes(fsdp_run):
    (r0, r1), _ = fsdp_run
    keys = r0["checkpoint_keys"]
    assert keys and all("lora_" in k for k in keys)  # full (gathered) LoRA tensors only, not the frozen base
    # ... and only their bytes: a gathered tensor can be a view of one flat buffer, which torch.save writes whole
    # (25 MB here: the whole model); the LoRA tensors, their AdamW moments and the rest are far below 1 MB
    assert r0["checkpoint_bytes"] < 1_000_000, r0["checkpoint_bytes"]
    assert r0["trained_nonzero_lora_B"]
    assert r0["checkpoint_equals_trained"]  # the gathered weights at the end of the first fit
    assert r0["restored_equals_checkpoint"]  # what FSDP holds at the start of the resumed fit
    assert r0["adapter_equals_trained"]  # save_dir under FSDP: gathered on every rank, written by rank 0
    for r in (r0, r1):
        resumed = r["resumed"]
        assert (resumed["start_step"], resumed["global_step"]) == (8, 10)
        assert resumed["boundary_step"] == r["first"]["boundary_step"] and resumed["in_period"] is False


@pytest.mark.timeout(300)
def test_fsdp_resume_keeps_the_period_ended(fsdp_run):
    (r0, r1), _ = fsdp_run
    for r in (r0, r1):
        assert [s["removed"] for s in r["resumed"]["steps"]] == [0.0, 0.0]
