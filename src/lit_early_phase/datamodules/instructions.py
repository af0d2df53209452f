"""Instruction data (prompt/response pairs or chat messages) rendered with a chat template, prompt masked.

Default data: the English question/answer conversations of the registry package ``chatterbot-corpus`` (BSD,
2,026 conversations; ``pip install --no-deps chatterbot-corpus``), read from its YAML files without importing
anything of it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_early_phase.functional.tokens import IGNORE_INDEX

CHATTERBOT_PACKAGE = "chatterbot-corpus"
Message = dict[str, str]
Template = Literal["chat", "plain"]


def chatterbot_dir(language: str = "english") -> Path:
    """The folder of ``chatterbot-corpus`` YAML files for ``language`` (found without importing the package).

    Args:
        language: a folder of ``chatterbot_corpus/data`` (``"english"``).

    Returns:
        The folder.

    Raises:
        FileNotFoundError: if the package is not installed (saying how to install it) or has no such language.

    Example:
        >>> chatterbot_dir().name  # doctest: +SKIP
        'english'
    """
    spec = importlib.util.find_spec("chatterbot_corpus")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data" / language
        if folder.is_dir():
            return folder
    if locations:
        raise FileNotFoundError(f"`chatterbot-corpus` has no language folder {language!r} under {locations[0]}/data.")
    raise FileNotFoundError(
        f"The default instruction data is the registry package `{CHATTERBOT_PACKAGE}`, which is not "
        f"installed: `pip install --no-deps {CHATTERBOT_PACKAGE} pyyaml`. Or pass `data=` a JSONL file or a "
        f"list of records."
    )


def load_chatterbot(language: str = "english") -> list[list[Message]]:
    """Conversations of ``chatterbot-corpus`` as chat messages (user and assistant turns alternating).

    A conversation ``[q, a, q2, a2, ...]`` becomes alternating ``user``/``assistant`` messages; a trailing
    unanswered ``user`` turn is dropped, and one-line conversations are skipped.

    Args:
        language: a folder of ``chatterbot_corpus/data``.

    Returns:
        The conversations, files in name order.

    Raises:
        FileNotFoundError: if the package is missing (see :func:`chatterbot_dir`).
        ImportError: if PyYAML is missing.

    Example:
        >>> convs = load_chatterbot()  # doctest: +SKIP
        >>> len(convs), convs[0][0]["role"]  # doctest: +SKIP
        (2026, 'user')
    """
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Reading chatterbot-corpus needs PyYAML: `pip install pyyaml`.") from err
    conversations = []
    for path in sorted(chatterbot_dir(language).glob("*.yml")):
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f) or {}
        for turns in content.get("conversations", []):
            texts = [str(t) for t in turns]
            if len(texts) % 2:
                texts = texts[:-1]
            if texts:
                conversations.append(
                    [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
                )
    return conversations


_PROMPT_KEYS = ("prompt", "instruction", "question")
_RESPONSE_KEYS = ("response", "completion", "output", "answer")


def to_messages(record: Any, *, where: str = "record") -> list[Message]:
    """Normalise one record to chat messages.

    Accepted: ``{"messages": [{"role", "content"}, ...]}``, a list of such messages, or a pair
    ``{"prompt"|"instruction"|"question": ..., "response"|"completion"|"output"|"answer": ...}`` (with an
    optional ``"system"``).

    Args:
        record: the record.
        where: what to call it in errors (e.g. ``"data.jsonl line 3"``).

    Returns:
        The messages.

    Raises:
        ValueError: for a record of another shape, or messages without an assistant turn.

    Example:
        >>> to_messages({"prompt": "Hi?", "response": "Hello."})
        [{'role': 'user', 'content': 'Hi?'}, {'role': 'assistant', 'content': 'Hello.'}]
    """
    if isinstance(record, dict) and "messages" in record:
        record = record["messages"]
    if isinstance(record, dict):
        prompt = next((record[k] for k in _PROMPT_KEYS if k in record), None)
        response = next((record[k] for k in _RESPONSE_KEYS if k in record), None)
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise ValueError(
                f"{where}: expected a prompt/response pair (keys {list(_PROMPT_KEYS)} and "
                f"{list(_RESPONSE_KEYS)}) or {{'messages': [{{'role': ..., 'content': ...}}, ...]}}, got keys "
                f"{sorted(record)}."
            )
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        if isinstance(record.get("system"), str):
            messages.insert(0, {"role": "system", "content": record["system"]})
        return messages
    if isinstance(record, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in record
    ):
        if not any(m["role"] == "assistant" for m in record):
            raise ValueError(f"{where}: the messages have no 'assistant' turn, so there is nothing to learn.")
        return [{"role": m["role"], "content": m["content"]} for m in record]
    raise ValueError(
        f"{where}: expected a prompt/response dict, {{'messages': [...]}} or a list of {{'role', 'content'}} "
        f"dicts, got {type(record).__name__}."
    )


def read_jsonl(path: str | os.PathLike) -> list[list[Message]]:
    """Read a JSONL file of records (see :func:`to_messages`), one per line; blank lines are skipped.

    Args:
        path: the file.

    Returns:
        The conversations.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for a line that is not JSON or not a record (naming the line).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"Instruction data file `{path}` does not exist. Pass the path of a JSONL file (one "
            f'{{"prompt": ..., "response": ...}} or {{"messages": [...]}} per line), or `data=None` for the '
            f"embedded chatterbot-corpus conversations (`pip install --no-deps {CHATTERBOT_PACKAGE}`)."
        )
    out = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p.name} line {n} is not valid JSON: {err}.") from err
            out.append(to_messages(record, where=f"{p.name} line {n}"))
    return out


