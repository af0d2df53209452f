"""The callback's per-step work: references kept per step, device values combined in bounded batches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lit_early_phase import EnlightenmentCallback
from lit_early_phase.callbacks import nonfinite
from lit_early_phase.knobs import StepRecord


def test_nonfinite_counts_of_many_steps_are_all_counted_and_the_pending_list_stays_bounded():
    cb = EnlightenmentCallback()
    steps = 3 * nonfinite.FOLD + 5  # several folds and a remainder
    for i in range(steps):
        cb._nonfinite.add(torch.tensor(i % 3))  # what reduce_losses records: a device tensor
        assert len(cb._nonfinite.pending) < nonfinite.FOLD
    cb._nonfinite.add(4)  # a module that records no tensor: a plain number, added at once
    expected = sum(i % 3 for i in range(steps)) + 4
    with pytest.warns(UserWarning, match=rf"^EnlightenmentCallback: {expected} per-sample training loss"):
        cb._warn_nonfinite(SimpleNamespace(global_step=7))
    assert cb._nonfinite.pending == [] and int(cb._nonfinite.total) == expected


def test_no_warning_when_every_count_is_zero():
    cb = EnlightenmentCallback()
    for _ in range(nonfinite.FOLD + 1):
        cb._nonfinite.add(torch.tensor(0))
    cb._warn_nonfinite(SimpleNamespace(global_step=1))
    assert cb._nonfinite.warned is False and int(cb._nonfinite.total) == 0


def test_a_fresh_step_record_holds_plain_numbers_not_new_tensors():
    rec = StepRecord()
    values = (rec.lambda_mean, rec.mixed_fraction, rec.removed_fraction, rec.nonfinite, rec.correct, rec.total)
    assert values == (1.0, 0.0, 0.0, 0, 0, 0)
    assert not any(isinstance(v, torch.Tensor) for v in values)
