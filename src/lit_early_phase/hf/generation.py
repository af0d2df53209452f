"""Greedy generation: the answers of ``predict_step`` and a quick one-prompt look at a model."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def greedy_answers(model: Any, tokenizer: Any, batch: Any, *, max_new_tokens: int) -> list[dict[str, Any]]:
    """Answer each left-padded prompt of ``batch`` greedily, stopping at the tokenizer's eos.

    Args:
        model: a transformers (or peft) causal LM.
        tokenizer: its tokenizer.
        batch: ``input_ids`` and ``attention_mask`` ``(B, T)`` (left padding), and optionally ``prompt`` and
            ``reference`` lists, as :class:`~lit_early_phase.datamodules.InstructionDataModule`'s predict batches.
        max_new_tokens: tokens generated at most per prompt.

    Returns:
        One ``{"prompt", "response", "reference"}`` dict per prompt (``reference`` only when there is one).

    Raises:
        KeyError: for a batch without ``input_ids``.
    """
    if not isinstance(batch, dict) or "input_ids" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise KeyError(
            f"predict_step needs a batch with `input_ids` (left-padded prompts), got {keys}. Use "
            f"InstructionDataModule(predict_data=...) or its default (the test split's prompts)."
        )
    ids = batch["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(
        input_ids=ids,
        attention_mask=batch.get("attention_mask"),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )
    texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    prompts = batch.get("prompt") or [None] * len(texts)
    references = batch.get("reference") or [None] * len(texts)
    results = []
    for prompt, text, reference in zip(prompts, texts, references, strict=True):
        row = {"prompt": prompt, "response": text}
        if reference is not None:
            row["reference"] = reference
        results.append(row)
    return results


@torch.no_grad()
def greedy_reply(model: Any, tokenizer: Any, prompt: str, *, max_new_tokens: int, device: torch.device) -> str:
    """Greedy answer to one user message rendered with the chat template, in eval mode (the mode is restored).

    Args:
        model: a transformers (or peft) causal LM.
        tokenizer: its tokenizer (with a chat template).
        prompt: the user's message.
        max_new_tokens: tokens to generate at most.
        device: where the model is.

    Returns:
        The generated text (special tokens removed).
    """
    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
    was_training = model.training
    model.eval()
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