@dataclass(frozen=True)
class Example:
    """One tokenised conversation.

    Attributes:
        input_ids: token ids of the rendered conversation (truncated).
        labels: ``input_ids`` where the assistant speaks (its text and end-of-turn token), ``-100`` elsewhere.
    """

    input_ids: list[int]
    labels: list[int]


def _render_spans(
    tokenizer: Any, messages: Sequence[Message], template: Template, system_prompt: str | None
) -> tuple[str, list[tuple[int, int]]]:
    """The full text and the character spans of the assistant turns (text + end-of-turn token)."""
    if system_prompt is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    eos = getattr(tokenizer, "eos_token", None) or ""
    if template == "plain":
        text, spans = "", []
        for m in messages:
            if m["role"] == "assistant":
                start = len(text)
                text += m["content"] + eos
                spans.append((start, len(text)))
                text += "\n"
            else:
                text += m["content"] + "\n"
        return text, spans
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"The tokenizer ({type(tokenizer).__name__}) has no chat template. Use `template='plain'` "
            f"(prompt, newline, response, eos) or a tokenizer with one."
        )
    render = tokenizer.apply_chat_template
    text = render(list(messages), tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render(list(messages[:i]), tokenize=False, add_generation_prompt=True) if i else ""
        upto = render(list(messages[: i + 1]), tokenize=False)
        if not (text.startswith(prefix) and text.startswith(upto) and upto.startswith(prefix)):
            raise ValueError(
                "The chat template does not render conversations incrementally (a prefix of the conversation "
                "does not render as a prefix of the text), so the assistant turns cannot be located. Use "
                "`template='plain'`."
            )
        end = len(upto)
        # learn the turn's text and its end-of-turn token, not the whitespace the template puts after it
        stripped = upto.rstrip()
        if eos and stripped.endswith(eos):
            end = len(stripped)
        spans.append((len(prefix), end))
    return text, spans


def tokenize_conversation(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    max_length: int,
    template: Template = "chat",
    system_prompt: str | None = None,
) -> Example:
    """Render a conversation, tokenise it, label the assistant tokens only, and truncate to ``max_length``.

    The whole text is tokenised at once (as at inference) and a token is labelled when its characters lie in
    an assistant turn (its text and end-of-turn token). Everything else - system prompt (including a
    template's default one), user turns, role headers - gets ``-100``.

    Args:
        tokenizer: a fast (offset-mapping) transformers tokenizer.
        messages: the conversation.
        max_length: tokens kept at most (truncated on the right).
        template: ``"chat"`` (the tokenizer's chat template) or ``"plain"``.
        system_prompt: a system message put first when the conversation has none.

    Returns:
        The :class:`Example`.

    Raises:
        ValueError: for a tokenizer without offsets or without a chat template (``template="chat"``).
    """
    text, spans = _render_spans(tokenizer, messages, template, system_prompt)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    except NotImplementedError as err:
        raise ValueError("The tokenizer must be a fast tokenizer (it must return offset mappings).") from err
    ids = list(enc["input_ids"])[:max_length]
    labels = []
    for tok, (start, end) in zip(ids, enc["offset_mapping"], strict=False):
        inside = end > start and any(s <= start and end <= e for s, e in spans)
        labels.append(tok if inside else IGNORE_INDEX)
    return Example(ids, labels)


class InstructionDataset(Dataset):
    """A list of :class:`Example` (already tokenised)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


class PadCollator:
    """Pad a list of :class:`Example` to the longest one (right padding): ids, attention mask, labels.

    Args:
        pad_token_id: the id put in padded positions of ``input_ids`` (labels get ``-100``).
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Example:
        >>> batch = PadCollator(0)([Example([5, 6, 7], [-100, 6, 7]), Example([8], [-100])])
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


class InstructionDataModule(L.LightningDataModule):
    """Prompt/response pairs or chat conversations, chat-templated, prompt-masked, padded per batch.

    Records come from a JSONL file or a Python list (see :func:`to_messages` for the shapes), or by default
    from the English conversations of ``chatterbot-corpus`` (``pip install --no-deps chatterbot-corpus``).
    Each conversation is rendered with the tokenizer's chat template, tokenised, truncated to ``max_length``
    and labelled on the assistant turns only; conversations left with no response token after truncation are
    dropped (and counted in the log). Batches are dicts ``input_ids``/``attention_mask``/``labels``.

    The tokenizer: with ``tokenizer=None`` the data module uses the tokenizer of the model it is trained with
    (``trainer.lightning_module.tokenizer``, e.g. :class:`~lit_early_phase.modules.CausalLMFineTune`'s), so a
    recipe names the model once; outside a Trainer it loads SmolLM2's.

    Args:
        data: a JSONL path, a list of records, or ``None`` for chatterbot-corpus (English).
        val_data: validation records (path or list); ``None`` splits ``val_fraction`` off ``data``.
        tokenizer: a tokenizer object, a model name/path to load one from, or ``None`` (see above).
        max_length: tokens per conversation at most.
        batch_size: conversations per batch (per device).
        val_fraction: share of ``data`` held out for validation when ``val_data`` is ``None``, in ``[0, 1)``.
        template: ``"chat"`` (the tokenizer's chat template) or ``"plain"`` (prompt, newline, response, eos).
        system_prompt: a system message for conversations without one (``None``: the template's default).
        limit: use only the first ``limit`` conversations after shuffling (quick runs).
        seed: seed of the shuffle and split.
        pad_to_multiple_of: pad each batch's length up to a multiple of this.
        num_workers: DataLoader workers.

    Raises:
        ValueError: for an argument out of range.
        FileNotFoundError: at once for a JSONL path that does not exist; at ``setup`` for a missing
            ``chatterbot-corpus`` package.

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
    ) -> None:
        super().__init__()
        for name, value, low in (("max_length", max_length, 2), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
        if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
            raise ValueError(f"`val_fraction` must be in [0, 1) (share held out for validation), got {val_fraction!r}.")
        if template not in ("chat", "plain"):
            raise ValueError(f"`template` must be 'chat' or 'plain', got {template!r}.")
        if limit is not None and (not isinstance(limit, int) or limit < 2):
            raise ValueError(f"`limit` must be an int >= 2 or None, got {limit!r}.")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"`pad_to_multiple_of` must be an int >= 1 or None, got {pad_to_multiple_of!r}.")
        if isinstance(data, str | os.PathLike) and not Path(data).expanduser().is_file():
            read_jsonl(data)  # raises the clear FileNotFoundError now, before any model is loaded
        # records given as lists and tokenizer objects stay out of the hyper-parameters (size, pickling)
        ignore = [k for k, v in (("data", data), ("val_data", val_data)) if not (v is None or isinstance(v, str))]
        if tokenizer is not None and not isinstance(tokenizer, str):
            ignore.append("tokenizer")
        self.save_hyperparameters(ignore=ignore or None)
        self.data, self.val_data = data, val_data
        self.tokenizer_arg = tokenizer
        self.tokenizer: Any = None if tokenizer is None or isinstance(tokenizer, str) else tokenizer
        self.max_length, self.batch_size, self.val_fraction = max_length, batch_size, float(val_fraction)
        self.template, self.system_prompt = template, system_prompt
        self.limit, self.seed = limit, seed
        self.pad_to_multiple_of, self.num_workers = pad_to_multiple_of, num_workers
        self.train_set: InstructionDataset | None = None
        self.val_set: InstructionDataset | None = None
        self.num_dropped = 0

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
        # imported here: data modules stand alone, this only shares the model-locating code of the LM module
        from lit_early_phase.modules.causal_lm import SMOLLM2, load_tokenizer

        self.tokenizer = load_tokenizer(self.tokenizer_arg or SMOLLM2)
        return self.tokenizer

    @staticmethod
    def _records(source: str | list[Any] | None) -> list[list[Message]]:
        if source is None:
            return load_chatterbot()
        if isinstance(source, str | os.PathLike):
            return read_jsonl(source)
        if isinstance(source, Iterable):
            return [to_messages(r, where=f"record {i}") for i, r in enumerate(source)]
        raise ValueError(f"`data` must be a JSONL path, a list of records or None, got {type(source).__name__}.")

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

    def setup(self, stage: str | None = None) -> None:
        """Read, shuffle, split and tokenise (once)."""
        if self.train_set is not None:
            return
        conversations = self._records(self.data)
        order = list(range(len(conversations)))
        random.Random(self.seed).shuffle(order)
        conversations = [conversations[i] for i in order]
        if self.limit is not None:
            conversations = conversations[: self.limit]
        if self.val_data is not None:
            train, val = conversations, self._records(self.val_data)
        else:
            n_val = round(len(conversations) * self.val_fraction)
            if self.val_fraction > 0:
                n_val = max(1, n_val)
            val, train = conversations[:n_val], conversations[n_val:]
        if not train:
            raise ValueError(
                f"No training conversations left ({len(conversations)} read, val_fraction={self.val_fraction})."
            )
        self.num_dropped = 0
        self.train_set = InstructionDataset(self._tokenize(train))
        self.val_set = InstructionDataset(self._tokenize(val))
        if not len(self.train_set):
            raise ValueError(
                f"Every training conversation lost all its response tokens to truncation at max_length="
                f"{self.max_length}; raise `max_length`."
            )
        if self.num_dropped:
            rank_zero_info(
                f"InstructionDataModule: {self.num_dropped} conversations had no response token left "
                f"after truncation to {self.max_length} tokens and were dropped."
            )

    def _collator(self) -> PadCollator:
        tok = self._resolve_tokenizer()
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return PadCollator(pad, self.pad_to_multiple_of)

    def _loader(self, dataset: InstructionDataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("Call `setup('fit')` first (the Trainer does it).")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self._collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches (none when the split is empty)."""
        if self.val_set is not None and not len(self.val_set):
            return []
        return self._loader(self.val_set, shuffle=False)
