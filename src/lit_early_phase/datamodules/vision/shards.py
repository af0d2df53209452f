"""Image folder -> LitData shards: :func:`write_image_shards` (and ``python -m`` this module).

Each sample is stored as ``{"image": <the file's encoded bytes>, "label": int, "index": int}`` by
``litdata.optimize``; ``index`` is the sample's position in the split's sorted listing
(:func:`~lit_early_phase.datamodules.list_image_folder`), the identity that keyed augmentation is seeded by.
The class names go beside the shards in ``classes.json`` so that a reader knows ``num_classes`` and ``classes``
without reading any sample.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lit_early_phase.datamodules.vision.folder import list_image_folder
from lit_early_phase.datamodules.vision.transforms import load_rgb

#: the file written beside the shards, holding ``{"classes": [...]}``
CLASSES_FILE = "classes.json"


def _encode(sample: tuple[int, str, int]) -> dict[str, Any]:
    """One sample as stored: the file's bytes as they are (no re-encoding), its label and index.

    The file is decoded once here (:func:`~lit_early_phase.datamodules.load_rgb`), so a non-image or truncated file
    fails while writing, naming its path, and not in a training run.
    """
    index, path, label = sample
    load_rgb(path)
    return {"image": Path(path).read_bytes(), "label": int(label), "index": int(index)}


def write_classes(out_dir: str, classes: list[str]) -> None:
    """Write ``classes.json`` into ``out_dir`` (a local folder, or a URL through ``fsspec``)."""
    text = json.dumps({"classes": list(classes)})
    if "://" in out_dir:
        import fsspec

        with fsspec.open(f"{out_dir.rstrip('/')}/{CLASSES_FILE}", "w") as f:
            f.write(text)
        return
    Path(out_dir, CLASSES_FILE).write_text(text)


def read_classes(shard_dir: str) -> list[str]:
    """The class names saved beside shards by :func:`write_image_shards`.

    Args:
        shard_dir: the shards' folder or URL (a URL is read through ``fsspec``, e.g. ``s3fs`` for ``s3://``).

    Returns:
        The class names, in label order.

    Raises:
        FileNotFoundError: when ``classes.json`` is missing (shards not written by :func:`write_image_shards`).
    """
    path = f"{shard_dir.rstrip('/')}/{CLASSES_FILE}"
    try:
        if "://" in shard_dir:
            import fsspec

            with fsspec.open(path, "r") as f:
                return list(json.load(f)["classes"])
        return list(json.loads(Path(path).read_text())["classes"])
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"No {CLASSES_FILE} in {shard_dir!r}: write the shards with "
            f"`lit_early_phase.datamodules.write_image_shards(src_dir, out_dir)`, which saves the class list beside "
            f'them, or add {CLASSES_FILE} holding {{"classes": [...]}} in label order.'
        ) from err


def _write_split(
    samples: list[tuple[str, int]], out: str, *, chunk_bytes: str | int, num_workers: int, seed: int | None
) -> None:
    from litdata import optimize

    indexed = [(i, path, label) for i, (path, label) in enumerate(samples)]
    if seed is not None:
        indexed = [indexed[i] for i in np.random.default_rng(seed).permutation(len(indexed))]
    optimize(
        fn=_encode,
        inputs=indexed,
        output_dir=out,
        chunk_bytes=chunk_bytes,
        num_workers=num_workers,
        reorder_files=False,
        verbose=False,
    )


def write_image_shards(
    src_dir: str | os.PathLike,
    out_dir: str,
    *,
    chunk_bytes: str | int = "64MB",
    num_workers: int = 1,
    shuffle_seed: int | None = 0,
) -> list[str]:
    """Convert an image folder into LitData shards, in one call.

    The folder is read as :class:`~lit_early_phase.datamodules.ImageFolderDataModule` reads it
    (:func:`~lit_early_phase.datamodules.list_image_folder`, with its checks): ``src_dir/<class>/<image>`` gives
    shards in ``out_dir``; ``src_dir/train/<class>/...`` with ``val/`` (and ``test/``) gives ``out_dir/train``,
    ``out_dir/val`` (and ``out_dir/test``), every split labelled by the training classes. The files' encoded
    bytes are stored as they are (a JPEG stays a JPEG), with the label and the sample's index; the class list is
    saved beside each split's shards (``classes.json``), so
    :class:`~lit_early_phase.datamodules.StreamingImageDataModule` knows ``num_classes`` without reading data.
    ``out_dir`` may be a local folder or an object-store URL that ``litdata.optimize`` writes to (``s3://...``).

    Args:
        src_dir: the image folder (either layout).
        out_dir: where the shards go; must not hold shards already.
        chunk_bytes: target size of one shard (``"64MB"``; litdata's ``chunk_bytes``).
        num_workers: processes that read the files.
        shuffle_seed: write the samples in an order permuted by this seed (``None``: class by class). LitData
            shuffles the order of the shards and the samples inside each, so shards written class by class would
            give batches of mostly one class.

    Returns:
        The class names, in label order.

    Raises:
        FileNotFoundError: for a missing folder.
        ValueError: for no class folder, an empty class folder or a ``val/`` class missing in ``train/``.
        ImageFileError: (from a writer process) for a file that is not a readable image, naming it.

    Example:
        >>> write_image_shards("data", "shards")  # data/train, data/val -> shards/train, shards/val  # doctest: +SKIP
        ['cat', 'dog']
    """
    listing = list_image_folder(src_dir)
    out = str(out_dir).rstrip("/")
    splits = {"train": listing.train, "val": listing.val, "test": listing.test}
    if listing.val is None and listing.test is None and not Path(src_dir, "train").is_dir():
        splits = {"": listing.train}  # one folder: its shards go straight into out_dir
    for split, samples in splits.items():
        if not samples:  # no such split, or an empty one
            continue
        target = f"{out}/{split}" if split else out
        _write_split(samples, target, chunk_bytes=chunk_bytes, num_workers=num_workers, seed=shuffle_seed)
        write_classes(target, list(listing.classes))
    return list(listing.classes)


def main(argv: list[str] | None = None) -> int:
    """``python -m lit_early_phase.datamodules.vision.shards SRC_DIR OUT_DIR``: write shards from an image folder.

    Args:
        argv: the arguments (``None``: ``sys.argv[1:]``).

    Returns:
        0 on success.
    """
    parser = argparse.ArgumentParser(description=write_image_shards.__doc__.splitlines()[0])  # type: ignore[union-attr]
    parser.add_argument("src_dir", help="image folder: <class>/<image>, or train/ (val/, test/) of those")
    parser.add_argument("out_dir", help="folder or URL (s3://...) for the shards")
    parser.add_argument("--chunk-bytes", default="64MB", help="target shard size (default: 64MB)")
    parser.add_argument("--num-workers", type=int, default=1, help="processes reading the files (default: 1)")
    args = parser.parse_args(argv)
    classes = write_image_shards(args.src_dir, args.out_dir, chunk_bytes=args.chunk_bytes, num_workers=args.num_workers)
    print(f"Wrote shards of {len(classes)} classes to {args.out_dir}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
