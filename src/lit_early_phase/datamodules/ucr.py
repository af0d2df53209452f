"""UCR/UEA time-series classification data sets through aeon: offline for the bundled ones, by name online.

aeon ships ten classification sets inside its wheel (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1,
BasicMotions, JapaneseVowels, PickupGestureWiimoteZ, plus its own fixtures UnitTest and Covid3Month_disc);
:func:`offline_classification_sets` lists them together with any set already in aeon's download cache. Any
other of the ~280 names of the tsml archive is fetched from Zenodo by ``aeon.datasets.load_classification``
when ``download=True``.

Unequal lengths (JapaneseVowels, PickupGestureWiimoteZ, many downloadable sets) are handled in one of two
documented ways (``unequal=``):

* ``"pad"`` (default): the original series; each batch is zero-padded at the end to its longest series and
  carries the validity mask as one extra, last channel (1 on real time points, 0 on padding). The 1-D
  backbones of :mod:`lit_early_phase.backbones` read that channel (masked pooling), and Mixup/CutMix mix it
  like the data. Equal-length sets get no mask channel.
* ``"equal_length"``: the ``<name>_eq`` files of the archive (series resampled to one length), no mask.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_early_phase.datamodules.loaders import SplitLoadersMixin, check_batch_size, check_seed

UnequalMode = Literal["pad", "equal_length"]
ZNormMode = Literal["series", "channel", "none"]
UNEQUAL_MODES: tuple[str, ...] = ("pad", "equal_length")
ZNORM_MODES: tuple[str, ...] = ("series", "channel", "none")
_EPS = 1e-8


def _require_aeon() -> Any:
    try:
        import aeon.datasets as datasets
    except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
        if (err.name or "").split(".")[0] != "aeon":
            raise  # a broken dependency of aeon: show the real error
        raise ImportError(
            "UCRDataModule reads UCR/UEA data through aeon: `pip install 'lit-early-phase[timeseries]'`."
        ) from err
    return datasets


def _data_roots(extract_path: str | os.PathLike | None) -> list[Path]:
    """Folders aeon reads without a download: ``extract_path`` alone if given, else bundled + cache."""
    if extract_path is not None:
        return [Path(extract_path).expanduser().resolve()]
    datasets = _require_aeon()
    bundled = Path(datasets.__file__).parent / "data"
    try:  # aeon's download cache (private helper; ~/aeon_data when it moves)
        from aeon.datasets._data_loaders import _get_data_home

        cache = Path(_get_data_home())
    except (ImportError, AttributeError):  # pragma: no cover - depends on the aeon version
        cache = Path.home() / "aeon_data"
    return [bundled, cache]


def _is_classification_file(path: Path) -> bool:
    """Whether a ``.ts`` header declares class labels (``@classLabel true``)."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            low = line.strip().lower()
            if low.startswith("@classlabel"):
                return low.split()[1:2] == ["true"]
            if low.startswith("@data"):
                break
    return False


def offline_classification_sets(extract_path: str | os.PathLike | None = None) -> list[str]:
    """Names of the classification sets that load without a network.

    A set counts when a folder ``<name>/`` holds ``<name>_TRAIN.ts`` and ``<name>_TEST.ts`` and the header
    declares class labels, in aeon's bundled data and its download cache (or only in ``extract_path`` when
    given).

    Args:
        extract_path: a folder of ``<name>/<name>_TRAIN.ts`` files to look in instead of aeon's folders.

    Returns:
        Sorted names.

    Example:
        >>> names = offline_classification_sets()
        >>> {"GunPoint", "BasicMotions", "JapaneseVowels"} <= set(names)
        True
    """
    names: set[str] = set()
    for root in _data_roots(extract_path):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            train = entry / f"{entry.name}_TRAIN.ts"
            if train.is_file() and (entry / f"{entry.name}_TEST.ts").is_file() and _is_classification_file(train):
                names.add(entry.name)
    return sorted(names)


