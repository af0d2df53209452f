"""The boundary step for threshold, chance-adjusted, fixed durations and guards, on a scripted accuracy."""

import math

import lightning as L
import pytest
import torch
from helpers import ScriptedModule, random_loader, trainer_kwargs

from lit_early_phase import EnlightenmentCallback, HighLossRemoval


def expected_metric_step(threshold: float, every: int, *, chance: float | None = None, min_step: int = 0) -> int:
    """First check step s (multiple of `every`) where the scripted accuracy of the last batch (s - 1)/100
    reaches the threshold. Batch i runs at global_step i and is checked after the optimizer step, at i + 1."""
    s = every
    while True:
        acc = (s - 1) / 100
        value = acc if chance is None else (acc - chance) / (1 - chance)
        if value >= threshold - 1e-9 and s >= min_step:
            return s
        s += every


def fit(tmp_path, cb, *, epochs=2, n=800, batch_size=8, **kw):
    model = ScriptedModule(**kw)
    trainer = L.Trainer(callbacks=[cb], max_epochs=epochs, **trainer_kwargs(tmp_path))
    trainer.fit(model, random_loader(n=n, batch_size=batch_size, num_classes=kw.get("num_classes", 4)))
    return model, trainer


@pytest.mark.parametrize(("threshold", "every"), [(0.5, 10), (0.5, 1), (0.5, 7), (0.3, 4), (0.73, 5)])
def test_threshold_boundary_step(tmp_path, threshold, every):
    cb = EnlightenmentCallback(
        strategy=HighLossRemoval(),
        threshold=threshold,
        window=1,
        check_every_n_steps=every,
        max_duration=None,
    )
    model, _ = fit(tmp_path, cb)
    expected = expected_metric_step(threshold, every)
    assert cb.boundary_step == expected
    assert not cb.in_period and cb.boundary_epoch == 0
    # the strategy's knob was in force exactly for the steps before the boundary
    dropping = [t["step"] for t in model.trace if t["drop_fraction"] > 0]
    assert dropping == list(range(expected))


def test_chance_adjusted_threshold(tmp_path):
    cb = EnlightenmentCallback(
        strategy="high_loss_removal",
        threshold=0.5,
        chance_adjusted=True,
        window=1,
        check_every_n_steps=1,
        max_duration=None,
    )
    fit(tmp_path, cb, num_classes=4)
    # (acc - 1/4) / (3/4) >= 0.5  <=>  acc >= 0.625
    assert cb.boundary_step == expected_metric_step(0.5, 1, chance=0.25) == 64


