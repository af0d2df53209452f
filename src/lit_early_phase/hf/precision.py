"""Whether this CPU computes bfloat16 quickly (a warning at fit time depends on it)."""

from __future__ import annotations

import torch

#: What the warning says about the fallback's cost. No figure here: the measured bf16 / fp32 ratios (a matmul and a
#: SmolLM2 LoRA step) are in ``benchmarks/results/bf16_cpu.md``, written by ``benchmarks/bf16_cpu.py`` on the CPU
#: it ran on (docs/llm.md quotes them).
BF16_CPU_SLOWDOWN = (
    "benchmarks/bf16_cpu.py measures how much slower than float32 on your CPU; docs/llm.md quotes the "
    "maintainers' measurement"
)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls on a fast path (oneDNN with AVX512 / AVX512-BF16 / AMX / ARM BF16).

    torch computes CPU bfloat16 matmuls through oneDNN only where ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
    holds; elsewhere (e.g. AVX2-only x86) it falls back to a scalar kernel that is tens of times slower than
    float32. The check is torch's own (private, so guarded): if it is missing, the CPU capability flags of
    ``torch.cpu`` decide.

    Returns:
        ``True`` when bfloat16 compute is fast on this CPU.

    Example:
        >>> isinstance(cpu_has_native_bf16(), bool)
        True
    """
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None:
            return bool(check())
    except RuntimeError:  # pragma: no cover - torch built without oneDNN
        pass
    cpu = torch.cpu
    flags = ("_is_avx512_bf16_supported", "_is_amx_tile_supported", "_is_avx512_supported")
    return any(bool(getattr(cpu, f, lambda: False)()) for f in flags)  # pragma: no cover - fallback only


def slow_bf16_warning(precision: str, *, bf16_weights: bool) -> str | None:
    """The warning for bfloat16 compute on a CPU without native bfloat16 (``None`` when nothing runs in bf16).

    Args:
        precision: the Trainer's precision (``"bf16-mixed"``, ``"32-true"``, ...).
        bf16_weights: whether the model holds bfloat16 weights.

    Returns:
        The message, naming what is in bf16 and what to use instead.

    Example:
        >>> slow_bf16_warning("32-true", bf16_weights=False) is None
        True
    """
    if not (precision.startswith("bf16") or bf16_weights):
        return None
    what = f"`precision={precision!r}`" if precision.startswith("bf16") else "bfloat16 weights (`dtype='bfloat16'`)"
    return (
        f"CausalLMFineTune: {what} on a CPU without native bfloat16 matmuls "
        f"(capability {torch.backends.cpu.get_cpu_capability()}, no AVX512/AVX512-BF16/AMX for oneDNN): torch "
        f"falls back to a slow kernel ({BF16_CPU_SLOWDOWN}). Use `precision='32-true'` "
        f"(`--trainer.precision 32-true`) and `dtype='float32'` on this machine; keep bf16 for GPUs and CPUs "
        f"with native bf16."
    )
