"""The mixin's knobs, helpers and seeding, without a Trainer."""

import dataclasses

import pytest
import torch
from helpers import ScriptedModule

from lit_early_phase.knobs import Knobs


def test_alpha_change_takes_effect_at_the_next_batch():
    m = ScriptedModule(mixup_alpha=0.0)
    x, y = torch.randn(16, 8), torch.arange(16) % 4
    assert m.mix(x, y).mixed_fraction.item() == 0.0
    m.set_knobs(mixup_alpha=2.0)
    out = m.mix(x, y)
    assert out.params.alpha == 2.0 and out.mixed_fraction.item() == 1.0
    assert m.enlightenment_record.alpha == 2.0
    assert m.enlightenment_record.lambda_mean.item() == pytest.approx(out.params.lam.mean().item())
    m.set_knobs()  # back to the configured base
    assert m.knobs == m.knobs_base and m.mix(x, y).mixed_fraction.item() == 0.0


def test_knobs_are_validated_and_frozen():
    with pytest.raises(ValueError, match="mixup_alpha"):
        Knobs(mixup_alpha=-1)
    with pytest.raises(ValueError, match="drop_fraction"):
        ScriptedModule().set_knobs(drop_fraction=1.5)
    with pytest.raises(TypeError):
        ScriptedModule().set_knobs(alpha=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Knobs().mixup_alpha = 1.0


def test_reduce_losses_records_the_removed_share():
    m = ScriptedModule()
    m.set_knobs(drop_count=2)
    out = m.reduce_losses(torch.tensor([1.0, 9.0, 2.0, 8.0, 3.0]))
    assert out.kept.tolist() == [True, False, True, False, True]
    assert m.enlightenment_record.removed_fraction == pytest.approx(0.4)
    assert out.loss.item() == pytest.approx(2.0)


def test_draws_outside_a_trainer_are_reproducible_per_seed():
    x, y = torch.randn(8, 8), torch.arange(8) % 4
    a, b, c = (
        ScriptedModule(mixup_alpha=1.0),
        ScriptedModule(mixup_alpha=1.0),
        ScriptedModule(mixup_alpha=1.0, mix_seed=7),
    )
    lams_a = [a.mix(x, y).params.lam for _ in range(3)]
    lams_b = [b.mix(x, y).params.lam for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(lams_a, lams_b, strict=True))
    assert not torch.equal(lams_a[1], lams_a[2])  # a stream, not one draw repeated
    assert not torch.equal(c.mix(x, y).params.lam, lams_a[0])


def test_num_classes_below_two_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        ScriptedModule(num_classes=1)
