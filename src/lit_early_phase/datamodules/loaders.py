"""The train/val/test DataLoaders that every DataModule of this package builds the same way.

Training batches come from a :class:`ResumableSampler` inside torchdata's ``StatefulDataLoader``, so that a run
resumed from a mid-epoch checkpoint sees exactly the batches the uninterrupted run would have seen:

* the order is a permutation drawn from ``(seed, epoch)`` (as ``DistributedSampler`` draws it; Lightning calls
  ``set_epoch``), split between the ranks by the DataModule itself, so Lightning keeps this sampler under DDP;
* the loader's position (and its workers' seeds) is part of the checkpoint: Lightning saves the
  ``StatefulDataLoader``'s ``state_dict``, and the DataModule keeps a copy of it in its own state, which it puts
  back into the loader as soon as ``train_dataloader`` builds it (see :meth:`SplitLoadersMixin.load_state_dict`);
* per-sample randomness (augmentation) is keyed by ``(seed, epoch, index)`` through :class:`SampleKey`, not drawn
  from the process's global RNG, so it does not depend on workers, ranks or where a run was resumed;
* no loader draws from the global RNG (each has its own generator for its workers' seeds), so dropout and
  anything else that does draws the same numbers in a resumed run (:class:`~lit_early_phase.ImageClassifier`
  saves the global RNG state in its checkpoints);
* a training batch never has a single sample (a BatchNorm layer cannot normalise one sample in training): when
  the last batch of a rank would hold exactly one, it is dropped (one sample of that epoch, a different one each
  epoch).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

from lit_early_phase._validation import check_choice, check_int


class SampleKey(NamedTuple):
    """What a :class:`ResumableSampler` with ``keys=True`` yields: the index and what to seed its randomness from.

    Attributes:
        index: the sample's index in the dataset.
        epoch: the epoch (as set by ``set_epoch``).
        seed: the sampler's seed.
    """

    index: int
    epoch: int
    seed: int


def default_seed() -> int:
    """The seed of ``lightning.seed_everything`` (``PL_GLOBAL_SEED``), else 0: the same on every rank.

    Lightning seeds the ``DistributedSampler`` it inserts the same way; a per-process random seed would give the
    ranks overlapping shares.
    """
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class ResumableSampler(StatefulDistributedSampler):
    """This rank's share of a permutation drawn from ``(seed, epoch)``, resumable in the middle of an epoch.

    torchdata's ``StatefulDistributedSampler`` (itself a ``DistributedSampler``: Lightning does not replace it under
    DDP, and calls its ``set_epoch`` at each epoch) with optional :class:`SampleKey` outputs for datasets that draw
    per-sample randomness. As with ``DistributedSampler``, a loop outside Lightning calls ``set_epoch`` itself
    for a new order each epoch.

    Args:
        dataset: the dataset to sample from.
        num_replicas: ranks sharing the data.
        rank: this rank.
        shuffle: permute (``False``: in order).
        seed: seed of the permutations (the same on every rank).
        keys: yield :class:`SampleKey` instead of plain indices.

    Example:
        >>> sampler = ResumableSampler(range(6), num_replicas=2, rank=1, seed=0, keys=True)
        >>> keys = list(sampler)
        >>> len(keys), keys[0].epoch, keys[0].seed
        (3, 0, 0)
    """

    def __init__(
        self,
        dataset: Any,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        keys: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.keys = keys

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        """Indices (or keys) from the saved position on."""
        indices = super().__iter__()
        if not self.keys:
            yield from indices
            return
        for index in indices:
            yield SampleKey(index, self.epoch, self.seed)


class ResumableLoader(StatefulDataLoader):
    """torchdata's ``StatefulDataLoader`` over a :class:`ResumableSampler`, with the epoch in its state.

    Its ``state_dict`` holds the epoch, the batches consumed in it and torchdata's own state (all plain values).
    ``load_state_dict`` sets the sampler's epoch at once, so an iterator created before Lightning calls
    ``set_epoch`` (workers draw indices as soon as it exists) already has the right order, and it treats a
    state whose epoch was consumed to the end (a checkpoint at the last batch of an epoch) as the start of the
    next epoch: torchdata would resume it as an empty epoch, and Lightning would train nothing in it.

    Args:
        *args: ``StatefulDataLoader`` arguments; ``sampler`` must be a :class:`ResumableSampler`.
        epoch_length: batches Lightning takes from the loader per epoch (``trainer.num_training_batches``, which
            ``limit_train_batches`` may make shorter than ``len(loader)``); ``None``: ``len(loader)``.
        **kwargs: ``StatefulDataLoader`` keyword arguments.
    """

    sampler: ResumableSampler

    def __init__(self, *args: Any, epoch_length: Callable[[], float] | None = None, **kwargs: Any) -> None:
        with warnings.catch_warnings():  # torchdata 0.11 calls torch's deprecated `set_vital` on every loader
            warnings.filterwarnings("ignore", message=".*set_vital.*deprecated", category=UserWarning)
            super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError(f"ResumableLoader needs a ResumableSampler, got {type(self.sampler).__name__}.")
        self.epoch_length = epoch_length

    def _batches_per_epoch(self) -> float:
        length = self.epoch_length() if self.epoch_length is not None else len(self)
        return min(length, len(self))

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batches", "done", "num_workers", "loader"}``; an unstarted loader has none (``{}``)."""
        iterator = self._iterator
        if iterator is None:
            return {}
        # `_num_yielded`: batches handed out by this iterator (not the ones workers prefetched), as torch counts them
        batches = int(iterator._num_yielded)
        done = bool(iterator._finished) or batches >= self._batches_per_epoch()
        return {
            "epoch": int(self.sampler.epoch),
            "batches": batches,
            "done": done,
            "num_workers": int(self.num_workers),
            "loader": super().state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue at the saved position (or at the start of the next epoch if the saved one was done).

        Raises:
            ValueError: for a mid-epoch position saved with workers loaded without them, or the other way round.
        """
        if not state_dict:
            return
        epoch = int(state_dict["epoch"])
        saved_workers = state_dict.get("num_workers", self.num_workers)
        if not state_dict["done"] and (saved_workers > 0) != (self.num_workers > 0):
            # torchdata keeps a single-process and a worker position in different forms
            wanted = "num_workers >= 1" if saved_workers else "num_workers=0"
            raise ValueError(
                f"This checkpoint stopped in the middle of an epoch of a training loader with "
                f"num_workers={saved_workers}; resume it with {wanted} (got {self.num_workers}), or from a "
                f"checkpoint at the end of an epoch."
            )
        if state_dict["done"]:
            self.sampler.set_epoch(epoch + 1)
            super().load_state_dict({})  # a fresh iteration
            return
        self.sampler.set_epoch(epoch)
        super().load_state_dict(state_dict["loader"])


class SplitLoadersMixin:
    """``train/val/test_dataloader`` over ``train_set``/``val_set``/``test_set`` with the module's loader settings.

    The DataModule sets ``batch_size``, ``num_workers``, ``pin_memory``, ``seed`` (``None``: :func:`default_seed`)
    and the three sets (``val_set`` may be ``None``: no validation); it may set ``persistent_workers`` (``None``,
    the default: keep the workers whenever there are some, see :meth:`keep_workers`), ``collate_fn`` and
    ``sample_keys`` (its training set takes :class:`SampleKey`). The training loader is a
    ``StatefulDataLoader`` over a :class:`ResumableSampler` (see the module docstring); its position is also kept
    in the DataModule's ``state_dict``. A DataModule whose models hold no BatchNorm (language models) sets
    ``allow_single_sample_batches``: its training batches are then never dropped and a rank may hold one sample.
    """

    batch_size: int
    num_workers: int
    persistent_workers: bool | None = None
    pin_memory: bool
    seed: int | None
    train_set: Dataset | None
    val_set: Dataset | None
    test_set: Dataset | None
    collate_fn: Callable[[list[Any]], Any] | None = None
    sample_keys: bool = False
    allow_single_sample_batches: bool = False
    _train_loader: ResumableLoader | None = None
    _pending_loader_state: dict[str, Any] | None = None

    def _world(self) -> tuple[int, int]:
        """``(world_size, global_rank)`` of the attached Trainer, ``(1, 0)`` without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _epoch_length(self) -> float:
        """Batches per epoch as the attached Trainer takes them (``limit_train_batches``), else ``inf``."""
        trainer = getattr(self, "trainer", None)
        return float("inf") if trainer is None else float(trainer.num_training_batches)

    def keep_workers(self) -> bool:
        """The one ``persistent_workers`` rule of every loader: as given, else whenever ``num_workers > 0``.

        Never with ``num_workers=0`` (there is nothing to keep; ``DataLoader`` would refuse it).
        """
        if self.num_workers == 0:
            return False
        return True if self.persistent_workers is None else bool(self.persistent_workers)

    def _loader(
        self, dataset: Dataset | None, *, shuffle: bool, collate_fn: Callable[[list[Any]], Any] | None = None
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError("No data for this stage: call `setup()` first.")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.keep_workers(),
            pin_memory=self.pin_memory,
            collate_fn=collate_fn or self.collate_fn,
            generator=torch.Generator().manual_seed(0),
        )

    def train_dataloader(self) -> ResumableLoader:
        """Shuffled training batches of this rank, never of one sample, resumable mid-epoch.

        Raises:
            RuntimeError: before ``setup``.
            ValueError: if a rank's share of the training set is a single sample (unless
                ``allow_single_sample_batches``).
        """
        if self.train_set is None:
            raise RuntimeError("No data for this stage: call `setup()` first.")
        world_size, rank = self._world()
        seed = default_seed() if self.seed is None else self.seed
        sampler = ResumableSampler(self.train_set, num_replicas=world_size, rank=rank, seed=seed, keys=self.sample_keys)
        per_rank = sampler.num_samples  # DistributedSampler pads the ranks to the same count
        single = not self.allow_single_sample_batches  # a batch of one sample breaks BatchNorm
        if single and per_rank < 2:
            raise ValueError(
                f"The training split has {len(self.train_set)} sample(s) for {world_size} rank(s): each rank would "
                f"train on batches of {per_rank}, which BatchNorm cannot normalise. Use more training data "
                f"(`train_subset`/`val_size`) or fewer devices."
            )
        loader = ResumableLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            # a last batch of exactly one sample is dropped; any other last batch is kept
            drop_last=single and per_rank % self.batch_size == 1,
            num_workers=self.num_workers,
            persistent_workers=self.keep_workers(),
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
            epoch_length=self._epoch_length,
            generator=torch.Generator().manual_seed(seed),
        )
        if self._pending_loader_state is not None:
            loader.load_state_dict(self._pending_loader_state)
            self._pending_loader_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches (none when there is no validation split or it is empty)."""
        if self.val_set is None or not len(self.val_set):
            return []
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the official test split."""
        return self._loader(self.test_set, shuffle=False)

    # state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The training loader's position (plain values), when a training loader exists."""
        if self._train_loader is None:
            return {}
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved position for the next :meth:`train_dataloader`.

        Lightning saves the ``StatefulDataLoader``'s state itself and puts it back when its fit loop builds the
        loader, but not when something asked for the loader earlier (``trainer.estimated_stepping_batches`` in a
        callback's ``on_fit_start`` or in ``configure_optimizers``, Lightning issue #20550): the epoch then
        restarts. The DataModule's state is restored before any of that, so the loader starts where it was
        either way; when Lightning loads its own copy too, it is the same state.
        """
        self._pending_loader_state = state_dict.get("train_loader")


def check_batch_size(batch_size: Any, *, typical: str) -> None:
    """Refuse a batch size that is not an int >= 2 (a training batch of one sample breaks BatchNorm).

    Args:
        batch_size: the value given.
        typical: typical values, for the message.

    Raises:
        ValueError: naming the value and what to use.
    """
    # by hand: its message ("..., got 1: training batches ...") predates check_int's format and is matched on
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(
            f"`batch_size` must be an int >= 2, got {batch_size!r}: training batches of one sample cannot be "
            f"normalised by BatchNorm layers. Typical: {typical}."
        )


def check_seed(seed: Any) -> None:
    """Refuse a ``seed`` that is neither an int nor ``None`` (the loaders' order and augmentation derive from it).

    Raises:
        ValueError: naming the value.
    """
    check_int("seed", seed, allow_none=True)


def check_loader_args(*, num_workers: Any, persistent_workers: Any, pin_memory: Any, seed: Any) -> None:
    """The loader arguments every DataModule of this package takes, checked the same way.

    Args:
        num_workers: DataLoader workers, an int >= 0.
        persistent_workers: ``None`` (keep the workers whenever there are some) or a bool.
        pin_memory: a bool.
        seed: an int or ``None``.

    Raises:
        ValueError: naming the bad argument.

    Example:
        >>> check_loader_args(num_workers=0, persistent_workers=None, pin_memory=False, seed=None)
        >>> check_loader_args(num_workers=-1, persistent_workers=None, pin_memory=False, seed=None)
        Traceback (most recent call last):
        ...
        ValueError: `num_workers` must be an int >= 0, got -1.
    """
    check_int("num_workers", num_workers, minimum=0)
    check_choice("persistent_workers", persistent_workers, (None, True, False), hint="None: whenever num_workers > 0.")
    check_choice("pin_memory", pin_memory, (True, False))
    check_seed(seed)


def check_val_size(val_size: Any, *, unit: str) -> None:
    """Refuse a validation size that is neither a share in ``[0, 1)`` nor an int count ``>= 0`` (``bool`` neither).

    Written by hand: a share *or* a count is one rule that ``check_int``/``check_number`` do not express.

    Args:
        val_size: the value given.
        unit: what is counted, for the message (``"training images"``).

    Raises:
        ValueError: naming the value and what to use.
    """
    ok = not isinstance(val_size, bool) and (
        (isinstance(val_size, int) and val_size >= 0) or (isinstance(val_size, float) and 0 <= val_size < 1)
    )
    if not ok:
        raise ValueError(
            f"`val_size` must be a share in [0, 1) or an int count >= 0 of {unit}, got {val_size!r}. Use e.g. "
            f"0.2, or 0 for no validation split."
        )
