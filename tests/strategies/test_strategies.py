"""Each strategy changes exactly the knobs it should, on the real ImageClassifier and real digits."""

import lightning as L
import pytest
import torch
from helpers import ScriptedModule, column, random_loader, read_metrics, trainer_kwargs
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import AlphaBoost, EnlightenmentCallback, HighLossRemoval, ImageClassifier, MixupPause
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.strategies import resolve_strategy

BOUNDARY = 4  # fixed duration in steps, so the tests do not depend on how fast the network learns


class RecordingClassifier(ImageClassifier):
    """The real classifier, keeping each step's per-sample losses, kept mask and mixing parameters."""

    def __init__(self, backbone="test_resnet", **kwargs):
        super().__init__(backbone=backbone, num_classes=10, in_chans=1, **kwargs)
        self.steps = []

    def classification_step(self, inputs, labels, forward):
        out = super().classification_step(inputs, labels, forward)
        self.steps.append({"global_step": self.trainer.global_step, "out": out, "knobs": self.knobs})
        return out


def run(tmp_path, strategy, *, steps=8, **model_kwargs):
    model = RecordingClassifier(**model_kwargs)
    cb = EnlightenmentCallback(strategy=strategy, duration=f"{BOUNDARY}st")
    logger = CSVLogger(tmp_path, name="logs")
    trainer = L.Trainer(callbacks=[cb], max_steps=steps, log_every_n_steps=1, **trainer_kwargs(tmp_path, logger=logger))
    trainer.fit(model, MNIST5kDataModule(batch_size=20, train_subset=400, val_size=40))
    assert cb.boundary_step == BOUNDARY
    return model, read_metrics(tmp_path / "logs")


def test_mixup_pause_applies_alpha_zero_then_the_configured_alpha(tmp_path):
    model, rows = run(tmp_path, MixupPause(), mixup_alpha=0.4)
    inside = [s for s in model.steps if s["global_step"] < BOUNDARY]
    after = [s for s in model.steps if s["global_step"] >= BOUNDARY]
    assert len(inside) == BOUNDARY and len(after) == 4
    for s in inside:
        assert s["out"].mix.params.alpha == 0.0 and not bool(s["out"].mix.params.mixed.any())
        assert bool((s["out"].mix.params.lam == 1).all())
    for s in after:
        assert s["out"].mix.params.alpha == 0.4 and bool(s["out"].mix.params.mixed.all())
        assert s["out"].mix.lam_mean.item() < 1.0
    # what reached the logger is what was applied
    alpha, mixed, lam, phase = (
        column(rows, f"enlightenment/{k}") for k in ("alpha", "mixed_fraction", "lambda_mean", "phase")
    )
    assert [alpha[s] for s in range(8)] == pytest.approx([0.0] * 4 + [0.4] * 4)
    assert [mixed[s] for s in range(8)] == [0.0] * 4 + [1.0] * 4
    assert [phase[s] for s in range(8)] == [1.0] * 4 + [0.0] * 4
    for s in after:
        assert lam[s["global_step"]] == pytest.approx(s["out"].mix.lam_mean.item(), abs=1e-6)
    assert column(rows, "enlightenment/boundary_step") == {BOUNDARY: float(BOUNDARY)}


def test_alpha_boost_applies_boosted_then_configured_alpha(tmp_path):
    model, rows = run(tmp_path, AlphaBoost(alpha=2.0), mixup_alpha=0.2)
    assert [s["out"].mix.params.alpha for s in model.steps] == [2.0] * 4 + [0.2] * 4
    assert all(bool(s["out"].mix.params.mixed.all()) for s in model.steps)
    alpha = column(rows, "enlightenment/alpha")
    assert [alpha[s] for s in range(8)] == pytest.approx([2.0] * 4 + [0.2] * 4)


def test_high_loss_removal_removes_exactly_the_top_losses_then_none(tmp_path):
    model, rows = run(tmp_path, HighLossRemoval(fraction=0.1))
    for s in model.steps:
        losses, kept = s["out"].losses.detach(), s["out"].drop.kept
        if s["global_step"] < BOUNDARY:
            top2 = set(torch.topk(losses, 2).indices.tolist())  # 10 % of 20
            assert set(torch.nonzero(~kept).flatten().tolist()) == top2
            assert s["out"].loss.item() == pytest.approx(losses[kept].mean().item(), rel=1e-5)
        else:
            assert bool(kept.all())
            assert s["out"].loss.item() == pytest.approx(losses.mean().item(), rel=1e-5)
    removed = column(rows, "enlightenment/removed_fraction")
    assert [removed[s] for s in range(8)] == pytest.approx([0.1] * 4 + [0.0] * 4)


