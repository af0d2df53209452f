"""`UCRDataModule`: a UCR/UEA time-series classification set through aeon, offline for the bundled ones.

Reading the archive (which sets are on disk, name checks, downloads) is
:mod:`lit_early_phase.datamodules.series.aeon_archive`; the in-memory handling of series (labels, the stratified
split, z-normalisation, padding) is :mod:`lit_early_phase.datamodules.series.prepare`.

Unequal lengths (JapaneseVowels, PickupGestureWiimoteZ, many downloadable sets) are handled in one of two
documented ways (``unequal=``):

* ``"pad"`` (default): the original series; each batch is zero-padded at the end to its longest series and
  carries the validity mask as one extra, last channel (1 on real time points, 0 on padding). The 1-D
  backbones of :mod:`lit_early_phase.backbones` read that channel (masked pooling), and Mixup/CutMix mix it
  like the data. Equal-length sets get no mask channel.
* ``"equal_length"``: the ``<name>_eq`` files of the archive (series resampled to one length), no mask.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from lit_early_phase._validation import check_choice, check_int
from lit_early_phase.datamodules.loaders import (
    SplitLoadersMixin,
    check_batch_size,
    check_loader_args,
    check_val_size,
)
from lit_early_phase.datamodules.series.aeon_archive import check_available, load_split, offline_classification_sets
from lit_early_phase.datamodules.series.prepare import (
    ZNORM_MODES,
    PadCollate,
    SeriesDataset,
    ZNormMode,
    encode_labels,
    normaliser,
    stratified_split,
)

UnequalMode = Literal["pad", "equal_length"]
UNEQUAL_MODES: tuple[str, ...] = ("pad", "equal_length")


class UCRDataModule(SplitLoadersMixin, L.LightningDataModule):
    """A UCR/UEA classification set loaded with aeon: z-normalised, label-encoded, split, served in batches.

    Splits: the official training split is divided into a training and a validation part (stratified, fixed
    ``split_seed``, the same on every rank and resume); the official test split stays untouched and is what
    ``trainer.test`` reports. Labels are encoded to ``0..K-1`` (numeric labels in numeric order, else
    lexicographic); :attr:`classes` maps codes back.

    Batches are ``(x, y)`` with ``x`` float32 ``(B, C, L)``. For unequal-length data and ``unequal="pad"``
    each batch is zero-padded to its longest series and ``x`` has one more channel, the padding mask (see the
    module docstring); give the model ``in_chans=dm.in_chans`` (data channels), the series backbones read the
    extra one.

    Z-normalisation (``znorm``): ``"series"`` (default, the UCR convention) scales each series and channel by
    its own mean and standard deviation over its real time points; ``"channel"`` uses one mean and standard
    deviation per channel computed on the training part (keeps amplitude differences between series, often
    better for multivariate sensor data); ``"none"`` leaves the values. Constant series become zeros.

    Args:
        name: data set name, e.g. ``"GunPoint"`` (see :func:`offline_classification_sets`).
        batch_size: training batch size (evaluation uses the same), at least 2. Training batches never hold a
            single series (a last one is dropped) and resume mid-epoch (see
            :mod:`lit_early_phase.datamodules.loaders`).
        val_size: series held out of the training split for validation: a share in ``[0, 1)`` or a count;
            ``0`` for none (then ``val_dataloader`` is empty).
        unequal: ``"pad"`` or ``"equal_length"`` (how unequal lengths are handled; see the module docstring).
        znorm: ``"series"``, ``"channel"`` or ``"none"``.
        download: allow aeon to fetch a set that is not on disk from Zenodo (needs a network; written to
            ``extract_path`` or aeon's cache). Off by default so nothing is downloaded behind your back.
        extract_path: a folder of ``<name>/<name>_TRAIN.ts`` files (and where downloads go); ``None`` reads
            aeon's bundled data and cache.
        num_workers: DataLoader workers.
        pin_memory: pin host memory for faster transfer to an accelerator.
        split_seed: seed of the validation split.
        seed: seed of the training order; ``None`` takes ``seed_everything``'s (else 0).
        persistent_workers: keep workers alive across epochs; ``None`` (default): whenever ``num_workers > 0``.

    Raises:
        ValueError: for a bad argument, or a ``name`` that is not on disk (the message lists those that are)
            and ``download=False``, or unknown to aeon's archive with ``download=True``.

    Example:
        >>> dm = UCRDataModule("GunPoint", batch_size=16, val_size=0.2)
        >>> dm.setup("fit")
        >>> len(dm.train_set), len(dm.val_set), len(dm.test_set), dm.num_classes, dm.in_chans
        (40, 10, 150, 2, 1)
        >>> next(iter(dm.train_dataloader()))[0].shape
        torch.Size([16, 1, 150])
        >>> jv = UCRDataModule("JapaneseVowels", batch_size=4)
        >>> jv.in_chans, jv.mask_channel, jv.min_length, jv.max_length
        (12, True, 7, 29)
    """

    def __init__(
        self,
        name: str = "GunPoint",
        batch_size: int = 16,
        val_size: int | float = 0.2,
        unequal: UnequalMode = "pad",
        znorm: ZNormMode = "series",
        download: bool = False,
        extract_path: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        split_seed: int = 0,
        seed: int | None = None,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="16-64 for UCR sets")
        check_val_size(val_size, unit="training series")
        check_choice(
            "unequal", unequal, UNEQUAL_MODES,
            hint="'pad' pads each batch and adds a mask channel, 'equal_length' loads the archive's resampled "
            "<name>_eq files.",
        )  # fmt: skip
        check_choice(
            "znorm", znorm, ZNORM_MODES,
            hint="'series' per series and channel, 'channel' per channel with training statistics, 'none' to keep "
            "the values.",
        )  # fmt: skip
        check_loader_args(
            num_workers=num_workers, persistent_workers=persistent_workers, pin_memory=pin_memory, seed=seed
        )
        check_int("split_seed", split_seed)
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a data set name such as 'GunPoint', got {name!r}.")
        self.name = name
        self.batch_size = batch_size
        self.val_size = val_size
        self.unequal = unequal
        self.znorm = znorm
        self.download = bool(download)
        self.extract_path = extract_path
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers  # resolved by SplitLoadersMixin.keep_workers
        self.pin_memory = pin_memory
        self.split_seed = split_seed
        self.seed = seed
        check_available(name, extract_path=extract_path, download=self.download)
        self._raw: dict[str, Any] | None = None
        self.train_set: SeriesDataset | None = None
        self.val_set: SeriesDataset | None = None
        self.test_set: SeriesDataset | None = None

    def _load_split(self, split: str) -> tuple[list[np.ndarray], np.ndarray]:
        return load_split(self.name, split, extract_path=self.extract_path, equal_length=self.unequal == "equal_length")

    def _load(self) -> dict[str, Any]:
        """Read both official splits once (cheap: < 0.2 s for the bundled sets) and encode the labels."""
        if self._raw is not None:
            return self._raw
        x_train, y_train = self._load_split("train")
        x_test, y_test = self._load_split("test")
        classes, c_train, c_test = encode_labels(y_train, y_test)
        if len(classes) < 2:
            raise ValueError(f"{self.name} has a single class {classes}; classification needs at least 2.")
        lengths = [s.shape[-1] for s in x_train + x_test]
        channels = {s.shape[0] for s in x_train + x_test}
        if len(channels) != 1:
            raise ValueError(f"{self.name} has series with different channel counts {sorted(channels)}.")
        equal = min(lengths) == max(lengths)
        if self.unequal == "equal_length" and not equal:
            raise ValueError(
                f"{self.name} has unequal lengths ({min(lengths)}..{max(lengths)}) and no <name>_eq files "
                f"were found; use `unequal='pad'`."
            )
        self._raw = {
            "x_train": x_train,
            "y_train": c_train,
            "x_test": x_test,
            "y_test": c_test,
            "classes": classes,
            "in_chans": channels.pop(),
            "min_length": min(lengths),
            "max_length": max(lengths),
            "mask_channel": self.unequal == "pad" and not equal,
        }
        return self._raw

    # properties (load lazily, so a config can read them before `setup`) ----------------------------------
    @property
    def classes(self) -> list[str]:
        """Original label of each code ``0..K-1``."""
        return list(self._load()["classes"])

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self._load()["classes"])

    @property
    def in_chans(self) -> int:
        """Data channels ``C`` (without the padding-mask channel): what the model's ``in_chans`` should be."""
        return int(self._load()["in_chans"])

    @property
    def mask_channel(self) -> bool:
        """Whether batches carry the padding mask as an extra last channel (unequal lengths and 'pad')."""
        return bool(self._load()["mask_channel"])

    @property
    def min_length(self) -> int:
        """Shortest series over both official splits."""
        return int(self._load()["min_length"])

    @property
    def max_length(self) -> int:
        """Longest series over both official splits (the padded length of a batch is at most this)."""
        return int(self._load()["max_length"])

    # Lightning hooks ---------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the set if asked to and not on disk (called on one process only)."""
        if self.download and self.name not in offline_classification_sets(self.extract_path):
            for split in ("train", "test"):
                self._load_split(split)

    def setup(self, stage: str | None = None) -> None:
        """Split, normalise and build the train/val/test datasets (once)."""
        if self.train_set is not None:
            return
        raw = self._load()
        y_all = torch.from_numpy(raw["y_train"])
        train_idx, val_idx = stratified_split(y_all, self.val_size, seed=self.split_seed)
        fit_series = [raw["x_train"][i] for i in train_idx.tolist()]
        normalise = normaliser(self.znorm, fit_series)

        def build(series: list[np.ndarray], labels: np.ndarray) -> SeriesDataset:
            tensors = [torch.from_numpy(normalise(s)).float() for s in series]
            return SeriesDataset(tensors, torch.from_numpy(labels))

        y_train = raw["y_train"]
        self.train_set = build(fit_series, y_train[train_idx.numpy()])
        if len(val_idx):
            self.val_set = build([raw["x_train"][i] for i in val_idx.tolist()], y_train[val_idx.numpy()])
        self.test_set = build(raw["x_test"], raw["y_test"])

    @property
    def collate_fn(self) -> PadCollate:  # type: ignore[override]
        """Pads each batch to its longest series (with the mask channel when ``unequal="pad"``)."""
        return PadCollate(mask_channel=self.mask_channel)

    def predict_dataloader(self) -> DataLoader:
        """The official test split, for ``trainer.predict``."""
        return self.test_dataloader()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, unequal={self.unequal!r}, znorm={self.znorm!r})"