def test_running_window_averages_recent_batches(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", window=10, check_every_n_steps=10, max_duration=None)
    fit(tmp_path, cb)
    # window over batches s-10 .. s-1: mean (s - 5.5)/100 >= 0.5  -> s >= 55.5 -> first multiple of 10 is 60
    assert cb.boundary_step == 60
    assert cb.last_value == pytest.approx(sum(range(50, 60)) / 1000)


@pytest.mark.parametrize(
    ("kwargs", "expected_step", "reason"),
    [
        ({"duration": "30st"}, 30, "fixed duration 30st"),
        ({"duration": "1ep"}, 100, "fixed duration 1ep"),
        ({"duration": 0.1}, 20, "fixed duration 0.1"),  # 10 % of 2 epochs x 100 steps
        ({"duration": "25%"}, 50, "fixed duration 25%"),
        ({"max_duration": "20st"}, 20, "max_duration guard 20st"),
        ({"max_duration": "0.05dur"}, 10, "max_duration guard 0.05dur"),
        ({"min_duration": "75st", "check_every_n_steps": 10}, 80, "threshold 0.5"),
        ({"min_duration": "1ep", "check_every_n_steps": 10}, 110, "threshold 0.5"),
    ],
)
def test_fixed_durations_and_guards(tmp_path, kwargs, expected_step, reason):
    base = {"strategy": "high_loss_removal", "window": 1, "check_every_n_steps": 10, "max_duration": None}
    cb = EnlightenmentCallback(**{**base, **kwargs})
    model, _ = fit(tmp_path, cb)
    assert cb.boundary_step == expected_step
    assert reason in cb.reason
    assert [t["step"] for t in model.trace if t["drop_fraction"] > 0] == list(range(expected_step))


def test_period_is_a_latch(tmp_path):
    """Accuracy that rises above the threshold and falls again never restarts the period."""

    def up_then_down(i, rank):
        return 0.9 if 20 <= i < 30 else 0.1

    cb = EnlightenmentCallback(strategy="high_loss_removal", window=1, check_every_n_steps=1, max_duration=None)
    model, _ = fit(tmp_path, cb, schedule=up_then_down)
    assert cb.boundary_step == 21
    assert all(t["drop_fraction"] == 0 for t in model.trace if t["step"] >= 21)


def test_never_reaching_threshold_keeps_the_period(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", window=1, max_duration=None)
    model, _ = fit(tmp_path, cb, schedule=lambda i, r: 0.1, epochs=1)
    assert cb.in_period and cb.boundary_step is None
    assert all(t["drop_fraction"] > 0 for t in model.trace)


def test_default_max_guard_is_a_fifth_of_the_run(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal")
    fit(tmp_path, cb, schedule=lambda i, r: 0.1, epochs=2)
    assert cb.boundary_step == math.ceil(0.2 * 200)
    assert "max_duration guard 0.2dur" in cb.reason


def test_monitor_logged_validation_metric(tmp_path):
    """val/acc is checked when validation produces it: epoch e logs 0.2 * (e + 1)."""
    cb = EnlightenmentCallback(strategy="high_loss_removal", monitor="val/acc", threshold=0.55, max_duration=None)
    model = ScriptedModule(val_schedule=lambda epoch: 0.2 * (epoch + 1))
    trainer = L.Trainer(callbacks=[cb], max_epochs=4, **trainer_kwargs(tmp_path))
    trainer.fit(model, random_loader(n=80), val_dataloaders=random_loader(n=16))
    assert cb.boundary_epoch == 2 and cb.boundary_step == 30  # 0.6 at the end of epoch 2 (10 steps an epoch)


def test_missing_monitor_lists_logged_metrics(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", monitor="val/accuracy", max_duration=None)
    model = ScriptedModule(val_schedule=lambda epoch: 0.1)
    trainer = L.Trainer(callbacks=[cb], max_epochs=1, **trainer_kwargs(tmp_path))
    with pytest.raises(RuntimeError, match=r"'val/accuracy'.*'val/acc'\]"):
        trainer.fit(model, random_loader(n=80), val_dataloaders=random_loader(n=16))


def test_warns_when_threshold_is_at_chance(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", duration=None, max_duration="5st")
    with pytest.warns(UserWarning, match="at or below chance"):
        fit(tmp_path, cb, num_classes=2, epochs=1, n=80)


def test_warns_when_boundary_falls_at_first_check(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", window=1, max_duration=None)
    with pytest.warns(UserWarning, match="first check"):
        fit(tmp_path, cb, schedule=lambda i, r: 0.95, epochs=1, n=160)
    assert cb.boundary_step == 10


def first_of_cycle_high(m: int, rank: int) -> float:
    """Micro-batch m: 0.9 on the first micro-batch of each 2-batch accumulation cycle (m even), m/100 on the last."""
    return 0.9 if m % 2 == 0 else min(m / 100, 1.0)


def fit_accumulating(tmp_path, cb, *, n=800, batch_size=8, accumulate=2, **kw):
    model = ScriptedModule(schedule=first_of_cycle_high, schedule_by="micro_batch", **kw)
    trainer = L.Trainer(callbacks=[cb], max_epochs=1, accumulate_grad_batches=accumulate, **trainer_kwargs(tmp_path))
    trainer.fit(model, random_loader(n=n, batch_size=batch_size))
    return model, trainer


@pytest.mark.parametrize(
    ("window", "every", "expected_step", "expected_value"),
    [
        # window 1 = the step's last micro-batch (2s - 1): (2s - 1)/100 >= 0.5 first at s = 26
        (1, 1, 26, 0.51),
        (1, 5, 30, 0.59),
        # window 4 = the 4 micro-batches of the last 2 optimizer steps: (90 + 2s-3 + 90 + 2s-1)/400 >= 0.5 at s = 6
        (4, 1, 6, 0.5),
    ],
)
def test_accumulation_checks_once_per_optimizer_step_after_its_last_micro_batch(
    tmp_path, window, every, expected_step, expected_value
):
    """With accumulate_grad_batches=2 the first micro-batch of every step scripts 0.9: a check after it (as at
    global_step 0 before the fix, or a check per micro-batch) would end the period at once."""
    cb = EnlightenmentCallback(
        strategy="high_loss_removal", window=window, check_every_n_steps=every, max_duration=None
    )
    model, trainer = fit_accumulating(tmp_path, cb)
    assert trainer.global_step == 50  # 100 micro-batches, 2 per optimizer step
    assert cb.boundary_step == expected_step
    assert cb.last_value == pytest.approx(expected_value)
    assert cb.num_checks == expected_step // every  # one check per checked optimizer step, none at step 0
    # the period's knob was in force for every micro-batch of the steps before the boundary
    removing = [t["micro_batch"] for t in model.trace if t["drop_fraction"] > 0]
    assert removing == list(range(2 * expected_step))


@pytest.mark.parametrize(
    ("kwargs", "expected_step", "reason"),
    [
        ({"duration": "5st"}, 5, "fixed duration 5st"),  # optimizer steps, not micro-batches
        ({"duration": "25%"}, 13, "fixed duration 25%"),  # of the 50 optimizer steps, rounded up
        ({"max_duration": "0.1dur"}, 5, "max_duration guard 0.1dur"),
        ({"duration": "1ep"}, 50, "fixed duration 1ep"),
    ],
)
def test_accumulation_lengths_count_optimizer_steps(tmp_path, kwargs, expected_step, reason):
    base = {"strategy": "high_loss_removal", "window": 1, "max_duration": None, "threshold": 0.99}
    cb = EnlightenmentCallback(**{**base, **kwargs})
    model, trainer = fit_accumulating(tmp_path, cb)
    assert trainer.estimated_stepping_batches == 50
    assert cb.boundary_step == expected_step and reason in cb.reason
    assert [t["micro_batch"] for t in model.trace if t["drop_fraction"] > 0] == list(range(2 * expected_step))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "mixup_stop"}, "strategy='mixup_stop'"),
        ({"threshold": 1.5}, "threshold=1.5"),
        ({"threshold": 0.0}, "threshold=0.0"),
        ({"threshold": float("nan")}, "threshold"),
        ({"monitor": "val/loss", "threshold": 2.0, "mode": "lowest"}, "mode"),
        ({"window": 0}, "window"),
        ({"check_every_n_steps": 1.5}, "check_every_n_steps"),
        ({"duration": "10 weeks"}, "duration"),
        ({"duration": "0ep"}, "duration"),
        ({"max_duration": 1.5}, "max_duration"),
        ({"min_duration": "2.5st"}, "min_duration"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnlightenmentCallback(**kwargs)


def test_loss_monitor_in_min_mode(tmp_path):
    cb = EnlightenmentCallback(
        strategy="high_loss_removal",
        monitor="train/fake_loss",
        mode="min",
        threshold=0.405,
        check_every_n_steps=1,
        max_duration=None,
    )

    class LossLogging(ScriptedModule):
        def training_step(self, batch, batch_idx):
            self.log("train/fake_loss", 1.0 - self.trainer.global_step / 100)
            return super().training_step(batch, batch_idx)

    model = LossLogging()
    L.Trainer(callbacks=[cb], max_epochs=1, **trainer_kwargs(tmp_path)).fit(model, random_loader(n=800))
    assert cb.boundary_step == 61  # logged at step 60 -> 0.40 <= 0.405, checked after that step
    assert cb.last_value == pytest.approx(0.40)


@pytest.mark.parametrize("monitor", ["", 0])
def test_empty_or_non_string_monitor_is_refused(monitor):
    with pytest.raises(ValueError, match=r"`monitor` must be a metric name or None, got " + repr(monitor)):
        EnlightenmentCallback(monitor=monitor)


def test_module_that_records_no_predictions_gets_a_clear_error(tmp_path):
    class Silent(ScriptedModule):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return self.reduce_losses(torch.nn.functional.cross_entropy(self.net(x), y, reduction="none")).loss

    cb = EnlightenmentCallback(strategy="high_loss_removal", check_every_n_steps=2, max_duration=None)
    trainer = L.Trainer(callbacks=[cb], max_epochs=1, **trainer_kwargs(tmp_path))
    with pytest.raises(RuntimeError, match=r"recorded no predictions.*record_accuracy\(correct, total\).*monitor="):
        trainer.fit(Silent(), random_loader(n=80))
    assert trainer.global_step == 2  # at the first check


def test_chance_adjusted_without_classes_is_refused_before_training(tmp_path):
    model = ScriptedModule()
    model.configure_enlightenment(num_classes=None)  # e.g. a language model: no classes, no chance level
    cb = EnlightenmentCallback(strategy="high_loss_removal", chance_adjusted=True)
    trainer = L.Trainer(callbacks=[cb], max_epochs=1, **trainer_kwargs(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"chance_adjusted=True` needs a chance level: ScriptedModule has no `num_classes`.*num_classes=",
    ):
        trainer.fit(model, random_loader(n=80))
    assert trainer.global_step == 0


class StopAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def test_share_of_an_open_ended_run_is_refused_before_training(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", duration="0.1dur")
    trainer = L.Trainer(callbacks=[cb], max_epochs=-1, max_steps=-1, **trainer_kwargs(tmp_path))
    with pytest.raises(ValueError, match=r"`0.1dur` is a share of the run, but the run has no known length"):
        trainer.fit(ScriptedModule(), random_loader(n=80))
    assert trainer.global_step == 0


def test_default_guard_is_off_with_a_warning_on_an_open_ended_run(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", window=1, check_every_n_steps=5)
    trainer = L.Trainer(callbacks=[cb, StopAt(40)], max_epochs=-1, max_steps=-1, **trainer_kwargs(tmp_path))
    with pytest.warns(UserWarning, match=r"no known length; the default max_duration guard \('0.2dur'\) is off"):
        trainer.fit(ScriptedModule(schedule=lambda i, r: 0.1), random_loader(n=80))
    assert trainer.global_step == 40 and trainer.current_epoch == 4  # ran past epochs: the run had no end
    assert cb.max_duration is None and cb.in_period and cb.num_checks == 8  # no guard ended it


def test_a_guard_the_user_gives_is_kept_on_an_open_ended_run_even_with_the_default_text(tmp_path):
    cb = EnlightenmentCallback(strategy="high_loss_removal", max_duration="0.2dur")  # not the default: refused
    trainer = L.Trainer(callbacks=[cb], max_epochs=-1, max_steps=-1, **trainer_kwargs(tmp_path))
    with pytest.raises(ValueError, match=r"`0\.2dur` is a share of the run, but the run has no known length"):
        trainer.fit(ScriptedModule(), random_loader(n=80))
    assert trainer.global_step == 0


def test_resume_with_other_strategy_arguments_warns_and_keeps_the_saved_phase(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    first = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.1), duration="5st")
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    kw = trainer_kwargs(tmp_path, enable_checkpointing=True)
    L.Trainer(callbacks=[first, ckpt], max_epochs=1, **kw).fit(ScriptedModule(), random_loader(n=80))
    assert first.boundary_step == 5

    second = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.2), duration="5st")
    model = ScriptedModule()
    with pytest.warns(UserWarning, match=r"saved with strategy .*'fraction': 0.1.*this run uses .*'fraction': 0.2"):
        L.Trainer(callbacks=[second], max_epochs=2, **trainer_kwargs(tmp_path)).fit(
            model, random_loader(n=80), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt")
        )
    assert not second.in_period and second.boundary_step == 5  # the saved phase, not a new period
    assert all(t["drop_fraction"] == 0 for t in model.trace)  # the 0.2 removal never applied