def test_auto_picks_mixup_pause_for_mixing_modules_and_removal_otherwise():
    mixing = ImageClassifier("test_resnet", num_classes=10, in_chans=1, cutmix_alpha=1.0)
    plain = ImageClassifier("test_resnet", num_classes=10, in_chans=1)
    assert isinstance(resolve_strategy("auto", mixing), MixupPause)
    assert isinstance(resolve_strategy("auto", plain), HighLossRemoval)


def test_default_callback_just_works(tmp_path):
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.2)
    cb = EnlightenmentCallback()
    trainer = L.Trainer(callbacks=[cb], max_steps=30, **trainer_kwargs(tmp_path))
    trainer.fit(model, MNIST5kDataModule(batch_size=32, train_subset=960, val_size=64))
    assert isinstance(cb.strategy, MixupPause)
    # 30 steps: the default guard (a fifth, step 6) comes before the first check of the running accuracy (step 10)
    assert cb.boundary_step == 6 and cb.num_checks == 0
    assert cb.reason == (
        "max_duration guard 0.2dur reached before enlightenment/running_acc got to 0.5 (never checked)"
    )
    assert model.knobs.mixup_alpha == 0.2


def test_mixup_pause_refuses_a_module_that_does_not_mix(tmp_path):
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1)
    trainer = L.Trainer(
        callbacks=[EnlightenmentCallback(strategy=MixupPause())], max_steps=1, **trainer_kwargs(tmp_path)
    )
    with pytest.raises(ValueError, match=r"MixupPause pauses mixing.*mixup_alpha"):
        trainer.fit(model, MNIST5kDataModule(batch_size=8, train_subset=16, val_size=8))
    assert trainer.global_step == 0


def test_module_without_the_mixin_is_refused_before_training(tmp_path):
    class Plain(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 4)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(callbacks=[EnlightenmentCallback()], max_steps=1, **trainer_kwargs(tmp_path))
    with pytest.raises(TypeError, match="EnlightenmentMixin"):
        trainer.fit(Plain(), random_loader())
    assert trainer.global_step == 0


def test_alpha_boost_refuses_a_module_without_classes(tmp_path):
    model = ScriptedModule()
    model.enlightenment_num_classes = None
    with pytest.raises(ValueError, match="HighLossRemoval"):
        AlphaBoost().check(model)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: AlphaBoost(alpha=0), "alpha"),
        (lambda: AlphaBoost(alpha=1.0, mix_prob=2), "mix_prob"),
        (lambda: AlphaBoost(alpha=1.0, cutmix_alpha=-0.5), r"`cutmix_alpha` must be >= 0 or None, got -0.5"),
        (lambda: HighLossRemoval(fraction=1.0), "drop_fraction"),
        (lambda: HighLossRemoval(fraction=0.0), "removes nothing"),
        (lambda: HighLossRemoval(count=-2), "drop_count"),
    ],
)
def test_strategy_arguments_are_validated(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_high_loss_removal_removes_non_finite_losses_with_zero_gradient_on_the_classifier(tmp_path):
    """Sample 3 of every batch overflows the logits (inf - inf = NaN loss). Inside the period High-Loss Removal
    removes it first (it uses one of the two removals), the loss is the mean of the rest and the parameters stay
    finite; after the period (removal off) the loss is NaN, as in plain training, and a warning says so."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():
        net[1].weight[0].fill_(0.01)  # 784 x 0.01 x 1e38 overflows float32 for class 0
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g)
    x[3::10] = 1e38
    model = RecordingClassifier(backbone=net)
    finite_params = []

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            finite_params.append(all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()))

    cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.2), duration="2st")
    trainer = L.Trainer(callbacks=[cb, Watch()], max_steps=3, **trainer_kwargs(tmp_path))
    with pytest.warns(UserWarning, match=r"per-sample training loss\(es\) were NaN or inf"):
        trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=10))
    inside, after = model.steps[:2], model.steps[2]
    for s in inside:
        losses, kept = s["out"].losses.detach(), s["out"].drop.kept
        assert not torch.isfinite(losses[3]) and int(s["out"].drop.num_nonfinite) == 1
        highest_finite = int(torch.where(torch.isfinite(losses), losses, -1.0).argmax())
        assert set(torch.nonzero(~kept).flatten().tolist()) == {3, highest_finite}
        assert s["out"].loss.item() == pytest.approx(losses[kept].mean().item(), rel=1e-5)
        assert float(s["out"].drop.removed_fraction) == pytest.approx(0.2)
    assert finite_params[:2] == [True, True]  # the removed sample sent no NaN into the weights
    assert bool(after["out"].drop.kept.all()) and torch.isnan(after["out"].loss)
