"""The package reads no tensor value on the host during training steps without a check (keep it 0).

On a GPU, every read of a tensor's value on the host (``.item()``, ``float(t)``, ``if t:``, ``.cpu()`` ...) and
every op whose output shape depends on the values (``nonzero``, a boolean mask index ...) waits for the device to
finish, and so does a blocking copy from the host (``torch.tensor(n, device=d)``, ``.to(device)`` without
``non_blocking=True``: CUDA copies, then synchronizes the stream): a step of a small model then costs a round trip
instead of queuing work. The callback is designed to sync
only at checks (every ``check_every_n_steps``) and on the steps Lightning writes logs (docs/architecture.md).

This test counts them on the CPU: it patches those tensor methods (and the ``torch`` functions with data-dependent
shapes) with wrappers that record the Python stack whenever a frame of ``lit_early_phase/`` is on it, runs the
shipped ``ImageClassifier`` on real digits (MNIST5k) with the default callback, with High-Loss Removal and with
Alpha Boost, each for ``STEPS`` measured steps where the callback does not check and Lightning writes no log, and
asserts that no read was recorded. A step is measured from its ``on_train_batch_start`` to its
``on_train_batch_end`` (all the callbacks' hooks, the forward, the backward, the optimizer step). The batch was
fetched before: the DataModule's augmentation reads its own CPU draws (torchvision's ``int(torch.randint(...))``),
in DataLoader workers on a GPU machine, costing no device sync. ``torch.cuda.set_sync_debug_mode("error")`` is the
GPU counterpart of this test (scripts/gpu_check.sh). Reads in ``HOST_SIDE`` are counted apart (CPU draws).

Reads with no package frame on the stack are not the package's and are not counted. In these runs they are:

* torch's optimizer: ``AdamW.step`` reads its ``step`` count on every step (``_get_value`` -> ``.item()``; called
  by Lightning's ``optimizer.step(closure)`` after the closure returned, so no package frame is on the stack);
* Lightning itself: nothing inside the measured steps here. ``self.log`` in ``training_step`` stores the device
  tensors without reading them (it runs under a package frame, so a read would count); Lightning reads the logged
  values when it writes logs (every ``log_every_n_steps``), at epoch ends (the epoch metrics,
  ``_ResultCollection.cpu``) and for the progress bar (off here), all outside the measured steps.

Outside the measured steps the package reads CPU tensors too: its resumable sampler takes the epoch's CPU
permutation as a list (``datamodules/loaders.py``, through ``DistributedSampler.__iter__``) at the epoch's start.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import column, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.overrides import TorchFunctionMode

import lit_early_phase
from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.keys import PHASE
from lit_early_phase.modules.mixin import EnlightenmentMixin
from lit_early_phase.strategies import AlphaBoost, HighLossRemoval

PACKAGE = str(Path(lit_early_phase.__file__).resolve().parent)
STEPS = 8

#: tensor methods that read values on the host (``__len__`` and ``.shape`` read metadata only: not listed)
VALUE_READS = (
    "item",
    "tolist",
    "cpu",
    "numpy",
    "__array__",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "__complex__",
    "__format__",
    "__repr__",
)
#: the package's files whose reads are of host tensors by design: the mixing draws come from the step's CPU
#: ``torch.Generator`` (``functional.keyed_generator``) as Python numbers or CPU tensors ("All on the CPU",
#: ``sample_mix_params``), and only their result moves to the device (``apply_mix``). The test checks that the
#: generator is a CPU one; on a GPU, ``torch.cuda.set_sync_debug_mode("error")`` (scripts/gpu_check.sh) checks all.
HOST_SIDE = tuple(f"{PACKAGE}/functional/{name}.py" for name in ("mix_params", "draws"))
#: ops whose output shape depends on the values (the device must finish before the host knows the size)
DATA_DEPENDENT = ("nonzero", "masked_select", "unique", "unique_consecutive", "argwhere")


class HostReads:
    """Records every host read of a tensor value made while a frame of the package is on the Python stack."""

    def __init__(self) -> None:
        self.active = False
        self.reads: list[tuple[str, list[str]]] = []
        self.others: list[str] = []  # reads with no package frame on the stack (torch's optimizer, Lightning)
        self.host_draws: list[str] = []  # reads of the CPU generator's draws (HOST_SIDE)
        self._inside = threading.local()  # a wrapper called inside another (``__format__`` -> ``item``) counts once

    def _record(self, name: str) -> None:
        frame = sys._getframe(2)  # the caller of the wrapper
        caller = frame
        while frame is not None:
            if frame.f_code.co_filename.startswith(PACKAGE):  # the innermost frame of the package
                if frame.f_code.co_filename in HOST_SIDE:
                    self.host_draws.append(f"{name} in {frame.f_code.co_name}")
                else:
                    self.reads.append((name, traceback.format_stack(caller)))
                return
            frame = frame.f_back
        self.others.append(f"{name} in {caller.f_code.co_filename}:{caller.f_lineno}")

    def wrap(self, original, *rules: tuple[str, Callable[..., bool], bool]):
        """``original`` recording a read under the first rule ``(name, applies(*args, **kwargs), direct)`` that
        applies; a ``direct`` rule counts only a call written in the package (its caller's frame is one)."""

        def wrapper(*args, **kwargs):
            outer = getattr(self._inside, "on", False)
            if self.active and not outer:
                for name, applies, direct in rules:
                    if applies(*args, **kwargs) and (not direct or _in_package(sys._getframe(1))):
                        self._record(name)
                        break
            self._inside.on = True
            try:
                return original(*args, **kwargs)
            finally:
                self._inside.on = outer

        return wrapper

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        always = lambda *a, **k: True  # noqa: E731
        for name in VALUE_READS + DATA_DEPENDENT:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self.wrap(original, (f"Tensor.{name}", always, False)))
        for name in DATA_DEPENDENT:
            monkeypatch.setattr(torch, name, self.wrap(getattr(torch, name), (f"torch.{name}", always, False)))
        # torch.where(condition) with one argument is nonzero (a boolean mask index: MaskIndexMode)
        one_arg = ("torch.where(cond)", lambda *a, **k: len(a) + len(k) == 1, False)
        monkeypatch.setattr(torch, "where", self.wrap(torch.where, one_arg))
        # copies: to the host, and from the host to the device without non_blocking (a stream sync on CUDA)
        rules = (('Tensor.to("cpu")', _to_cpu, False), ("Tensor.to(device) blocking", _blocking_to_device, True))
        monkeypatch.setattr(torch.Tensor, "to", self.wrap(torch.Tensor.to, *rules))
        for name in ("tensor", "as_tensor"):
            rule = (f"torch.{name}(host data, device=...)", _host_data_to_device, True)
            monkeypatch.setattr(torch, name, self.wrap(getattr(torch, name), rule))

    def report(self) -> str:
        return "\n\n".join(f"{name} from:\n{''.join(stack[-8:])}" for name, stack in self.reads[:5])


