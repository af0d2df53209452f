"""Manifold Mixup in `ImageClassifier` (`mix_at="manifold"`): values, the knobs' strategies, the probe, resume.

On timm's `test_resnet` and a tiny ViT (img_size 28, patch 4, depth 2, built offline), with MNIST5k digits.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import trainer_kwargs
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lit_early_phase import EnlightenmentCallback, EnlightenmentDiagnostics, ImageClassifier
from lit_early_phase import keys as K
from lit_early_phase._compat import batches_started
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.functional import (
    flatten,
    interference_ratio,
    keyed_generator,
    sample_block,
    sample_mix_params,
    smooth_one_hot,
)
from lit_early_phase.modules.manifold import default_manifold_blocks, manifold_forward
from lit_early_phase.strategies import AlphaBoost

VIT = {"img_size": 28, "patch_size": 4, "depth": 2}
SEED = 7


def _resnet(**kw) -> ImageClassifier:
    return ImageClassifier("test_resnet", num_classes=10, in_chans=1, mix_at="manifold", mix_seed=SEED, **kw)


def _vit(**kw) -> ImageClassifier:
    return ImageClassifier(
        "vit_tiny_patch16_224", num_classes=10, in_chans=1, mix_at="manifold", mix_seed=SEED, backbone_kwargs=VIT, **kw
    )


BUILDERS = {"resnet": _resnet, "vit": _vit}


def _batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def _capture(module: torch.nn.Module, store: list) -> torch.utils.hooks.RemovableHandle:
    return module.register_forward_hook(lambda m, a, out: store.append(out.detach().clone()))


# -- construction ------------------------------------------------------------------------------------------------
def test_default_blocks_of_timm_resnet_and_vit():
    assert _resnet(mixup_alpha=0.2).manifold_blocks == ("maxpool", "layer1", "layer2", "layer3")
    assert _vit(mixup_alpha=0.2).manifold_blocks == ("patch_embed", "blocks.0")  # depth 2: blocks[:-1]
    assert ImageClassifier("test_resnet", num_classes=10, in_chans=1).manifold_blocks == ()  # mix_at="input"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backbone": "test_resnet", "mix_at": "hidden"}, r"`mix_at` must be one of .*'hidden'"),
        ({"backbone": "test_resnet", "mix_at": "manifold", "cutmix_alpha": 1.0}, r"cutmix_alpha=1.0.*hidden state"),
        ({"backbone": "test_resnet", "manifold_blocks": ["layer1"]}, r"only used with `mix_at='manifold'`"),
        ({"backbone": "test_resnet", "mix_at": "manifold", "manifold_blocks": ["layer9"]}, r"'layer9'.*layer1"),
        ({"backbone": "test_resnet", "mix_at": "manifold", "manifold_blocks": []}, r"non-empty list"),
        ({"backbone": "test_resnet", "mix_at": "manifold", "manifold_blocks": "layer1"}, r"non-empty list"),
        ({"backbone": "test_resnet", "mix_at": "manifold", "manifold_blocks": ["layer1"] * 2}, r"twice"),
        ({"backbone": "fcn", "in_chans": 2, "mix_at": "manifold"}, r"no default blocks for the backbone FCN.*blocks"),
    ],
)
def test_bad_manifold_arguments_fail_at_construction(kwargs, match):
    kwargs = {"num_classes": 10, "in_chans": 1, "mixup_alpha": 0.2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ImageClassifier(**kwargs)


def test_default_blocks_refuse_a_plain_module():
    with pytest.raises(ValueError, match=r"no default blocks.*Sequential.*\['0', '1'\]"):
        default_manifold_blocks(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))


def test_series_backbone_with_named_blocks_mixes_there():
    model = ImageClassifier("fcn", num_classes=3, in_chans=2, mixup_alpha=1.0, mix_at="manifold",
                            manifold_blocks=["blocks.0", "blocks.1"])  # fmt: skip
    seen: list = []
    _capture(model.model.get_submodule("blocks.0"), seen)
    _capture(model.model.get_submodule("blocks.1"), seen)
    step = model.classification_step(torch.randn(4, 2, 30), torch.tensor([0, 1, 2, 0]), model.model,
                                     manifold_blocks=model.manifold_blocks)  # fmt: skip
    assert model.enlightenment_record.block in ("blocks.0", "blocks.1") and step.logits.shape == (4, 3)


# -- values: the block, λ, the hidden state, the input, the targets ----------------------------------------------
@pytest.mark.parametrize("arch", ["resnet", "vit"])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_the_drawn_block_is_mixed_with_the_drawn_lambda_and_pairing(arch, mode):
    """Outside a Trainer the n-th call draws from keyed_generator(seed, n): replay it and compare values."""
    model = BUILDERS[arch](mixup_alpha=1.0, mix_mode=mode, label_smoothing=0.1)
    blocks = model.manifold_blocks
    x, y = _batch()
    net = model.model
    for call in (1, 2, 3):
        g = keyed_generator(SEED, call)
        params = sample_mix_params(6, (28, 28), mixup_alpha=1.0, mode=mode, generator=g)
        block = blocks[sample_block(len(blocks), generator=g)]

        clean: list = []
        handle = _capture(net.get_submodule(block), clean)
        with torch.no_grad():
            net(x)  # the block's output without mixing (train mode, same weights, same batch)
        handle.remove()

        mixed: list = []
        inputs: list = []
        handle = _capture(net.get_submodule(block), mixed)  # runs after the mixing hook: sees the mixed state
        pre = net.register_forward_pre_hook(lambda m, a, store=inputs: store.append(a[0].clone()))
        step = model.classification_step(x, y, net, manifold_blocks=blocks)
        handle.remove()
        pre.remove()

        rec = model.enlightenment_record
        assert rec.block == block and rec.alpha == 1.0
        assert torch.equal(step.mix.params.partner, params.partner)
        assert torch.allclose(step.mix.params.lam, params.lam)
        assert torch.allclose(rec.lambda_mean, params.lam_mean) and float(rec.mixed_fraction) == 1.0
        h, lam = clean[0], params.lam.view(-1, *[1] * (clean[0].dim() - 1))
        expected = lam * h + (1 - lam) * h[params.partner]
        assert torch.allclose(mixed[0], expected, atol=1e-5), (arch, block)
        assert not torch.allclose(mixed[0], h, atol=1e-3)
        assert torch.equal(inputs[0], x) and torch.equal(step.mix.inputs, x)  # the input is left unmixed
        one_hot = smooth_one_hot(y, 10, smoothing=0.1)
        lam2 = params.lam.view(-1, 1)
        assert torch.allclose(step.mix.targets, lam2 * one_hot + (1 - lam2) * one_hot[params.partner])
    assert model.enlightenment_state.mix_calls == 3


def test_every_candidate_block_gets_drawn_and_only_it_is_mixed():
    model = _resnet(mixup_alpha=1.0)
    x, y = _batch()
    used = []
    for _ in range(24):
        model.classification_step(x, y, model.model, manifold_blocks=model.manifold_blocks)
        used.append(model.enlightenment_record.block)
    assert set(used) == set(model.manifold_blocks)
    assert not model.model.layer1._forward_hooks  # the hook lives for one forward only


def test_no_mixing_when_alpha_is_zero_or_the_gate_is_closed():
    model = _resnet(mixup_alpha=0.0)
    x, y = _batch()
    step = model.classification_step(x, y, model.model, manifold_blocks=model.manifold_blocks)
    rec = model.enlightenment_record
    assert rec.block is None and float(rec.lambda_mean) == 1.0 and float(rec.mixed_fraction) == 0.0
    assert torch.equal(step.mix.targets, smooth_one_hot(y, 10))
    gated = _resnet(mixup_alpha=1.0, mix_prob=1e-9)
    gated.classification_step(x, y, gated.model, manifold_blocks=gated.manifold_blocks)
    assert gated.enlightenment_record.block is None


def test_block_called_twice_or_not_at_all_is_a_clear_error():
    params = sample_mix_params(4, (), mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
    act = torch.nn.ReLU()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 8), act, torch.nn.Linear(8, 8), act,
                              torch.nn.Linear(8, 3), torch.nn.Identity())  # fmt: skip
    x, y = torch.randn(4, 8), torch.arange(4) % 3
    with pytest.raises(RuntimeError, match="called more than once"):
        manifold_forward(net, "2", x, y, params, num_classes=3)

    class Unused(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.spare = torch.nn.Linear(8, 3), torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.head(x)

    unused = Unused()
    with pytest.raises(RuntimeError, match="'spare' was not called"):
        manifold_forward(unused, "spare", x, y, params, num_classes=3)
    assert not act._forward_hooks and not unused.spare._forward_hooks


def test_grad_checkpointing_is_refused_rather_than_giving_unmixed_gradients():
    model = _vit(mixup_alpha=1.0)
    model.model.set_grad_checkpointing(True)
    x, y = _batch()
    with pytest.raises(RuntimeError, match="gradient checkpointing"):
        model.classification_step(x, y, model.model, manifold_blocks=model.manifold_blocks)
    model.model.set_grad_checkpointing(False)
    model.classification_step(x, y, model.model, manifold_blocks=model.manifold_blocks)


# -- the probe of the diagnostics --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_probe_loss_mixes_at_a_drawn_block(arch):
    model = BUILDERS[arch](mixup_alpha=0.2)
    x, y = _batch()
    g = torch.Generator().manual_seed(3)
    params = sample_mix_params(6, (28, 28), mixup_alpha=1.0, generator=g)
    block = model.manifold_blocks[sample_block(len(model.manifold_blocks), generator=g)]
    seen: list = []
    handle = _capture(model.model.get_submodule(block), seen)
    loss = model.probe_loss((x, y), mixup_alpha=1.0, generator=torch.Generator().manual_seed(3))
    handle.remove()
    logits, out = manifold_forward(model.model, block, x, y, params, num_classes=10)
    expected = -(out.targets * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    clean = model.probe_loss((x, y), mixup_alpha=0.0, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, clean)
    assert len(seen) == 1  # the block ran once, mixed
    assert loss.requires_grad


def test_the_diagnostics_interference_probe_mixes_at_a_block(tmp_path):
    """EnlightenmentDiagnostics' interference on the manifold classifier equals the manifold probe's, and differs
    from the same weights probed with input Mixup."""
    model = _resnet(mixup_alpha=0.4)
    diag = EnlightenmentDiagnostics(every_n_steps=2, probe_size=8, probe_seed=5)
    dm = MNIST5kDataModule(batch_size=16, train_subset=64, val_size=16)
    L.Trainer(max_steps=4, callbacks=[diag], **trainer_kwargs(tmp_path, limit_val_batches=0)).fit(model, dm)
    assert [row["step"] for row in diag.history if K.INTERFERENCE in row] == [2.0, 4.0]
    model.train()
    measured = diag.measure_probe(model)[K.INTERFERENCE]

    def by_hand(module: ImageClassifier) -> float:
        params = [p for p in module.parameters() if p.requires_grad]
        grads = []
        for alpha in (0.0, 0.4):
            loss = module.probe_loss(diag._probe, mixup_alpha=alpha, generator=torch.Generator().manual_seed(5))
            grads.append(flatten(torch.autograd.grad(loss, params, allow_unused=True)))
        return float(interference_ratio(grads[1], grads[0]))

    twin = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    twin.load_state_dict(model.state_dict())
    twin.train()
    assert measured == pytest.approx(by_hand(model), rel=1e-4)
    assert measured != pytest.approx(by_hand(twin), rel=1e-2)


# -- through the Trainer: Mixup Pause, Alpha Boost, resume -------------------------------------------------------
class Trace(Callback):
    """What each step applied, the key of its draws, and what the network received as input."""

    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}
        self._inputs: list = []

    def on_train_start(self, trainer, pl_module):
        pl_module.model.register_forward_pre_hook(lambda m, a: self._inputs.append(a[0].detach().clone()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.rows[trainer.global_step] = {
            "key": (trainer.current_epoch, batches_started(trainer)),
            "block": rec.block,
            "alpha": rec.alpha,
            "lambda": float(rec.lambda_mean),
            "mixed": float(rec.mixed_fraction),
            "loss": float(outputs["loss"]),
            "input_unmixed": torch.equal(self._inputs[-1], batch[0]),
        }


def _expected(row: dict, alpha: float, blocks: tuple[str, ...]) -> tuple[float, str]:
    g = keyed_generator(SEED, 0, *row["key"])
    params = sample_mix_params(16, (28, 28), mixup_alpha=alpha, generator=g)
    return params.batch_lam, blocks[sample_block(len(blocks), generator=g)]


def _fit(model, tmp_path, cb, *, steps, ckpt_path=None, save_every=None):
    trace = Trace()
    callbacks = [cb, trace]
    if save_every:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=save_every, save_top_k=-1,
                                         filename="{step}"))  # fmt: skip
    dm = MNIST5kDataModule(batch_size=16, train_subset=80, val_size=16)
    kw = trainer_kwargs(tmp_path, limit_val_batches=0, enable_checkpointing=bool(save_every))
    L.Trainer(max_steps=steps, callbacks=callbacks, **kw).fit(model, dm, ckpt_path=ckpt_path)
    return trace


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_mixup_pause_switches_manifold_mixup_off_then_on(tmp_path, arch):
    """The shipped classifier, a 3-step pause: no block mixed inside it, the drawn block and λ after it."""
    model = BUILDERS[arch](mixup_alpha=0.4)
    cb = EnlightenmentCallback(strategy="mixup_pause", duration="3st")
    trace = _fit(model, tmp_path, cb, steps=7)
    assert cb.boundary_step == 3
    rows = trace.rows
    for step in (1, 2, 3):  # inside the period
        assert rows[step]["block"] is None and rows[step]["alpha"] == 0.0
        assert rows[step]["mixed"] == 0.0 and rows[step]["lambda"] == 1.0
    for step in (4, 5, 6, 7):  # after it: the knobs' α, the drawn block and λ
        lam, block = _expected(rows[step], 0.4, model.manifold_blocks)
        assert rows[step]["alpha"] == 0.4 and rows[step]["mixed"] == 1.0
        assert rows[step]["block"] == block and rows[step]["lambda"] == pytest.approx(lam)
    assert all(r["input_unmixed"] for r in rows.values())


def test_alpha_boost_alpha_reaches_the_manifold_draw(tmp_path):
    model = _resnet(mixup_alpha=0.1)
    cb = EnlightenmentCallback(strategy=AlphaBoost(alpha=4.0), duration="3st")
    rows = _fit(model, tmp_path, cb, steps=5).rows
    for step, alpha in ((1, 4.0), (2, 4.0), (3, 4.0), (4, 0.1), (5, 0.1)):
        lam, block = _expected(rows[step], alpha, model.manifold_blocks)
        other, _ = _expected(rows[step], 4.1 - alpha, model.manifold_blocks)
        assert rows[step]["alpha"] == alpha and rows[step]["block"] == block
        assert rows[step]["lambda"] == pytest.approx(lam) and lam != pytest.approx(other)


def test_alpha_boost_with_cutmix_fails_at_the_first_step(tmp_path):
    model = _resnet(mixup_alpha=0.1)
    cb = EnlightenmentCallback(strategy=AlphaBoost(alpha=1.0, cutmix_alpha=1.0), duration="3st")
    with pytest.raises(RuntimeError, match=r"CutMix α=1.0 is in force.*AlphaBoost"):
        _fit(model, tmp_path, cb, steps=2)


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_resume_from_a_weights_only_checkpoint_replays_blocks_and_lambdas(tmp_path, arch):
    """Checkpoint at step 3 of 5-batch epochs (mid-epoch); the resumed steps 4..8 equal the uninterrupted run."""
    full = _fit(BUILDERS[arch](mixup_alpha=1.0), tmp_path / "full", EnlightenmentCallback(), steps=8, save_every=3)
    path = tmp_path / "full" / "ckpt" / "step=3.ckpt"
    assert torch.load(path, weights_only=True)["hyper_parameters"]["mix_at"] == "manifold"
    resumed = _fit(BUILDERS[arch](mixup_alpha=1.0), tmp_path / "resumed", EnlightenmentCallback(), steps=8,
                   ckpt_path=path)  # fmt: skip
    assert sorted(resumed.rows) == [4, 5, 6, 7, 8]
    for step in range(4, 9):
        a, b = full.rows[step], resumed.rows[step]
        assert a["block"] is not None and (a["key"], a["block"], a["lambda"]) == (b["key"], b["block"], b["lambda"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert len({full.rows[s]["block"] for s in full.rows}) > 1


def test_command_line_trains_with_manifold_mixup(tmp_path):
    """`--model.mix_at manifold --model.manifold_blocks '[layer1, layer2]'` through the package's LightningCLI."""
    from lit_early_phase.cli import build_cli

    cli = build_cli(
        [
            "--model", "ImageClassifier", "--model.backbone", "test_resnet", "--model.in_chans", "1",
            "--model.mixup_alpha", "0.4", "--model.mix_at", "manifold", "--model.manifold_blocks", "[layer1, layer2]",
            "--data", "MNIST5kDataModule", "--data.train_subset", "64", "--data.val_size", "16",
            "--data.batch_size", "16",
            "--trainer.fast_dev_run=2", "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ],
        run=False,
    )  # fmt: skip
    assert cli.model.manifold_blocks == ("layer1", "layer2") and cli.model.num_classes == 10
    trace = Trace()
    cli.trainer.callbacks.append(trace)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 2 and {r["block"] for r in trace.rows.values()} <= {"layer1", "layer2"}
    assert [r["mixed"] for r in trace.rows.values()] == [1.0, 1.0]
