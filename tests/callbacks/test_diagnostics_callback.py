"""EnlightenmentDiagnostics on the shipped ImageClassifier: every key at the interval, values equal to the pure
functions on the same probe, hooks removed, training untouched, weights-only resume, clear errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import ScriptedModule, column, random_loader, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from lit_early_phase import EnlightenmentCallback, EnlightenmentDiagnostics, ImageClassifier
from lit_early_phase import keys as K
from lit_early_phase.callbacks import diagnostics as D
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.functional import benr, dead_fraction, flatten, interference_ratio
from lit_early_phase.reporting.figure import figure_data

EVERY = 4
STEPS = 12


def _model(**kw) -> ImageClassifier:
    return ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4, mix_seed=0, **kw)


def _dm() -> MNIST5kDataModule:
    return MNIST5kDataModule(batch_size=16, train_subset=128, val_size=16)


class ParamLog(Callback):
    """The trainable parameters after every optimizer step (the test's own record for BENR)."""

    def __init__(self) -> None:
        self.params: dict[int, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.params[trainer.global_step] = flatten([p for p in pl_module.parameters() if p.requires_grad]).clone()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.params[trainer.global_step] = flatten([p for p in pl_module.parameters() if p.requires_grad]).clone()


class HookCount(Callback):
    """Forward hooks on the model at every batch start (the diagnostics' hooks must be gone by then)."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.counts.append(sum(len(m._forward_hooks) for m in pl_module.modules()))


def _fit(
    tmp_path: Path, diag: EnlightenmentDiagnostics | None, *extra: Callback, model_kw=None, steps: int = STEPS, **kw
) -> L.Trainer:
    L.seed_everything(0)  # before the model: the same initial weights in every run
    model = _model(**(model_kw or {}))
    args = trainer_kwargs(tmp_path, log_every_n_steps=1, limit_val_batches=0) | kw
    callbacks = [c for c in (diag, *extra) if c is not None]
    trainer = L.Trainer(max_steps=steps, callbacks=callbacks, **args)
    trainer.fit(model, _dm())
    return trainer


def test_every_key_at_the_interval_with_the_pure_functions_values(tmp_path):
    diag, params, hooks = EnlightenmentDiagnostics(every_n_steps=EVERY, probe_size=8), ParamLog(), HookCount()
    trainer = _fit(tmp_path, diag, params, hooks, logger=CSVLogger(tmp_path))
    model = trainer.lightning_module
    rows = read_metrics(tmp_path)
    checks = list(range(EVERY, STEPS + 1, EVERY))
    log_steps = [s - 1 for s in checks]  # Lightning writes optimizer step s's values at step s - 1
    layers = [name for name, m in model.named_modules() if isinstance(m, D.ACTIVATIONS)]
    assert layers
    for key in (
        K.BENR,
        K.DEAD_MEAN,
        K.DEAD_MIXED,
        K.INTERFERENCE,
        K.MIXED_COSINE,
        *(K.dead_layer_key(n) for n in layers),
    ):
        assert sorted(column(rows, key)) == log_steps, key
    assert sorted(column(rows, K.ATD)) == log_steps[1:]  # a distance needs a previous check
    # once per epoch, at the step Lightning writes the epoch's own metrics
    assert sorted(column(rows, K.BENR_EPOCH)) == sorted(column(rows, "train/acc_epoch")) == [7, 11]
    # BENR from the test's own parameter record
    for check in checks:
        updates = [params.params[s] - params.params[s - 1] for s in range(check - EVERY + 1, check + 1)]
        expected = benr(sum(float(u.norm()) for u in updates), params.params[check] - params.params[check - EVERY])
        assert column(rows, K.BENR)[check - 1] == pytest.approx(float(expected), rel=1e-5)
    # the last check is at the last step: recompute the probe values on the trained model
    probe = diag._probe
    assert probe[0].shape[0] == 8
    model.train()
    outs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().clone())) for _, m in
               ((n, m) for n, m in model.named_modules() if isinstance(m, D.ACTIVATIONS))]  # fmt: skip
    params_ = [p for p in model.parameters() if p.requires_grad]
    clean = model.probe_loss(probe, mixup_alpha=0.0, generator=torch.Generator().manual_seed(0))
    for h in handles:
        h.remove()
    mixed_outs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: mixed_outs.append(o.detach().clone())) for _, m in
               ((n, m) for n, m in model.named_modules() if isinstance(m, D.ACTIVATIONS))]  # fmt: skip
    mixed = model.probe_loss(probe, mixup_alpha=0.4, generator=torch.Generator().manual_seed(0))
    for h in handles:
        h.remove()
    g_clean = flatten(torch.autograd.grad(clean, params_, allow_unused=True))
    g_mix = flatten(torch.autograd.grad(mixed, params_, allow_unused=True))
    last = STEPS - 1
    assert column(rows, K.INTERFERENCE)[last] == pytest.approx(float(interference_ratio(g_mix, g_clean)), rel=1e-4)
    for name, out in zip(layers, outs, strict=True):
        assert column(rows, K.dead_layer_key(name))[last] == pytest.approx(float(dead_fraction(out)), abs=1e-6)
    expected_mixed = sum(float(dead_fraction(o)) for o in mixed_outs) / len(mixed_outs)
    assert column(rows, K.DEAD_MIXED)[last] == pytest.approx(expected_mixed, abs=1e-6)
    # hooks only while probing
    assert set(hooks.counts) == {0}
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    assert [h["step"] for h in diag.history if K.BENR in h] == checks


def test_training_is_the_same_with_and_without_the_diagnostics(tmp_path):
    """Probes run in training mode, but BatchNorm statistics, dropout's RNG and the gradients are left as they were."""
    dropout = {"backbone_kwargs": {"drop_rate": 0.3}}
    # 4 steps, two probes: each probe would show in the weights, BatchNorm statistics or dropout's draws after it
    plain = _fit(tmp_path / "a", None, model_kw=dropout, steps=4).lightning_module
    diag = _fit(tmp_path / "b", EnlightenmentDiagnostics(every_n_steps=2), model_kw=dropout, steps=4)
    a, b = plain.state_dict(), diag.lightning_module.state_dict()
    assert any("running_mean" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_boundary_figure_gets_the_diagnostics(tmp_path):
    cb, diag = EnlightenmentCallback(verbose=False, figure=False), EnlightenmentDiagnostics(every_n_steps=EVERY)
    _fit(tmp_path, diag, cb)
    metrics = cb.report.history.metrics
    assert [s for s, _ in metrics[K.INTERFERENCE]] == [s - 1 for s in range(EVERY, STEPS + 1, EVERY)]
    drawn = figure_data(cb.figure())
    for key in (K.INTERFERENCE, K.DEAD_MEAN, K.BENR):
        assert [y for _, y in drawn[key]] == pytest.approx([h[key] for h in diag.history if key in h])


def test_resume_keeps_the_probe_and_the_history_weights_only(tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=EVERY * 2, save_top_k=-1)
    first = EnlightenmentDiagnostics(every_n_steps=EVERY)
    _fit(tmp_path, first, ckpt, steps=EVERY * 2, enable_checkpointing=True)  # stops at the checkpoint it resumes
    path = tmp_path / "ckpt" / f"epoch=0-step={EVERY * 2}.ckpt"
    state = torch.load(path, weights_only=True)
    saved = next(v for k, v in state["callbacks"].items() if "EnlightenmentDiagnostics" in k)
    assert [h["step"] for h in saved["history"] if K.BENR in h] == [EVERY, 2 * EVERY]
    resumed = EnlightenmentDiagnostics(every_n_steps=EVERY)
    L.seed_everything(0)
    trainer = L.Trainer(max_steps=STEPS, callbacks=[resumed], **trainer_kwargs(tmp_path, limit_val_batches=0))
    trainer.fit(_model(), _dm(), ckpt_path=path)
    assert torch.equal(resumed._probe[0], first._probe[0])
    assert [h["step"] for h in resumed.history if K.BENR in h] == list(range(EVERY, STEPS + 1, EVERY))


def test_a_module_without_probe_loss_gets_benr_only(tmp_path, caplog):
    diag = EnlightenmentDiagnostics(every_n_steps=2)
    L.seed_everything(0)
    trainer = L.Trainer(max_steps=4, callbacks=[diag], **trainer_kwargs(tmp_path))
    with caplog.at_level("INFO"):
        trainer.fit(ScriptedModule(), random_loader())
    assert [sorted(h) for h in diag.history if "step" in h and K.BENR in h] == [["diagnostics/benr", "step"]] * 2
    assert all(math.isfinite(h[K.BENR]) for h in diag.history if K.BENR in h)
    assert "has no `probe_loss`" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"probe_size": 1}, "probe_size"),
        ({"probe_alpha": -0.1}, "probe_alpha"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnlightenmentDiagnostics(**kwargs)


class SharedReLU(torch.nn.Module):
    """One ReLU module called twice (as torchvision's ResNet blocks do) and one never called."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.relu, self.unused = torch.nn.ReLU(), torch.nn.GELU()
        self.head = torch.nn.Linear(4, 10)

    def forward(self, x):
        h = self.relu(self.conv(x))
        return self.head(self.relu(h - 0.1).mean((2, 3)))


def test_a_reused_activation_counts_every_call_and_an_unused_one_none(tmp_path):
    diag = EnlightenmentDiagnostics(every_n_steps=2, probe_size=8)
    L.seed_everything(0)
    model = ImageClassifier(SharedReLU(), num_classes=10, in_chans=1, mixup_alpha=0.4, mix_seed=0)
    trainer = L.Trainer(max_steps=4, callbacks=[diag], **trainer_kwargs(tmp_path, limit_val_batches=0))
    trainer.fit(model, _dm())
    checks = [h for h in diag.history if K.INTERFERENCE in h]
    assert [sorted(k for k in h if k.startswith(K.DEAD_LAYER_PREFIX)) for h in checks] == [
        [K.dead_layer_key("model.relu")]
    ] * 2
    assert K.ATD in checks[1]
    x = diag._probe[0]
    with torch.no_grad():
        first = model.model.relu(model.model.conv(x))
        second = model.model.relu(first - 0.1)
    expected = float(dead_fraction(torch.cat([first.flatten(), second.flatten()])))
    assert checks[-1][K.dead_layer_key("model.relu")] == pytest.approx(expected, abs=1e-6)
