"""Instruction records: JSONL files, Python lists and the chatterbot-corpus conversations, as chat messages.

Default data: the English question/answer conversations of the registry package ``chatterbot-corpus`` (BSD,
2,025 conversations; ``pip install --no-deps chatterbot-corpus``), read from its YAML files without importing
anything of it.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHATTERBOT_PACKAGE = "chatterbot-corpus"
Message = dict[str, str]


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
    return conversation(record, where, need_answer=True)


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _wrong_type(where: str, field: str, value: Any) -> ValueError:
    return ValueError(
        f"{where}: `{field}` must be a string, got {type(value).__name__} ({_short(value)}). Write it as a JSON "
        f"string in the data."
    )


def conversation(record: Any, where: str, *, need_answer: bool) -> list[Message]:
    """:func:`to_messages`, or with ``need_answer=False`` also a bare prompt (a string, or a dict without answer).

    Args:
        record: the record.
        where: what to call it in errors.
        need_answer: refuse a record without an assistant turn.

    Returns:
        The messages.

    Raises:
        ValueError: as :func:`to_messages`.
    """
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
    return [messages for _, messages in read_jsonl_records(path, need_answer=True)]


def missing_file_error(path: str | os.PathLike, argument: str) -> FileNotFoundError:
    """The error for a data file that does not exist, naming the argument and the record shapes."""
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


def read_jsonl_records(
    path: str | os.PathLike, *, need_answer: bool, argument: str = "data"
) -> list[tuple[str, list[Message]]]:
    """``(where, messages)`` for each line of a JSONL file, ``where`` naming the file and line.

    Args:
        path: the file.
        need_answer: refuse records without an assistant turn.
        argument: the argument that named the file (for the missing-file error).

    Returns:
        The records.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for a line that is not JSON or not a record.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise missing_file_error(path, argument)
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
            out.append((where, conversation(record, where, need_answer=need_answer)))
    return out


def read_records(
    source: str | Sequence[Any] | None, argument: str = "data", *, need_answer: bool = True
) -> list[tuple[str, list[Message]]]:
    """``(where, messages)`` for each record of ``source`` (``where`` names it in messages).

    Args:
        source: a JSONL path, a list of records, or ``None`` for the chatterbot-corpus conversations.
        argument: the argument ``source`` came from (``"data"``, ``"val_data"``, ...), for messages.
        need_answer: refuse records without an assistant turn.

    Returns:
        The records.

    Raises:
        FileNotFoundError: for a missing file or package.
        ValueError: for a record of another shape.

    Example:
        >>> read_records([{"prompt": "Hi?", "response": "Hello."}], "val_data")[0][0]
        'val_data[0]'
    """
    if source is None:
        return [(f"chatterbot-corpus conversation {i}", c) for i, c in enumerate(load_chatterbot())]
    if isinstance(source, str):
        return read_jsonl_records(source, need_answer=need_answer, argument=argument)
    return [
        (f"{argument}[{i}]", conversation(r, f"{argument}[{i}]", need_answer=need_answer)) for i, r in enumerate(source)
    ]
