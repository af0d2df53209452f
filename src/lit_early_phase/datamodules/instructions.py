"""Instruction data (prompt/response pairs or chat messages) rendered with a chat template, prompt masked.

Default data: the English question/answer conversations of the registry package ``chatterbot-corpus`` (BSD,
2,025 conversations; ``pip install --no-deps chatterbot-corpus``), read from its YAML files without importing
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
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

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
    unanswered ``user`` turn is dropped, and one-line conversations are skipped, as is an entry that is a plain
    string instead of a list of turns (the English ``trivia.yml`` has one, which would otherwise become a
    conversation of single characters).

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
        (2025, 'user')
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
            if not isinstance(turns, list):
                continue
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
        ValueError: for a record of another shape, a field that is not a string (named, with the type found),
            or messages without an assistant turn.

    Example:
        >>> to_messages({"prompt": "Hi?", "response": "Hello."})
        [{'role': 'user', 'content': 'Hi?'}, {'role': 'assistant', 'content': 'Hello.'}]
        >>> to_messages({"prompt": "Hi?", "response": 42}, where="data.jsonl line 3")
        Traceback (most recent call last):
        ...
        ValueError: data.jsonl line 3: `response` must be a string, got int (42). ...
    """
    return _conversation(record, where, need_answer=True)


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _wrong_type(where: str, field: str, value: Any) -> ValueError:
    return ValueError(
        f"{where}: `{field}` must be a string, got {type(value).__name__} ({_short(value)}). Write it as a JSON "
        f"string in the data."
    )


def _conversation(record: Any, where: str, *, need_answer: bool) -> list[Message]:
    """:func:`to_messages`, or with ``need_answer=False`` also a bare prompt (a string, or a dict without answer)."""
    if not need_answer and isinstance(record, str):
        return [{"role": "user", "content": record}]
    if isinstance(record, dict) and "messages" in record:
        record = record["messages"]
    if isinstance(record, dict):
        prompt_key = next((k for k in _PROMPT_KEYS if k in record), None)
        response_key = next((k for k in _RESPONSE_KEYS if k in record), None)
        if prompt_key is None or (response_key is None and need_answer):
            raise ValueError(
                f"{where}: expected a prompt/response pair (keys {list(_PROMPT_KEYS)} and "
                f"{list(_RESPONSE_KEYS)}) or {{'messages': [{{'role': ..., 'content': ...}}, ...]}}, got keys "
                f"{sorted(record)}."
            )
        for key in (prompt_key, response_key):
            if key is not None and not isinstance(record[key], str):
                raise _wrong_type(where, key, record[key])
        system = record.get("system")
        if system is not None and not isinstance(system, str):
            raise _wrong_type(where, "system", system)
        messages = [{"role": "user", "content": record[prompt_key]}]
        if response_key is not None:
            messages.append({"role": "assistant", "content": record[response_key]})
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        return messages
    if isinstance(record, list) and record and all(isinstance(m, dict) for m in record):
        for i, m in enumerate(record):
            for key in ("role", "content"):
                if not isinstance(m.get(key), str):
                    if key not in m:
                        raise ValueError(f"{where}: message {i} has no `{key}` (it has {sorted(m)}).")
                    raise _wrong_type(where, f"messages[{i}].{key}", m[key])
        if need_answer and not any(m["role"] == "assistant" for m in record):
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
    return [messages for _, messages in _read_jsonl(path, need_answer=True)]


def _missing_file(path: str | os.PathLike, argument: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"`{argument}={os.fspath(path)!r}`: the instruction data file does not exist. Pass the path of a JSONL "
        f'file (one {{"prompt": ..., "response": ...}} or {{"messages": [...]}} per line)'
        + (
            f", or `data=None` for the embedded chatterbot-corpus conversations "
            f"(`pip install --no-deps {CHATTERBOT_PACKAGE}`)."
            if argument == "data"
            else ", a list of such records, or None."
        )
    )


def _read_jsonl(
    path: str | os.PathLike, *, need_answer: bool, argument: str = "data"
) -> list[tuple[str, list[Message]]]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise _missing_file(path, argument)
    out = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p.name} line {n} is not valid JSON: {err}.") from err
            where = f"{p.name} line {n}"
            out.append((where, _conversation(record, where, need_answer=need_answer)))
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


def render_prompt(
    tokenizer: Any, messages: Sequence[Message], *, template: Template = "chat", system_prompt: str | None = None
) -> tuple[str, str, str | None]:
    r"""The text a model continues to answer a conversation: everything before its last assistant turn.

    Rendered as in training (:func:`tokenize_conversation`): with the chat template and its generation prompt
    (``<|im_start|>assistant`` for SmolLM2), or for ``template="plain"`` the turns each followed by a newline.

    Args:
        tokenizer: a transformers tokenizer.
        messages: the conversation; a final assistant turn, if any, is the reference answer and is not rendered.
        template: ``"chat"`` or ``"plain"``.
        system_prompt: a system message put first when the conversation has none.

    Returns:
        ``(text, prompt, reference)``: the rendered text, the last user message, and the reference answer
        (``None`` when the conversation ends with the user).

    Raises:
        ValueError: for a conversation with nothing before its last assistant turn, or a tokenizer without a chat
            template (``template="chat"``).

    Example:
        >>> class Plain:
        ...     eos_token = "</s>"
        >>> render_prompt(Plain(), [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        ...               template="plain")
        ('2+2?\n', '2+2?', '4')
    """
    messages = list(messages)
    reference = None
    if messages and messages[-1]["role"] == "assistant":
        reference = messages.pop()["content"]
    if not messages:
        raise ValueError("A prompt needs at least one message before the answer.")
    if system_prompt is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    if template == "plain":
        text, _ = _render_spans(tokenizer, messages, "plain", None)
        return text, prompt, reference
    if not getattr(tokenizer, "chat_template", None):
        _render_spans(tokenizer, messages, template, None)  # raises the clear no-template error
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, prompt, reference


