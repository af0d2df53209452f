"""Image classification from LitData shards (a local folder or an object store): ``StreamingImageDataModule``.

LitData (``litdata.StreamingDataset`` / ``StreamingDataLoader``) reads the shards that
:func:`~lit_early_phase.datamodules.write_image_shards` wrote, downloading them chunk by chunk from ``s3://``
(or another store litdata knows) into a local cache. What holds, each tested in
``tests/datamodules/test_streaming.py``:

* under DDP every rank reads its own samples (LitData splits the chunks between ranks and workers); with more
  than one rank LitData drops the tail so that every rank gets the same number of whole batches (validation
  too);
* an epoch has ``len(train_dataloader())`` batches; ``drop_last`` drops a rank's last partial batch;
* a mid-epoch checkpoint resumes exactly through ``trainer.fit(ckpt_path=...)``: the loader's state goes into
  the checkpoint with the DataModule's state and is put back into the loader when ``train_dataloader`` builds
  it, whether or not Lightning reaches the loader's ``load_state_dict`` itself (LitData issue #775);
* each image's augmentation is drawn from ``(seed, epoch, index)``, so the second epoch draws differently from the
  first and a resumed run draws what the uninterrupted run drew.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from lit_early_phase._validation import check_choice, check_int
from lit_early_phase.datamodules.loaders import check_batch_size, check_seed, default_seed
from lit_early_phase.datamodules.vision.shards import read_classes
from lit_early_phase.datamodules.vision.transforms import ImageTransforms


class StreamingImageDataModule(L.LightningDataModule):
    """Image classification from LitData shards written by :func:`~lit_early_phase.datamodules.write_image_shards`.

    ``train_dir`` and ``val_dir`` are local folders or object-store URLs that LitData reads (``s3://bucket/x``,
    also ``gs://``, ``azure://``; credentials as LitData takes them), cached locally chunk by chunk in
    ``cache_dir``. ``num_classes`` and ``classes`` come from the ``classes.json`` beside the shards (the CLI
    links ``num_classes`` and ``in_chans`` to the model).

    Transforms are :class:`~lit_early_phase.datamodules.ImageFolderDataModule`'s (the same arguments:
    :class:`~lit_early_phase.datamodules.ImageTransforms`, timm's ``create_transform``): random-resized crop,
    flip, an optional auto-augment policy (``"rand-m9-mstd0.5"``), random erasing, normalisation; evaluation
    resizes and centre-crops. Each training
    image's augmentation draws from ``(seed, epoch, index)`` (:func:`~lit_early_phase.datamodules.apply_keyed`;
    ``index`` is the sample's place in the image folder, stored in the shard), so a run resumed mid-epoch sees
    the same images, augmented the same way, as the uninterrupted run, and every epoch draws anew.

    Args:
        train_dir: the training shards (folder or URL).
        val_dir: the validation shards, or ``None`` (no validation).
        batch_size: batch size, at least 2.
        image_size: side of the square crops, in pixels.
        auto_augment: timm policy string (``"rand-m9-mstd0.5"``), or ``None``.
        re_prob: random-erasing probability.
        hflip: probability of a horizontal flip.
        scale: random-resized crop's area range.
        color_jitter: timm's colour jitter, used only without ``auto_augment``.
        interpolation: resize interpolation; ``None``: the model's, else bilinear.
        mean: normalisation mean; ``None``: the model's (``model_name``), else ImageNet's.
        std: normalisation standard deviation; ``None``: the model's, else ImageNet's.
        crop_pct: centre-crop share at evaluation; ``None``: the model's, else 0.875.
        model_name: a timm model name whose pretrained config gives what is ``None`` above.
        in_chans: 3 (images decoded as RGB) or 1 (grayscale); the model's ``in_chans`` (linked by the CLI).
        augment: training augmentation on (``False``: the evaluation transform for training too).
        shuffle: shuffle the training shards and samples each epoch (LitData's chunk-then-sample shuffle).
        drop_last: drop a rank's last partial training batch (LitData turns it on with several ranks).
        num_workers: loader worker processes (not kept between epochs: each epoch's workers read its epoch).
        pin_memory: pin host memory.
        seed: seed of the shuffle and of the augmentation; ``None`` takes ``seed_everything``'s (else 0).
        cache_dir: local cache for remote shards (``None``: LitData's default).
        max_cache_size: cache size limit for remote shards (``"50GB"``).

    Raises:
        ValueError: for a bad argument, naming it.

    Example:
        >>> dm = StreamingImageDataModule("shards/train", "shards/val", image_size=224)  # doctest: +SKIP
        >>> dm.num_classes  # from shards/train/classes.json  # doctest: +SKIP
        10
    """

    def __init__(
        self,
        train_dir: str,
        val_dir: str | None = None,
        batch_size: int = 64,
        image_size: int = 224,
        auto_augment: str | None = None,
        re_prob: float = 0.0,
        hflip: float = 0.5,
        scale: tuple[float, float] = (0.08, 1.0),
        color_jitter: float = 0.4,
        interpolation: str | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        crop_pct: float | None = None,
        model_name: str | None = None,
        in_chans: int = 3,
        augment: bool = True,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int | None = None,
        cache_dir: str | None = None,
        max_cache_size: str = "50GB",
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, typical="32-256 for images")
        check_int("num_workers", num_workers, minimum=0)
        check_seed(seed)
        for name, value in (("augment", augment), ("shuffle", shuffle), ("drop_last", drop_last)):
            check_choice(name, value, (True, False))
        self.transforms = ImageTransforms(
            image_size=image_size,
            auto_augment=auto_augment,
            re_prob=re_prob,
            hflip=hflip,
            scale=scale,
            color_jitter=color_jitter,
            interpolation=interpolation,
            mean=mean,
            std=std,
            crop_pct=crop_pct,
            model_name=model_name,
            in_chans=in_chans,
        )
        self.train_dir, self.val_dir = str(train_dir), None if val_dir is None else str(val_dir)
        self.batch_size, self.in_chans = batch_size, in_chans
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self._classes: tuple[str, ...] | None = None
        self.train_set: Any = None
        self.val_set: Any = None
        self._train_loader: Any = None
        self._pending_loader_state: dict[str, Any] | None = None

    # what the CLI links --------------------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, from ``classes.json`` beside the training shards (read once)."""
        if self._classes is None:
            self._classes = tuple(read_classes(self.train_dir))
        return self._classes

    @property
    def num_classes(self) -> int:
        """Number of classes (the model's ``num_classes``, linked by the CLI)."""
        return len(self.classes)

    # datasets and loaders ------------------------------------------------------------------------------------
    def _seed(self) -> int:
        return default_seed() if self.seed is None else self.seed

    def _dataset(self, input_dir: str, *, training: bool) -> Any:
        from lit_early_phase.datamodules.vision.litdata_stream import KeyedImageStream as cls

        kwargs: dict[str, Any] = {"max_cache_size": self.max_cache_size}
        if self.cache_dir is not None and "://" in input_dir:
            from litdata.streaming.resolver import Dir

            input_dir = Dir(path=self.cache_dir, url=input_dir)  # type: ignore[assignment]
        return cls(
            input_dir,
            image_transform=self.transforms.train() if training and self.augment else self.transforms.eval(),
            keyed=training and self.augment,
            seed=self._seed(),
            in_chans=self.in_chans,
            shuffle=training and self.shuffle,
            drop_last=(self.drop_last or None) if training else None,
            **kwargs,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the shards (after the process group exists: LitData reads the rank and world size here)."""
        try:
            import litdata  # noqa: F401
        except ImportError as error:
            raise ModuleNotFoundError(
                "StreamingImageDataModule reads LitData shards: install litdata "
                "(`pip install 'lit-early-phase[streaming]'`)."
            ) from error
        if self.train_set is None:
            self.train_set = self._dataset(self.train_dir, training=True)
        if self.val_dir is not None and self.val_set is None:
            self.val_set = self._dataset(self.val_dir, training=False)

    def train_dataloader(self) -> Any:
        """A ``StreamingDataLoader`` over the training shards, put at the saved position when resuming.

        Raises:
            RuntimeError: before ``setup``.
        """
        if self.train_set is None:
            raise RuntimeError("No data for this stage: call `setup()` first.")
        from lit_early_phase.datamodules.vision.litdata_stream import ResumingStreamLoader

        loader = ResumingStreamLoader(
            self.train_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=None,  # the dataset decides: as given, forced on by LitData with several ranks
        )
        if self._pending_loader_state:
            loader.load_state_dict(self._pending_loader_state)
        self._pending_loader_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> Any:
        """Validation batches in shard order (none without ``val_dir``)."""
        from litdata import StreamingDataLoader

        if self.val_set is None:
            return []
        return StreamingDataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    # state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The training loader's LitData state (plain values), once a training loader exists."""
        if self._train_loader is None:
            return {}
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved loader state for the next :meth:`train_dataloader`, which puts it into the loader.

        Lightning's fit loop saves a stateful loader's state and loads it back only when it restarts inside the
        fit loop, and not into a loader something built earlier (LitData issue #775, Lightning #20550); the
        DataModule's state is restored before any loader is built, so the loader starts at the saved position
        either way.
        """
        self._pending_loader_state = state_dict.get("train_loader")