def _to_cpu(self, *args, **kwargs) -> bool:
    """``.to("cpu")`` written as text: on a CPU run a ``torch.device("cpu")`` is also where the module lives (the
    batch transfer, torchmetrics' states), so only the explicit text counts; the GPU check sees every copy."""
    dest = kwargs.get("device", args[0] if args else None)
    return isinstance(dest, str) and dest.startswith("cpu")


def _in_package(frame) -> bool:
    return frame.f_code.co_filename.startswith(PACKAGE)


def _blocking_to_device(self, *args, **kwargs) -> bool:
    """``.to(device)`` without ``non_blocking=True``: from host memory, CUDA copies and then waits for the stream.
    On a CPU run the source cannot be told from a device tensor (a no-op there), so only calls written in the
    package count (``direct``): Lightning's and torchmetrics' moves of device tensors are not its business."""
    device = kwargs.get("device", args[0] if args and isinstance(args[0], str | torch.device) else None)
    non_blocking = kwargs.get("non_blocking", next((a for a in args if isinstance(a, bool)), False))
    return device is not None and not non_blocking


def _host_data_to_device(data, *args, **kwargs) -> bool:
    """``torch.tensor(3, device=d)``: built on the host, then a blocking copy (``torch.full`` fills on the device)."""
    return kwargs.get("device") is not None and (not isinstance(data, torch.Tensor) or data.device.type == "cpu")


def _mask_index(self, index, *value) -> bool:
    """``x[mask]``, or ``x[mask] = values`` with a tensor of values (a scalar is a ``masked_fill``: no sync)."""
    items = index if isinstance(index, tuple) else (index,)
    has_mask = any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in items)
    return has_mask and (not value or (isinstance(value[0], torch.Tensor) and value[0].numel() > 1))


class MaskIndexMode(TorchFunctionMode):
    """Sees ``Tensor.__getitem__`` / ``__setitem__`` calls, which cannot be patched on the class (assigning
    ``torch.Tensor.__getitem__`` changes the type's sequence slot for good: ``torch.tensor([t0, t1])`` of 0-d
    tensors then fails in every later test)."""

    def __init__(self, counter: HostReads) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.__getitem__ or func is torch.Tensor.__setitem__:
            return self.counter.wrap(func, ("Tensor[mask]", _mask_index, False))(*args, **kwargs)
        return func(*args, **kwargs)


