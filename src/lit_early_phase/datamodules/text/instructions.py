"""`InstructionDataModule`: prompt/response pairs or chat messages, chat-templated, prompt-masked, padded per batch.

Its pieces have a file each: :mod:`~lit_early_phase.datamodules.text.records` (JSONL, lists, chatterbot-corpus),
:mod:`~lit_early_phase.datamodules.text.chat` (rendering, tokenisation, assistant-only labels) and
:mod:`~lit_early_phase.datamodules.text.collate` (padding); the loaders are the shared
:class:`~lit_early_phase.datamodules.loaders.SplitLoadersMixin`'s. The tokenizer comes from
:mod:`lit_early_phase.hf`, never from :mod:`lit_early_phase.modules`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from lit_early_phase._validation import check_choice, check_int, check_number
from lit_early_phase.datamodules.loaders import SplitLoadersMixin
from lit_early_phase.datamodules.text.chat import Example, PromptExample, Template, render_prompt, tokenize_conversation
from lit_early_phase.datamodules.text.collate import InstructionCollate, PromptCollate
from lit_early_phase.datamodules.text.records import Message, missing_file_error, read_records
from lit_early_phase.functional.tokens import IGNORE_INDEX
from lit_early_phase.hf import SMOLLM2, load_tokenizer


class InstructionDataset(Dataset):
    """A list of :class:`~lit_early_phase.datamodules.text.chat.Example` (already tokenised)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


