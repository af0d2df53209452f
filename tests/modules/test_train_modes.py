"""Every shipped module trains in train mode (dropout acting) and validates in eval mode.

transformers' ``from_pretrained`` returns a model in eval mode, and Lightning keeps each submodule's mode at fit
start, so a module that does not switch trains with dropout off. The modes are recorded by forward hooks, i.e.
inside ``training_step`` and ``validation_step``, together with the Trainer's stage.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import trainer_kwargs
from llm_helpers import RECORDS, tiny_llama
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import ImageClassifier
from lit_early_phase.datamodules import InstructionDataModule
from lit_early_phase.modules.causal_lm import CausalLMFineTune

EVAL_MODE_WARNING = "module(s) in eval mode at the start of training"


def record_modes(lm: L.LightningModule, root: torch.nn.Module, probe: torch.nn.Module | None = None) -> list[dict]:
    """Forward hooks noting, at each forward of ``root``, the stage and whether every submodule is training."""
    seen: list[dict] = []

    def on_root(module, args):
        seen.append(
            {
                "stage": lm.trainer.state.stage.value,
                "all_train": all(m.training for m in module.modules()),
                "any_train": any(m.training for m in module.modules()),
            }
        )

    root.register_forward_pre_hook(on_root)
    if probe is not None:

        def on_probe(module, args, output):
            seen[-1]["probe_training"] = module.training
            seen[-1]["probe_changed"] = not torch.equal(args[0], output)

        probe.register_forward_hook(on_probe)
    return seen


def assert_modes(seen: list[dict], with_probe: bool = False) -> None:
    train = [s for s in seen if s["stage"] == "train"]
    val = [s for s in seen if s["stage"] in ("validate", "sanity_check")]
    assert train and val, seen
    assert all(s["all_train"] for s in train), train
    assert not any(s["any_train"] for s in val), val
    if with_probe:
        assert all(s["probe_training"] and s["probe_changed"] for s in train), train  # dropout acted
        assert all(not s["probe_training"] and not s["probe_changed"] for s in val), val


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_causal_lm_from_pretrained_trains_in_train_mode(tokenizer, tmp_path, recwarn, lora):
    saved = tmp_path / "tiny"
    tiny_llama(dropout=0.1).save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    kwargs = {"lora_r": 4, "lora_dropout": 0.5} if lora else {}
    lm = CausalLMFineTune(str(saved), **kwargs)  # from_pretrained: the transformers model comes in eval mode
    layer = lm.model.base_model.model.model.layers[0] if lora else None
    probe = layer.self_attn.q_proj.lora_dropout["default"] if lora else None
    seen = record_modes(lm, lm.model, probe)
    dm = InstructionDataModule(RECORDS[:8], batch_size=4, max_length=48, val_fraction=0.25)
    kw = trainer_kwargs(tmp_path, max_steps=2, num_sanity_val_steps=1, val_check_interval=1)
    L.Trainer(**kw).fit(lm, dm)
    assert_modes(seen, with_probe=lora)
    assert not [w for w in recwarn if EVAL_MODE_WARNING in str(w.message)]
    # and a module put in eval mode by the user before fit (e.g. after generating) trains in train mode too
    lm.eval()
    seen.clear()
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=1, limit_val_batches=1, val_check_interval=1)).fit(lm, dm)
    assert_modes(seen, with_probe=lora)


def _image_loader(n=8):
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 1, 16, 16, generator=g), torch.arange(n) % 10)
    return DataLoader(ds, batch_size=4)


def _series_loader(n=8):
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 2, 32, generator=g), torch.arange(n) % 3)
    return DataLoader(ds, batch_size=4)


@pytest.mark.parametrize("case", ["timm", "series_fcn", "module_in_eval_mode"])
def test_image_classifier_trains_in_train_mode(tmp_path, recwarn, case):
    if case == "series_fcn":
        model = ImageClassifier("fcn", num_classes=3, in_chans=2, backbone_kwargs={"widths": (8, 16, 8)})
        loader = _series_loader()
    else:
        import timm

        if case == "timm":
            model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, backbone_kwargs={"drop_rate": 0.5})
        else:  # a pretrained backbone handed over in eval mode, as many loaders return it
            backbone = timm.create_model("test_resnet", num_classes=10, in_chans=1, drop_rate=0.5).eval()
            model = ImageClassifier(backbone, num_classes=10, in_chans=1)
        loader = _image_loader()
    seen = record_modes(model, model.model)
    kw = trainer_kwargs(tmp_path, max_steps=2, num_sanity_val_steps=1, val_check_interval=1, limit_val_batches=1)
    L.Trainer(**kw).fit(model, loader, loader)
    assert_modes(seen)
    assert not [w for w in recwarn if EVAL_MODE_WARNING in str(w.message)]
