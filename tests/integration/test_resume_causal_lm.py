"""Resume of CausalLMFineTune: checkpoints load under ``weights_only=True`` (``ckpt_path=``,
``load_from_checkpoint``, the CLI), a LoRA resume restores exactly the saved adapter and refuses one that does not
match, and a mid-epoch resume sees the same batches (the data module's ``StatefulDataLoader``)."""

from __future__ import annotations

import contextlib
import copy
import json

import lightning as L
import pytest
import torch
from helpers import trainer_kwargs
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from llm_helpers import RECORDS, tiny_llama, trainable

from lit_early_phase import EnlightenmentCallback, HighLossRemoval
from lit_early_phase.datamodules import InstructionDataModule
from lit_early_phase.modules import causal_lm
from lit_early_phase.modules.causal_lm import CausalLMFineTune

PLAIN = (bool, int, float, str, type(None))


def assert_plain(value, where="hyper_parameters"):
    """Numbers, strings, lists, tuples and dicts of them only: what `torch.load(weights_only=True)` accepts."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            assert_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert isinstance(value, PLAIN), f"{where} is a {type(value).__name__}: {value!r}"


class OnTrainStart(Callback):
    """The trainable tensors right after Lightning restored the checkpoint (before any new step)."""

    def on_train_start(self, trainer, pl_module):
        self.state = trainable(pl_module)
        self.step = trainer.global_step


def dm_for(tokenizer, n=8, **kw):
    return InstructionDataModule(
        RECORDS[:n], tokenizer=tokenizer, batch_size=4, max_length=48, **{"val_fraction": 0.0, **kw}
    )


def fit_with_checkpoint(tokenizer, tmp_path, lora_r=4, steps=2):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=lora_r, lr=1e-2, warmup=0)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=steps, save_top_k=-1)
    cb = EnlightenmentCallback(strategy=HighLossRemoval(count=1), duration="1st")
    kw = trainer_kwargs(tmp_path, max_steps=steps, enable_checkpointing=True)
    L.Trainer(callbacks=[cb, ckpt], **kw).fit(lm, dm_for(tokenizer))
    (path,) = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    return lm, path


@pytest.fixture(scope="module")
def lora_run(tokenizer, tmp_path_factory):
    """One LoRA fit of 2 steps and its checkpoint, shared by the tests that only read it."""
    L.seed_everything(0, verbose=False)
    return fit_with_checkpoint(tokenizer, tmp_path_factory.mktemp("lora_run"))


# ------------------------------------------------------------------------------------------------------------
# weights_only loading through ckpt_path and load_from_checkpoint
@pytest.mark.parametrize("lora_r", [4, 0], ids=["lora", "full"])
def test_checkpoint_loads_weights_only_and_resumes(tokenizer, tmp_path, lora_r):
    lm, path = fit_with_checkpoint(tokenizer, tmp_path, lora_r=lora_r)
    checkpoint = torch.load(path, weights_only=True)  # raises UnpicklingError on any non-plain object
    hp = checkpoint["hyper_parameters"]
    assert_plain(hp)
    assert_plain(checkpoint["datamodule_hyper_parameters"], "datamodule_hyper_parameters")
    assert "model" not in hp and "tokenizer" not in hp  # objects are left out, never pickled
    assert hp["betas"] == (0.9, 0.999) and hp["lora_r"] == lora_r and hp["lr"] == 1e-2

    seen = OnTrainStart()
    resumed = CausalLMFineTune(tiny_llama(seed=0), tokenizer=tokenizer, lora_r=lora_r, lr=1e-2, warmup=0)
    trainer = L.Trainer(callbacks=[seen], **trainer_kwargs(tmp_path, max_steps=3))
    trainer.fit(resumed, dm_for(tokenizer), ckpt_path=path, weights_only=True)
    assert seen.step == 2 and trainer.global_step == 3
    assert seen.state.keys() == trainable(lm).keys()
    assert all(torch.equal(seen.state[k], v) for k, v in trainable(lm).items())

    loaded = CausalLMFineTune.load_from_checkpoint(path, model=tiny_llama(seed=0), tokenizer=tokenizer)
    assert loaded.hparams.lora_r == lora_r and loaded.lr == 1e-2
    assert all(torch.equal(trainable(loaded)[k], v) for k, v in trainable(lm).items())


def test_path_arguments_are_stored_as_strings(tokenizer, tmp_path):
    saved = tmp_path / "tiny"
    tiny_llama().save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    lm = CausalLMFineTune(saved, save_dir=tmp_path / "out")  # pathlib.Path, not str
    assert lm.hparams.model == str(saved) and lm.hparams.save_dir == str(tmp_path / "out")
    assert_plain(dict(lm.hparams))


# ------------------------------------------------------------------------------------------------------------
# a LoRA resume restores exactly the saved adapter, and a mismatching one is refused
def test_lora_resume_restores_saved_tensors_exactly(tokenizer, tmp_path, lora_run):
    lm, path = lora_run
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert saved and all("lora_" in k for k in saved)
    assert {f"model.{k}" for k in trainable(lm)} == set(saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # trained, not peft's zeros

    seen = OnTrainStart()
    fresh = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lr=1e-2, warmup=0)
    L.Trainer(callbacks=[seen], **trainer_kwargs(tmp_path, max_steps=3)).fit(fresh, dm_for(tokenizer), ckpt_path=path)
    for k, v in saved.items():
        assert torch.equal(seen.state[k.removeprefix("model.")], v), k

    loaded = CausalLMFineTune.load_from_checkpoint(path, model=tiny_llama(), tokenizer=tokenizer)
    for k, v in saved.items():
        assert torch.equal(trainable(loaded)[k.removeprefix("model.")], v), k


@pytest.mark.parametrize("change", ["renamed", "missing", "other_targets"])
def test_lora_resume_refuses_a_mismatching_adapter(tokenizer, tmp_path, change, lora_run):
    _, path = lora_run
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["state_dict"]
    key = sorted(state)[0]
    kwargs = {}
    if change == "renamed":
        state[key.replace("q_proj", "qproj")] = state.pop(key)
        match = r"1 of its keys are not in the module \[.*qproj.*\] and 1 trainable"
    elif change == "missing":
        del state[key]
        match = rf"0 of its keys are not in the module \[\] and 1 trainable tensors of the module are not in it.*{key}"
    else:  # the checkpoint adapts q_proj/v_proj, this module k_proj/o_proj
        kwargs = {"lora_target_modules": ["k_proj", "o_proj"]}
        match = r"8 of its keys are not in the module.*8 trainable.*saved: .*'lora_r': 4"
    bad = tmp_path / f"{change}.ckpt"
    torch.save(checkpoint, bad)
    fresh = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, **kwargs)
    with pytest.raises(RuntimeError, match=match):
        L.Trainer(**trainer_kwargs(tmp_path, max_steps=3)).fit(fresh, dm_for(tokenizer), ckpt_path=bad)
    with pytest.raises(RuntimeError, match="Resume with the base `model`, `lora_r` and `lora_target_modules`"):
        CausalLMFineTune.load_from_checkpoint(bad, model=tiny_llama(), tokenizer=tokenizer, **kwargs)


def test_lora_checkpoint_holds_adapter_only_and_resumes(tokenizer, tmp_path):
    base = tiny_llama()
    fresh_base = copy.deepcopy(base)
    lm = CausalLMFineTune(base, tokenizer=tokenizer, lora_r=4, lr=1e-3)
    dm = InstructionDataModule(RECORDS[:8], tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.0)
    trainer = L.Trainer(**trainer_kwargs(tmp_path, max_steps=1))
    trainer.fit(lm, dm)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert state and all("lora_" in k for k in state)
    resumed = CausalLMFineTune(fresh_base, tokenizer=tokenizer, lora_r=4, lr=1e-3)
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=2)).fit(resumed, dm, ckpt_path=tmp_path / "last.ckpt")
    assert resumed.trainer.global_step == 2


# ------------------------------------------------------------------------------------------------------------
# mid-epoch resume: the same batches as the uninterrupted run (StatefulDataLoader)
class Batches(Callback):
    def __init__(self):
        self.ids = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.ids[trainer.global_step] = batch["input_ids"].clone()


def test_mid_epoch_resume_sees_the_same_batches(tokenizer, tmp_path):
    def module():
        return CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lora_dropout=0.0, lr=1e-2, warmup=0)

    # 12 conversations, batches of 4: 3 a epoch; 5 steps cross into the second epoch
    full, ckpt = Batches(), ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    uninterrupted = module()
    kw = trainer_kwargs(tmp_path, max_steps=5, enable_checkpointing=True)
    L.Trainer(callbacks=[full, ckpt], **kw).fit(uninterrupted, dm_for(tokenizer, n=12))
    mid = tmp_path / "ckpt" / "epoch=0-step=2.ckpt"
    assert mid.is_file()

    again = Batches()
    resumed = module()
    L.Trainer(callbacks=[again], **trainer_kwargs(tmp_path, max_steps=5)).fit(
        resumed, dm_for(tokenizer, n=12), ckpt_path=mid
    )
    assert sorted(again.ids) == list(range(2, 5))
    for step, ids in again.ids.items():
        assert torch.equal(ids, full.ids[step]), f"step {step}"
    assert all(torch.equal(trainable(resumed)[k], v) for k, v in trainable(uninterrupted).items())


# ------------------------------------------------------------------------------------------------------------
# the CLI: fit, resume with --ckpt_path, predict with the JSONL writer
def test_cli_fit_resume_and_predict(tokenizer, tmp_path):
    from lit_early_phase.cli import build_cli

    saved = tmp_path / "tiny"
    tiny_llama().save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in RECORDS[:10]) + "\n")
    common = [
        "--model=lit_early_phase.modules.causal_lm.CausalLMFineTune",
        f"--model.model={saved}",
        "--model.lora_r=4",
        "--model.max_new_tokens=3",
        "--data=lit_early_phase.datamodules.InstructionDataModule",
        f"--data.data={data}",
        "--data.batch_size=4",
        "--data.max_length=48",
        "--data.val_fraction=0.2",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    cli = build_cli(["fit", *common, "--trainer.max_steps=2", "--trainer.num_sanity_val_steps=0"])
    assert cli.trainer.global_step == 2
    (path,) = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    torch.load(path, weights_only=True)
    cli = build_cli(["fit", *common, "--trainer.max_steps=3", f"--ckpt_path={path}"])
    assert cli.trainer.global_step == 3

    out = tmp_path / "predictions.jsonl"
    writer = [
        "--trainer.callbacks+=lit_early_phase.callbacks.JSONLPredictionWriter",
        f"--trainer.callbacks.output_path={out}",
    ]
    build_cli(["predict", *common, *writer, f"--ckpt_path={path}"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2  # the validation split (20 % of 10) serves as test, and its prompts are answered
    assert all(set(r) == {"prompt", "response", "reference"} and isinstance(r["response"], str) for r in rows)
    assert {r["prompt"] for r in rows} <= {r["prompt"] for r in RECORDS[:10]}


# ------------------------------------------------------------------------------------------------------------
# optimizer / lr_scheduler factories are stored as class-path dicts and rebuilt from a weights_only load
def test_optimizer_and_scheduler_factories_round_trip_through_a_weights_only_checkpoint(tokenizer, tmp_path):
    import functools

    def module(**kw):
        return CausalLMFineTune(
            tiny_llama(),
            tokenizer=tokenizer,
            lora_r=4,
            optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
            lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
            **kw,
        )

    lm = module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = L.Trainer(callbacks=[ckpt], **trainer_kwargs(tmp_path, max_steps=2, enable_checkpointing=True))
    trainer.fit(lm, dm_for(tokenizer))
    (optimizer,) = trainer.optimizers
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**2)  # StepLR, stepped per optimizer step
    (path,) = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    hp = torch.load(path, weights_only=True)["hyper_parameters"]
    assert_plain(hp)
    assert hp["optimizer"] == {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.9}}
    assert hp["lr_scheduler"] == {
        "class_path": "torch.optim.lr_scheduler.StepLR",
        "init_args": {"step_size": 1, "gamma": 0.5},
    }

    loaded = CausalLMFineTune.load_from_checkpoint(path, model=tiny_llama(), tokenizer=tokenizer)
    rebuilt = loaded.optimizer_factory([torch.zeros(1, requires_grad=True)])
    assert type(rebuilt) is torch.optim.SGD and rebuilt.defaults["lr"] == 0.05 and rebuilt.defaults["momentum"] == 0.9
    resumed = L.Trainer(**trainer_kwargs(tmp_path, max_steps=3))
    resumed.fit(module(), dm_for(tokenizer), ckpt_path=path, weights_only=True)
    assert resumed.global_step == 3
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**3)


def test_a_lambda_optimizer_is_named_in_the_checkpoint_and_asked_for_again(tokenizer, tmp_path):
    lm = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    trainer = L.Trainer(**trainer_kwargs(tmp_path, max_steps=1))
    trainer.fit(lm, dm_for(tokenizer))
    trainer.save_checkpoint(tmp_path / "lambda.ckpt")
    hp = torch.load(tmp_path / "lambda.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["optimizer"]["class_path"] is None and "<lambda>" in hp["optimizer"]["description"]
    loaded = CausalLMFineTune.load_from_checkpoint(tmp_path / "lambda.ckpt", model=tiny_llama(), tokenizer=tokenizer)
    with pytest.raises(
        RuntimeError, match=r"This CausalLMFineTune was restored.*load_from_checkpoint\(path, optimizer="
    ):
        L.Trainer(**trainer_kwargs(tmp_path, max_steps=2)).fit(loaded, dm_for(tokenizer))


# ------------------------------------------------------------------------------------------------------------
# exact resume with the default lora_dropout: dropout's draws continue those of the uninterrupted run
class Losses(Callback):
    def __init__(self):
        self.loss = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.loss[trainer.global_step] = outputs["loss"].detach().clone()


def straight_and_resumed(tokenizer, tmp_path, max_steps=5):
    """A straight LoRA run of ``max_steps`` with the default ``lora_dropout`` and one resumed from its step-2
    checkpoint, both under ``seed_everything(0)``; the global RNG moves on between them, as in a real resume (a new
    process, other code). Returns the losses by step of each and the two modules."""

    def module():
        return CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lr=1e-2, warmup=0)

    assert module().hparams.lora_dropout == 0.05  # the default, which draws a mask at every step
    L.seed_everything(0, verbose=False)
    full, ckpt = Losses(), ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    uninterrupted = module()
    kw = trainer_kwargs(tmp_path, max_steps=max_steps, enable_checkpointing=True)
    L.Trainer(callbacks=[full, ckpt], **kw).fit(uninterrupted, dm_for(tokenizer, n=12))
    mid = tmp_path / "ckpt" / "epoch=0-step=2.ckpt"
    torch.load(mid, weights_only=True)

    L.seed_everything(0, verbose=False)
    torch.rand(1000)  # the global RNG moves on between the runs
    again, resumed = Losses(), module()
    L.Trainer(callbacks=[again], **trainer_kwargs(tmp_path, max_steps=max_steps)).fit(
        resumed, dm_for(tokenizer, n=12), ckpt_path=mid
    )
    assert sorted(again.loss) == list(range(3, max_steps + 1))
    return full.loss, again.loss, uninterrupted, resumed


def test_resume_with_the_default_lora_dropout_is_bit_identical(tokenizer, tmp_path):
    full, again, uninterrupted, resumed = straight_and_resumed(tokenizer, tmp_path)
    for step, loss in again.items():
        assert torch.equal(loss, full[step]), f"step {step}: {loss.item()} != {full[step].item()}"
    after, before = trainable(resumed), trainable(uninterrupted)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())

    # and the draws matter: without dropout the same run ends elsewhere (the test would pass vacuously otherwise)
    L.seed_everything(0, verbose=False)
    no_dropout = CausalLMFineTune(tiny_llama(), tokenizer=tokenizer, lora_r=4, lora_dropout=0.0, lr=1e-2, warmup=0)
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=5)).fit(no_dropout, dm_for(tokenizer, n=12))
    assert not all(torch.equal(trainable(no_dropout)[k], v) for k, v in before.items())


def test_without_the_dropout_key_the_resumed_run_draws_other_masks(tokenizer, tmp_path, monkeypatch):
    """The key is what makes the resume exact: with ``keyed_device_rng`` a no-op where ``causal_lm`` looks it up,
    the resumed steps draw their masks from the moved-on global RNG, and every resumed loss differs."""
    monkeypatch.setattr(causal_lm, "keyed_device_rng", lambda device, *key: contextlib.nullcontext())
    full, again, _, _ = straight_and_resumed(tokenizer, tmp_path, max_steps=4)
    for step, loss in again.items():
        assert not torch.equal(loss, full[step]), f"step {step}: the same loss {loss.item()} without the key"
