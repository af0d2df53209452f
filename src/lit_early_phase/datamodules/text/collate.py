"""Collation of tokenised instruction data: training examples padded on the right, prompts on the left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lit_early_phase.datamodules.text.chat import Example, PromptExample
from lit_early_phase.functional.tokens import IGNORE_INDEX


class InstructionCollate:
    """Pad a list of :class:`~lit_early_phase.datamodules.text.chat.Example` to the longest one (right padding).

    Gives ``input_ids``, ``attention_mask`` and ``labels``. The ``*Collate`` names follow ``UCRDataModule``'s
    ``PadCollate``, which pads series, not tokens.

    Args:
        pad_token_id: the id put in padded positions of ``input_ids`` (labels get ``-100``).
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Example:
        >>> batch = InstructionCollate(0)([Example([5, 6, 7], [-100, 6, 7]), Example([8], [-100])])
        >>> batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [8, 0, 0]], [[-100, 6, 7], [-100, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        """Stack with padding."""
        length = max(len(e.input_ids) for e in examples)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(examples), length), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e.input_ids)
            ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
            labels[i, :n] = torch.tensor(e.labels, dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class PromptCollate:
    """Pad prompts on the **left** (generation continues every row at the same position), keep their texts.

    Args:
        pad_token_id: the id put in padded positions.

    Example:
        >>> batch = PromptCollate(0)([PromptExample([5, 6], "a", None), PromptExample([7], "b", "B")])
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["reference"]
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]], [None, 'B'])
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[PromptExample]) -> dict[str, Any]:
        """Stack with left padding."""
        length = max(len(e.input_ids) for e in examples)
        ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(examples), length), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e.input_ids)
            ids[i, length - n :] = torch.tensor(e.input_ids, dtype=torch.long)
            mask[i, length - n :] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "prompt": [e.prompt for e in examples],
            "reference": [e.reference for e in examples],
        }