def encode_labels(train: Sequence[Any], test: Sequence[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Map string labels to ``0..K-1``: numeric labels in numeric order, others in lexicographic order.

    Classes come from the training split; a test label never seen in training is an error.

    Args:
        train: training labels.
        test: test labels.

    Returns:
        ``(classes, train_codes, test_codes)`` with ``classes[code]`` the original label.

    Raises:
        ValueError: if the test split has a label that the training split lacks.

    Example:
        >>> encode_labels(["2", "10", "1"], ["10"])
        (['1', '2', '10'], array([1, 2, 0]), array([2]))
    """
    train_s = [str(v) for v in train]
    test_s = [str(v) for v in test]
    unique = set(train_s)
    try:
        classes = sorted(unique, key=float)
    except ValueError:
        classes = sorted(unique)
    unseen = sorted(set(test_s) - unique)
    if unseen:
        raise ValueError(f"The test split has labels {unseen} that the training split lacks (classes {classes}).")
    index = {c: i for i, c in enumerate(classes)}
    return (
        classes,
        np.array([index[v] for v in train_s], dtype=np.int64),
        np.array([index[v] for v in test_s], dtype=np.int64),
    )


def stratified_split(labels: Tensor, val_size: int | float, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into train/validation per class with a fixed generator.

    Each class gives ``val_size`` (share, or count spread over classes by largest remainder) of its members to
    validation, and always keeps at least one for training.

    Args:
        labels: ``(N,)`` integer labels.
        val_size: share in ``[0, 1)`` or count ``>= 0`` held out.
        seed: seed of the ``torch.Generator`` that orders each class.

    Returns:
        ``(train_idx, val_idx)``, each sorted.

    Raises:
        ValueError: if the split would leave no training sample or cannot place ``val_size`` samples.

    Example:
        >>> train, val = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
        >>> len(train), len(val), sorted(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])[val].tolist())
        (4, 4, [0, 0, 1, 1])
    """
    n = int(labels.numel())
    n_val = round(val_size * n) if isinstance(val_size, float) else int(val_size)
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    classes, counts = torch.unique(labels, return_counts=True)
    capacity = counts - 1  # every class keeps one training sample
    if n_val > int(capacity.sum()):
        raise ValueError(
            f"`val_size={val_size!r}` asks for {n_val} validation series out of {n}, but only "
            f"{int(capacity.sum())} can leave while every class keeps one for training. Use a smaller "
            f"`val_size`."
        )
    share = counts.double() * n_val / n
    quota = torch.minimum(share.floor().long(), capacity)
    remainder = share - share.floor()
    while int(quota.sum()) < n_val:  # largest remainder first, among classes that still have room
        room = quota < capacity
        score = torch.where(room, remainder, torch.full_like(remainder, -1.0))
        best = int(score.argmax())
        quota[best] += 1
        remainder[best] = -0.5
    generator = torch.Generator().manual_seed(seed)
    val_parts = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten()
        val_parts.append(members[torch.randperm(len(members), generator=generator)[:q]])
    val_idx = torch.cat(val_parts).sort().values
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val_idx] = True
    return torch.nonzero(~is_val).flatten(), val_idx


class SeriesDataset(Dataset):
    """Series of possibly different lengths with integer labels.

    Args:
        series: ``N`` float32 tensors of shape ``(C, L_i)``.
        labels: ``(N,)`` integer labels.
    """

    def __init__(self, series: list[Tensor], labels: Tensor) -> None:
        if len(series) != len(labels):
            raise ValueError(f"{len(series)} series but {len(labels)} labels.")
        self.series = series
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.series[index], self.labels[index]


class PadCollate:
    """Stack ``(C, L_i)`` series into ``(B, C, L)``, zero-padding at the end to the longest of the batch.

    Args:
        mask_channel: append the validity mask (1 real, 0 padding) as a last channel: ``(B, C + 1, L)``.

    Example:
        >>> x, y = PadCollate(mask_channel=True)([(torch.ones(1, 2), torch.tensor(0)),
        ...                                       (torch.ones(1, 3), torch.tensor(1))])
        >>> x[:, -1].tolist(), y.tolist()
        ([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [0, 1])
    """

    def __init__(self, *, mask_channel: bool) -> None:
        self.mask_channel = mask_channel

    def __call__(self, batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Pad and stack ``[(series, label), ...]`` into ``(x, y)``."""
        length = max(s.shape[-1] for s, _ in batch)
        channels = batch[0][0].shape[0] + int(self.mask_channel)
        x = torch.zeros(len(batch), channels, length)
        for i, (s, _) in enumerate(batch):
            x[i, : s.shape[0], : s.shape[-1]] = s
            if self.mask_channel:
                x[i, -1, : s.shape[-1]] = 1.0
        return x, torch.stack([label for _, label in batch])


def _as_series_list(x: Any) -> list[np.ndarray]:
    """Turn aeon's ``(N, C, L)`` array or list of ``(C, L_i)`` arrays -> list of float arrays."""
    return [np.asarray(s, dtype=np.float64) for s in x]


def _znorm_series(s: np.ndarray) -> np.ndarray:
    mean = s.mean(axis=-1, keepdims=True)
    std = s.std(axis=-1, keepdims=True)
    return (s - mean) / np.where(std < _EPS, 1.0, std)


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
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="16-64 for UCR sets")
        if isinstance(val_size, bool) or not (
            (isinstance(val_size, int) and val_size >= 0) or (isinstance(val_size, float) and 0 <= val_size < 1)
        ):
            raise ValueError(
                f"`val_size` must be a share in [0, 1) or an int count >= 0 of training series, got "
                f"{val_size!r}. Use e.g. 0.2, or 0 for no validation split."
            )
        if unequal not in UNEQUAL_MODES:
            raise ValueError(
                f"`unequal` must be one of {UNEQUAL_MODES}, got {unequal!r}: 'pad' pads each batch and adds "
                f"a mask channel, 'equal_length' loads the archive's resampled <name>_eq files."
            )
        if znorm not in ZNORM_MODES:
            raise ValueError(
                f"`znorm` must be one of {ZNORM_MODES}, got {znorm!r}: 'series' per series and channel, "
                f"'channel' per channel with training statistics, 'none' to keep the values."
            )
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an int >= 0, got {num_workers!r}.")
        if isinstance(split_seed, bool) or not isinstance(split_seed, int):
            raise ValueError(f"`split_seed` must be an int, got {split_seed!r}.")
        check_seed(seed)
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
        self.persistent_workers = num_workers > 0
        self.pin_memory = pin_memory
        self.split_seed = split_seed
        self.seed = seed
        self._check_name()
        self._raw: dict[str, Any] | None = None
        self.train_set: SeriesDataset | None = None
        self.val_set: SeriesDataset | None = None
        self.test_set: SeriesDataset | None = None

    # --------------------------------------------------------------------------------------------------------
    def _check_name(self) -> None:
        available = offline_classification_sets(self.extract_path)
        if self.name in available:
            return
        where = f"in {self.extract_path!r}" if self.extract_path else "offline (aeon's bundled data and cache)"
        if not self.download:
            close = difflib.get_close_matches(self.name, available, n=3, cutoff=0.5)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"`name={self.name!r}` is not available {where}.{hint} Available: {available}. "
                f"Pass `download=True` to fetch it from the tsml archive on Zenodo with "
                f"`aeon.datasets.load_classification` (needs a network)."
            )
        from aeon.datasets.tsc_datasets import tsc_zenodo

        if self.name not in tsc_zenodo:
            close = difflib.get_close_matches(self.name, list(tsc_zenodo), n=3, cutoff=0.5)
            hint = f" Close matches: {close}." if close else ""
            raise ValueError(
                f"`name={self.name!r}` is not a classification set of aeon's tsml archive.{hint} The names "
                f"are listed in `aeon.datasets.tsc_datasets.tsc_zenodo`; offline: {available}."
            )

    def _load_split(self, split: str) -> tuple[list[np.ndarray], np.ndarray]:
        datasets = _require_aeon()
        x, y = datasets.load_classification(
            self.name,
            split=split,
            extract_path=self.extract_path,
            load_equal_length=self.unequal == "equal_length",
            load_no_missing=True,
        )
        series = _as_series_list(x)
        if any(np.isnan(s).any() for s in series):
            raise ValueError(
                f"{self.name} ({split}) has missing values (NaN) and the archive has no imputed <name>_nmv "
                f"version here; impute them before use."
            )
        return series, np.asarray(y)

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
        normalise = self._normaliser(fit_series)

        def build(series: list[np.ndarray], labels: np.ndarray) -> SeriesDataset:
            tensors = [torch.from_numpy(normalise(s)).float() for s in series]
            return SeriesDataset(tensors, torch.from_numpy(labels))

        y_train = raw["y_train"]
        self.train_set = build(fit_series, y_train[train_idx.numpy()])
        if len(val_idx):
            self.val_set = build([raw["x_train"][i] for i in val_idx.tolist()], y_train[val_idx.numpy()])
        self.test_set = build(raw["x_test"], raw["y_test"])

    def _normaliser(self, fit_series: list[np.ndarray]) -> Any:
        if self.znorm == "series":
            return _znorm_series
        if self.znorm == "none":
            return lambda s: s
        values = np.concatenate(fit_series, axis=-1)  # (C, sum of lengths)
        mean = values.mean(axis=-1, keepdims=True)
        std = values.std(axis=-1, keepdims=True)
        std = np.where(std < _EPS, 1.0, std)
        return lambda s: (s - mean) / std

    @property
    def collate_fn(self) -> PadCollate:  # type: ignore[override]
        """Pads each batch to its longest series (with the mask channel when ``unequal="pad"``)."""
        return PadCollate(mask_channel=self.mask_channel)

    def predict_dataloader(self) -> DataLoader:
        """The official test split, for ``trainer.predict``."""
        return self.test_dataloader()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, unequal={self.unequal!r}, znorm={self.znorm!r})"


__all__ = [
    "UNEQUAL_MODES",
    "ZNORM_MODES",
    "PadCollate",
    "SeriesDataset",
    "UCRDataModule",
    "encode_labels",
    "offline_classification_sets",
    "stratified_split",
]