class InstructionDataModule(SplitLoadersMixin, L.LightningDataModule):
    """Prompt/response pairs or chat conversations, chat-templated, prompt-masked, padded per batch.

    Records come from a JSONL file or a Python list (see :func:`~lit_early_phase.datamodules.text.records.to_messages`
    for the shapes), or by default
    from the English conversations of ``chatterbot-corpus`` (``pip install --no-deps chatterbot-corpus``).
    Each conversation is rendered with the tokenizer's chat template, tokenised, truncated to ``max_length``
    and labelled on the assistant turns only. Batches are dicts ``input_ids``/``attention_mask``/``labels``.

    What is left out, and said so at ``setup``: conversations with an empty (or blank) assistant turn are
    skipped with one warning that counts them and names the first ones (an empty answer would teach the model
    to stop at once; ``num_empty``); conversations left with no response token after truncation are dropped and
    counted (``num_dropped``).

    Splits: ``fit`` uses ``data`` (training) and ``val_data`` or a seeded ``val_fraction`` of ``data``
    (validation); ``test`` uses ``test_data``, or the validation split when there is none; ``predict``
    answers the prompts of ``predict_data``, or the prompts of the test split (with their answers as
    ``reference``). Training batches come from the loaders every DataModule of the package shares
    (:class:`~lit_early_phase.datamodules.loaders.SplitLoadersMixin`): each rank's share of a permutation drawn
    from ``(seed, epoch)``, whose position the checkpoint keeps, so a run resumed mid-epoch sees the same batches
    as an uninterrupted one (a loop outside Lightning calls ``loader.sampler.set_epoch(epoch)`` for a new order
    each epoch, as with any ``DistributedSampler``). A language model holds no BatchNorm, so a training batch
    (or a rank's share) may be a single conversation.

    The tokenizer: with ``tokenizer=None`` the data module uses the tokenizer of the model it is trained with
    (``trainer.lightning_module.tokenizer``, e.g. :class:`~lit_early_phase.modules.CausalLMFineTune`'s), so a
    recipe names the model once; outside a Trainer it loads SmolLM2's.

    Args:
        data: a JSONL path, a list of records, or ``None`` for chatterbot-corpus (English).
        val_data: validation records (path or list); ``None`` splits ``val_fraction`` off ``data``.
        test_data: test records (path or list); ``None`` tests on the validation split.
        predict_data: prompts to answer in ``predict`` (path or list): records as for ``data``, whose last
            assistant turn (if any) becomes the ``reference``, a ``{"prompt": ...}`` without answer, or a plain
            string; ``None`` answers the test split's prompts.
        tokenizer: a tokenizer object, a model name/path to load one from, or ``None`` (see above).
        max_length: tokens per conversation at most (prompts to answer keep their last ``max_length`` tokens).
        batch_size: conversations per batch (per device).
        val_fraction: share of ``data`` held out for validation when ``val_data`` is ``None``, in ``[0, 1)``.
        template: ``"chat"`` (the tokenizer's chat template) or ``"plain"`` (prompt, newline, response, eos).
        system_prompt: a system message for conversations without one (``None``: the template's default).
        limit: use only the first ``limit`` conversations after shuffling (quick runs).
        seed: seed of the shuffle and split, and of the training batches' order.
        pad_to_multiple_of: pad each batch's length up to a multiple of this.
        num_workers: DataLoader workers.

    Raises:
        ValueError: for an argument out of range or of the wrong type.
        FileNotFoundError: at once (before any model loads) for a ``data``, ``val_data``, ``test_data`` or
            ``predict_data`` path that does not exist; at ``setup`` for a missing ``chatterbot-corpus`` package.

    Example:
        >>> records = [{"prompt": f"Q{i}?", "response": f"A{i}."} for i in range(10)]
        >>> dm = InstructionDataModule(records, batch_size=4)  # SmolLM2's tokenizer  # doctest: +SKIP
        >>> dm.setup("fit")  # doctest: +SKIP
        >>> sorted(next(iter(dm.train_dataloader())))  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'labels']
    """

    def __init__(
        self,
        data: str | list[Any] | None = None,
        val_data: str | list[Any] | None = None,
        tokenizer: str | Any | None = None,
        max_length: int = 256,
        batch_size: int = 8,
        val_fraction: float = 0.1,
        template: Template = "chat",
        system_prompt: str | None = None,
        limit: int | None = None,
        seed: int = 0,
        pad_to_multiple_of: int | None = None,
        num_workers: int = 0,
        test_data: str | list[Any] | None = None,
        predict_data: str | list[Any] | None = None,
    ) -> None:
        super().__init__()
        check_int("max_length", max_length, minimum=2)
        check_int("batch_size", batch_size, minimum=1)
        check_number(
            "val_fraction",
            val_fraction,
            low=0,
            high=1,
            high_open=True,
            hint="It is the share of `data` held out for validation.",
        )
        check_choice("template", template, ("chat", "plain"))
        check_int("limit", limit, minimum=2, allow_none=True)
        check_int("pad_to_multiple_of", pad_to_multiple_of, minimum=1, allow_none=True)
        check_int("seed", seed)
        check_int("num_workers", num_workers, minimum=0)
        sources = {"data": data, "val_data": val_data, "test_data": test_data, "predict_data": predict_data}
        for name, value in sources.items():
            if isinstance(value, os.PathLike):
                value = sources[name] = os.fspath(value)
            if value is not None and not isinstance(value, str | list | tuple):
                raise ValueError(
                    f"`{name}` must be a JSONL path, a list of records or None, got {type(value).__name__}."
                )
            # a missing file fails now, before the model loads (the Trainer sets data up after that)
            if isinstance(value, str) and not Path(value).expanduser().is_file():
                raise missing_file_error(value, name)
        data, val_data, test_data, predict_data = sources.values()
        # records given as lists and tokenizer objects stay out of the hyper-parameters (size, pickling)
        ignore = [k for k, v in sources.items() if not (v is None or isinstance(v, str))]
        if tokenizer is not None and not isinstance(tokenizer, str):
            ignore.append("tokenizer")
        self.save_hyperparameters(ignore=ignore or None)
        self.data, self.val_data, self.test_data, self.predict_data = data, val_data, test_data, predict_data
        self.tokenizer_arg = tokenizer
        self.tokenizer: Any = None if tokenizer is None or isinstance(tokenizer, str) else tokenizer
        self.max_length, self.batch_size, self.val_fraction = max_length, batch_size, float(val_fraction)
        self.template, self.system_prompt = template, system_prompt
        self.limit, self.seed = limit, seed
        self.pad_to_multiple_of, self.num_workers = pad_to_multiple_of, num_workers
        self.pin_memory = False  # read by the shared loaders; persistent_workers: whenever num_workers > 0
        self.train_set: InstructionDataset | None = None
        self.val_set: InstructionDataset | None = None
        self.test_set: InstructionDataset | None = None
        self.predict_set: InstructionDataset | None = None
        self._test_conversations: list[list[Message]] = []
        self.num_dropped = 0
        self.num_empty = 0
        self._empty_where: list[str] = []

    #: a causal LM normalises no batch: a last batch of one conversation is kept
    allow_single_sample_batches = True

    # ------------------------------------------------------------------------------------------------------
    def _resolve_tokenizer(self) -> Any:
        if self.tokenizer is not None:
            return self.tokenizer
        if self.tokenizer_arg is None:
            trainer = self.trainer
            module = getattr(trainer, "lightning_module", None) if trainer is not None else None
            found = getattr(module, "tokenizer", None)
            if found is not None and hasattr(found, "apply_chat_template"):
                self.tokenizer = found
                return found
        self.tokenizer = load_tokenizer(self.tokenizer_arg or SMOLLM2)
        return self.tokenizer

    def _without_empty(self, records: list[tuple[str, list[Message]]]) -> list[list[Message]]:
        """Leave out conversations with a blank assistant turn; count them in ``num_empty``."""
        kept, empty = [], []
        for where, messages in records:
            if any(m["role"] == "assistant" and not m["content"].strip() for m in messages):
                empty.append(where)
            else:
                kept.append(messages)
        self.num_empty += len(empty)
        self._empty_where.extend(empty)
        return kept

    def _tokenize(self, conversations: Iterable[list[Message]]) -> list[Example]:
        tokenizer = self._resolve_tokenizer()
        out = []
        for messages in conversations:
            ex = tokenize_conversation(
                tokenizer,
                messages,
                max_length=self.max_length,
                template=self.template,
                system_prompt=self.system_prompt,
            )
            if any(t != IGNORE_INDEX for t in ex.labels[1:]):
                out.append(ex)
            else:
                self.num_dropped += 1
        return out

    def _prompts(self, conversations: Iterable[list[Message]]) -> list[PromptExample]:
        tokenizer = self._resolve_tokenizer()
        out = []
        for messages in conversations:
            text, prompt, reference = render_prompt(
                tokenizer, messages, template=self.template, system_prompt=self.system_prompt
            )
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][-self.max_length :]
            out.append(PromptExample(list(ids), prompt, reference))
        return out

    def setup(self, stage: str | None = None) -> None:
        """Read, shuffle, split and tokenise (once); for ``predict``, render the prompts to answer."""
        if self.train_set is None:
            self._setup_splits()
        if stage == "predict" and self.predict_set is None:
            if self.predict_data is not None:
                records = read_records(self.predict_data, "predict_data", need_answer=False)
                conversations = [messages for _, messages in records]
            else:
                conversations = self._test_conversations
            self.predict_set = InstructionDataset(self._prompts(conversations))

    def _setup_splits(self) -> None:
        self.num_dropped = self.num_empty = 0
        self._empty_where = []
        conversations = self._without_empty(read_records(self.data, "data"))
        order = list(range(len(conversations)))
        random.Random(self.seed).shuffle(order)
        conversations = [conversations[i] for i in order]
        if self.limit is not None:
            conversations = conversations[: self.limit]
        if self.val_data is not None:
            train_conv, val_conv = conversations, self._without_empty(read_records(self.val_data, "val_data"))
        else:
            n_val = round(len(conversations) * self.val_fraction)
            if self.val_fraction > 0:
                n_val = max(1, n_val)
            val_conv, train_conv = conversations[:n_val], conversations[n_val:]
        has_test = self.test_data is not None
        test_conv = self._without_empty(read_records(self.test_data, "test_data")) if has_test else val_conv
        if not train_conv:
            raise ValueError(
                f"No training conversations left ({len(conversations)} read after skipping {self.num_empty} with an "
                f"empty response, val_fraction={self.val_fraction})."
            )
        self.train_set = InstructionDataset(self._tokenize(train_conv))
        self.val_set = InstructionDataset(self._tokenize(val_conv))
        self.test_set = InstructionDataset(self._tokenize(test_conv)) if has_test else self.val_set
        self._test_conversations = test_conv
        if not len(self.train_set):
            raise ValueError(
                f"Every training conversation lost all its response tokens to truncation at max_length="
                f"{self.max_length}; raise `max_length`."
            )
        if self.num_empty:
            shown = ", ".join(self._empty_where[:3]) + (" ..." if self.num_empty > 3 else "")
            rank_zero_warn(
                f"InstructionDataModule: skipped {self.num_empty} conversation(s) with an empty response ({shown}): "
                f"an empty answer would teach the model to stop at once. Fix or remove them in the data."
            )
        if self.num_dropped:
            rank_zero_info(
                f"InstructionDataModule: {self.num_dropped} conversations had no response token left "
                f"after truncation to {self.max_length} tokens and were dropped."
            )

    @property
    def collate_fn(self) -> InstructionCollate:  # type: ignore[override]
        """Right padding with the tokenizer's pad id (its eos id when it has none), for the shared loaders."""
        return InstructionCollate(self._pad_id(), self.pad_to_multiple_of)

    def _pad_id(self) -> int:
        tok = self._resolve_tokenizer()
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def test_dataloader(self) -> DataLoader:
        """Test batches: ``test_data``, or the validation split when none was given.

        Raises:
            ValueError: when there is nothing to test on.
        """
        if self.test_set is not None and not len(self.test_set):
            raise ValueError(
                "`trainer.test` has no conversations to test on: pass `test_data=` (a JSONL path or a list), or "
                "keep a validation split (`val_data=` or `val_fraction` > 0), which serves as test by default."
            )
        return super().test_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Prompts to answer, padded on the left: ``predict_data``, or the test split's prompts.

        Raises:
            ValueError: when there is nothing to answer.
        """
        if self.predict_set is not None and not len(self.predict_set):
            raise ValueError(
                "`trainer.predict` has no prompts to answer: pass `predict_data=` (a JSONL path or a list of "
                "records or strings), or keep a test or validation split."
            )
        if self.predict_set is None:
            raise RuntimeError("Call `setup('predict')` first (the Trainer does it).")
        return self._loader(self.predict_set, shuffle=False, collate_fn=PromptCollate(self._pad_id()))
