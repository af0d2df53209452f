"""Chat rendering and tokenisation: a conversation becomes token ids labelled on the assistant turns only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lit_early_phase.datamodules.text.records import Message
from lit_early_phase.functional.tokens import IGNORE_INDEX

Template = Literal["chat", "plain"]


@dataclass(frozen=True)
class Example:
    """One tokenised conversation.

    Attributes:
        input_ids: token ids of the rendered conversation (truncated).
        labels: ``input_ids`` where the assistant speaks (its text and end-of-turn token), ``-100`` elsewhere.
    """

    input_ids: list[int]
    labels: list[int]


def render_spans(
    tokenizer: Any, messages: Sequence[Message], template: Template, system_prompt: str | None
) -> tuple[str, list[tuple[int, int]]]:
    """The full text and the character spans of the assistant turns (text + end-of-turn token).

    Args:
        tokenizer: a transformers tokenizer (``template="plain"``: anything with an ``eos_token``).
        messages: the conversation.
        template: ``"chat"`` or ``"plain"``.
        system_prompt: a system message put first when the conversation has none.

    Returns:
        ``(text, spans)``.

    Raises:
        ValueError: for a tokenizer without a chat template, or one that does not render incrementally.
    """
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
    text, spans = render_spans(tokenizer, messages, template, system_prompt)
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
        text, _ = render_spans(tokenizer, messages, "plain", None)
        return text, prompt, reference
    if not getattr(tokenizer, "chat_template", None):
        render_spans(tokenizer, messages, template, None)  # raises the clear no-template error
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