@dataclass(frozen=True)
class PromptExample:
    """One tokenised prompt to answer.

    Attributes:
        input_ids: token ids of the rendered prompt (its last ``max_length`` tokens).
        prompt: the last user message.
        reference: the data's answer, or ``None``.
    """

    input_ids: list[int]
    prompt: str
    reference: str | None


class PromptCollator:
    """Pad prompts on the **left** (generation continues every row at the same position), keep their texts.

    Args:
        pad_token_id: the id put in padded positions.

    Example:
        >>> batch = PromptCollator(0)([PromptExample([5, 6], "a", None), PromptExample([7], "b", "B")])
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


class InstructionDataModule(L.LightningDataModule):
    """Prompt/response pairs or chat conversations, chat-templated, prompt-masked, padded per batch.

    Records come from a JSONL file or a Python list (see :func:`to_messages` for the shapes), or by default
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
    ``reference``). Training batches come from torchdata's ``StatefulDataLoader`` with a
    ``StatefulDistributedSampler``: each rank's share of a permutation drawn from ``(seed, epoch)``, whose
    position Lightning saves in checkpoints, so a run resumed mid-epoch sees the same batches as an
    uninterrupted one (a loop outside Lightning calls ``loader.sampler.set_epoch(epoch)`` for a new order each
    epoch, as with any ``DistributedSampler``).

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
                raise _missing_file(value, name)
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
        self.train_set: InstructionDataset | None = None
        self.val_set: InstructionDataset | None = None
        self.test_set: InstructionDataset | None = None
        self.predict_set: InstructionDataset | None = None
        self._test_conversations: list[list[Message]] = []
        self.num_dropped = 0
        self.num_empty = 0
        self._empty_where: list[str] = []

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
    def _records(
        source: str | list[Any] | None, argument: str = "data", *, need_answer: bool = True
    ) -> list[tuple[str, list[Message]]]:
        """``(where, messages)`` for each record of ``source`` (``where`` names it in messages)."""
        if source is None:
            return [(f"chatterbot-corpus conversation {i}", c) for i, c in enumerate(load_chatterbot())]
        if isinstance(source, str):
            return _read_jsonl(source, need_answer=need_answer, argument=argument)
        return [
            (f"{argument}[{i}]", _conversation(r, f"{argument}[{i}]", need_answer=need_answer))
            for i, r in enumerate(source)
        ]

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
                records = self._records(self.predict_data, "predict_data", need_answer=False)
                conversations = [messages for _, messages in records]
            else:
                conversations = self._test_conversations
            self.predict_set = InstructionDataset(self._prompts(conversations))

    def _setup_splits(self) -> None:
        self.num_dropped = self.num_empty = 0
        self._empty_where = []
        conversations = self._without_empty(self._records(self.data, "data"))
        order = list(range(len(conversations)))
        random.Random(self.seed).shuffle(order)
        conversations = [conversations[i] for i in order]
        if self.limit is not None:
            conversations = conversations[: self.limit]
        if self.val_data is not None:
            train_conv, val_conv = conversations, self._without_empty(self._records(self.val_data, "val_data"))
        else:
            n_val = round(len(conversations) * self.val_fraction)
            if self.val_fraction > 0:
                n_val = max(1, n_val)
            val_conv, train_conv = conversations[:n_val], conversations[n_val:]
        has_test = self.test_data is not None
        test_conv = self._without_empty(self._records(self.test_data, "test_data")) if has_test else val_conv
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

    def _collator(self) -> PadCollator:
        return PadCollator(self._pad_id(), self.pad_to_multiple_of)

    def _pad_id(self) -> int:
        tok = self._resolve_tokenizer()
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def _loader(self, dataset: InstructionDataset | None, shuffle: bool, collate_fn: Any = None) -> StatefulDataLoader:
        if dataset is None:
            raise RuntimeError("Call `setup('fit')` first (the Trainer does it).")
        sampler = None
        if shuffle:
            # This rank's share of a permutation drawn from (seed, epoch): a DistributedSampler, so Lightning keeps
            # it (and calls its `set_epoch`) instead of putting in its own, which would not resume mid-epoch; and
            # not `shuffle=True`, whose sampler Lightning does not recognise as shuffled under DDP.
            trainer = self.trainer
            world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            sampler = StatefulDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return StatefulDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=collate_fn or self._collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled training batches (resumable mid-epoch)."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> StatefulDataLoader | list:
        """Validation batches (none when the split is empty)."""
        if self.val_set is not None and not len(self.val_set):
            return []
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> StatefulDataLoader:
        """Test batches: ``test_data``, or the validation split when none was given.

        Raises:
            ValueError: when there is nothing to test on.
        """
        if self.test_set is not None and not len(self.test_set):
            raise ValueError(
                "`trainer.test` has no conversations to test on: pass `test_data=` (a JSONL path or a list), or "
                "keep a validation split (`val_data=` or `val_fraction` > 0), which serves as test by default."
            )
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> StatefulDataLoader:
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
        return self._loader(self.predict_set, shuffle=False, collate_fn=PromptCollator(self._pad_id()))
