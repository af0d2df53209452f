"""Reading UCR/UEA classification sets through aeon: which sets are on disk, name checks, one split's arrays.

aeon ships ten classification sets inside its wheel (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1,
BasicMotions, JapaneseVowels, PickupGestureWiimoteZ, plus its own fixtures UnitTest and Covid3Month_disc);
:func:`offline_classification_sets` lists them together with any set already in aeon's download cache. Any
other of the ~280 names of the tsml archive is fetched from Zenodo by ``aeon.datasets.load_classification``
when the caller allows a download.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from lightning_utilities.core.imports import RequirementCache

#: aeon as the ``timeseries`` extra of ``pyproject.toml`` asks for it.
AEON = RequirementCache("aeon>=1.0")


def require_aeon() -> ModuleType:
    """``aeon.datasets``, or an error that says how to install aeon.

    Returns:
        The ``aeon.datasets`` module.

    Raises:
        ModuleNotFoundError: when aeon is missing or too old (the message has the ``pip install`` command).
    """
    if not AEON:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            f"UCRDataModule reads UCR/UEA data through aeon: `pip install 'lit-early-phase[timeseries]'`. "
            f"{AEON.message}."
        )
    return importlib.import_module("aeon.datasets")


def _data_roots(extract_path: str | os.PathLike | None) -> list[Path]:
    """Folders aeon reads without a download: ``extract_path`` alone if given, else bundled + cache."""
    if extract_path is not None:
        return [Path(extract_path).expanduser().resolve()]
    datasets = require_aeon()
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


def check_available(name: str, *, extract_path: str | None, download: bool) -> None:
    """Refuse a set that is not on disk (without ``download``) or not in aeon's tsml archive (with it).

    Args:
        name: the data set name.
        extract_path: the folder searched instead of aeon's (``None``: aeon's bundled data and cache).
        download: whether a download is allowed.

    Raises:
        ValueError: naming the set, close matches and the sets that are available.

    Example:
        >>> check_available("GunPoint", extract_path=None, download=False)
    """
    available = offline_classification_sets(extract_path)
    if name in available:
        return
    where = f"in {extract_path!r}" if extract_path else "offline (aeon's bundled data and cache)"
    if not download:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"`name={name!r}` is not available {where}.{hint} Available: {available}. "
            f"Pass `download=True` to fetch it from the tsml archive on Zenodo with "
            f"`aeon.datasets.load_classification` (needs a network)."
        )
    require_aeon()
    from aeon.datasets.tsc_datasets import tsc_zenodo

    if name not in tsc_zenodo:
        close = difflib.get_close_matches(name, list(tsc_zenodo), n=3, cutoff=0.5)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(
            f"`name={name!r}` is not a classification set of aeon's tsml archive.{hint} The names "
            f"are listed in `aeon.datasets.tsc_datasets.tsc_zenodo`; offline: {available}."
        )


def load_split(
    name: str, split: str, *, extract_path: str | None, equal_length: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """One official split as float64 ``(C, L_i)`` arrays and raw labels (aeon downloads it when not on disk).

    Args:
        name: the data set name.
        split: ``"train"`` or ``"test"``.
        extract_path: where aeon reads (and writes downloads); ``None``: its bundled data and cache.
        equal_length: read the archive's ``<name>_eq`` files (series resampled to one length).

    Returns:
        ``(series, labels)``.

    Raises:
        ValueError: if the split has missing values (NaN).

    Example:
        >>> series, labels = load_split("GunPoint", "train", extract_path=None, equal_length=False)
        >>> len(series), series[0].shape, labels[:3].tolist()
        (50, (1, 150), ['2', '2', '1'])
    """
    x, y = require_aeon().load_classification(
        name, split=split, extract_path=extract_path, load_equal_length=equal_length, load_no_missing=True
    )
    series = _as_series_list(x)
    if any(np.isnan(s).any() for s in series):
        raise ValueError(
            f"{name} ({split}) has missing values (NaN) and the archive has no imputed <name>_nmv "
            f"version here; impute them before use."
        )
    return series, np.asarray(y)


def _as_series_list(x: Any) -> list[np.ndarray]:
    """Turn aeon's ``(N, C, L)`` array or list of ``(C, L_i)`` arrays -> list of float arrays."""
    return [np.asarray(s, dtype=np.float64) for s in x]