class MeasureFrom(Callback):
    """Turns the counter on at each training batch's start. Put it first: every hook, the forward, the backward
    and the optimizer step of the batch are measured (the batch was fetched and moved to the device before)."""

    def __init__(self, counter: HostReads) -> None:
        self.counter = counter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.counter.active = trainer.global_step < STEPS


class MeasureUntil(Callback):
    """Turns the counter off at each training batch's end. Put it last; it notes the steps measured and the checks
    the callback had made by then (none: the measured steps are steps without a check)."""

    def __init__(self, counter: HostReads) -> None:
        self.counter = counter
        self.measured: list[int] = []
        self.checks_while_measured: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.counter.active:
            self.measured.append(trainer.global_step)
            cb = next(c for c in trainer.callbacks if isinstance(c, EnlightenmentCallback))
            self.checks_while_measured = cb.num_checks
        self.counter.active = False


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: ImageClassifier, cb: EnlightenmentCallback
) -> HostReads:
    """``STEPS`` training steps measured, none a check (``check_every_n_steps`` past them), none a logging step
    (``log_every_n_steps`` past them, with a logger); a check and a written log follow, as in a normal run."""
    counter = HostReads()
    until = MeasureUntil(counter)
    trainer = L.Trainer(
        callbacks=[MeasureFrom(counter), cb, until],
        max_steps=STEPS + 2,
        limit_val_batches=0,
        **trainer_kwargs(tmp_path, logger=CSVLogger(tmp_path), log_every_n_steps=STEPS + 1),
    )
    counter.install(monkeypatch)
    with MaskIndexMode(counter):
        trainer.fit(model, MNIST5kDataModule(batch_size=16, train_subset=256, val_size=32))
    monkeypatch.undo()
    assert until.measured == list(range(1, STEPS + 1)) and until.checks_while_measured == 0
    assert cb.num_checks == (1 if cb.boundary_step is None or cb.boundary_step > STEPS else 0)  # the check came
    assert min(column(read_metrics(tmp_path), PHASE)) >= STEPS  # ... and the first written step, after them
    return counter


def classifier(**kwargs) -> ImageClassifier:
    adamw = partial(torch.optim.AdamW, lr=0.01)
    return ImageClassifier("test_resnet", num_classes=10, in_chans=1, optimizer=adamw, **kwargs)


CASES = {
    # the default callback: Mixup Pause (the module mixes), the running accuracy, the default guard
    "default": (dict(mixup_alpha=0.4, cutmix_alpha=1.0), dict()),
    # High-Loss Removal in force on every measured step
    "high_loss_removal": (dict(), dict(strategy=HighLossRemoval(fraction=0.25), max_duration=None)),
    # mixing (Mixup or CutMix, one λ and one box per sample) in force on every measured step
    "alpha_boost": (dict(mixup_alpha=0.2, cutmix_alpha=1.0, mix_mode="elem"), dict(strategy=AlphaBoost(alpha=1.0))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_host_reads_between_checks(tmp_path, monkeypatch, case):
    model_kwargs, cb_kwargs = CASES[case]
    cb = EnlightenmentCallback(check_every_n_steps=STEPS + 1, **cb_kwargs)
    model = classifier(**model_kwargs)
    counter = run(tmp_path, monkeypatch, model, cb)
    assert counter.reads == [], f"{len(counter.reads)} host reads by the package between checks:\n{counter.report()}"
    # the wrappers were live: torch's AdamW read its step count on every measured step (not the package's)
    assert sum("torch/optim/" in where and ".item" in where for where in counter.others) >= STEPS, counter.others
    # the reads of the mixing draws (when a step mixes) were of the step's CPU generator, not of the device
    assert bool(counter.host_draws) == (case != "high_loss_removal")
    assert model.trainer is not None and model._step_generator().device.type == "cpu"


def test_a_read_in_the_step_is_caught(tmp_path, monkeypatch):
    """The counter sees one ``.item()`` added to the mixin's step: the test above can fail."""
    original = EnlightenmentMixin.record_accuracy

    def record_accuracy(self, correct, total):
        correct.item()
        original(self, correct, total)

    monkeypatch.setattr(EnlightenmentMixin, "record_accuracy", record_accuracy)
    counter = run(tmp_path, monkeypatch, classifier(), EnlightenmentCallback(check_every_n_steps=STEPS + 1))
    assert [name for name, _ in counter.reads] == ["Tensor.item"] * STEPS
    assert all("in classification_step" in "".join(stack) for _, stack in counter.reads)
