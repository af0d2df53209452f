"""timm's training and evaluation transforms for image files, their keyed application, and image loading.

Shared by the DataModules that read image files (an image folder, streaming shards): :class:`ImageTransforms`
holds the settings and builds the pipelines with ``timm.data.create_transform``; :func:`apply_keyed` runs the
training pipeline on one image under the seed of ``(seed, epoch, index)``, so that a sample's augmentation depends
only on where training is (resumes are exact, whatever the workers); :func:`load_rgb` opens a file and converts it
to the colour mode the model takes, with an error naming the path for anything that is not a readable image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from lit_early_phase._validation import check_choice, check_int, check_number
from lit_early_phase.functional.seeding import keyed_global_rng

#: ImageNet's normalisation, the default without ``mean``/``std`` or ``model_name``
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: the interpolations timm's transforms take by name
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming", "random")


class ImageFileError(ValueError):
    """A file that is not a readable image (not an image at all, truncated, or unreadable); the message names it.

    Raised in a DataLoader worker, torch re-raises it in the main process as ``ImageFileError(text)`` with the
    worker's whole traceback as the text; this class keeps only the original message (and says it came from a
    worker), so a bad file met during training reads the same as one found before it.

    Args:
        message: what was wrong, naming the file and what to do.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith(f"Caught {type(self).__name__} in DataLoader worker") and marker in message:
            message = message.rsplit(marker, 1)[1].strip() + " (met in a DataLoader worker)"
        super().__init__(message)


@dataclass(frozen=True)
class ImageTransforms:
    """The settings of timm's image transforms; :meth:`train` and :meth:`eval` build the pipelines.

    Training: random-resized crop to ``image_size`` (``scale``), horizontal flip, an auto-augment policy
    (``auto_augment``, e.g. ``"rand-m9-mstd0.5"``; without one, timm's colour jitter ``color_jitter``), to tensor,
    normalisation, random erasing (``re_prob``). Evaluation: resize to ``image_size / crop_pct``, centre crop,
    to tensor, normalisation. Both take PIL images in the mode of ``in_chans`` (``"RGB"`` or ``"L"``, see
    :func:`load_rgb`) and return float tensors ``(in_chans, image_size, image_size)``.

    Normalisation, interpolation and ``crop_pct`` not given come from ``model_name``'s pretrained config in timm's
    registry (no download), else ImageNet's mean/std, ``"bilinear"`` and ``0.875``. With ``in_chans=1`` a
    three-channel mean/std is averaged to one channel, as timm does for grayscale models.

    Args:
        image_size: side of the square crops, in pixels.
        auto_augment: a timm policy string (``"rand-m9-mstd0.5"``, ``"rand-m9-mstd0.5-inc1"``, ``"augmix-m5-w4-d2"``,
            ``"original"``, ``"v0"``, ...) or ``None`` (no auto-augment).
        re_prob: probability of random erasing (``0``: none).
        hflip: probability of a horizontal flip.
        scale: area range of the random-resized crop, ``(low, high)`` shares of the image.
        color_jitter: timm's colour-jitter strength, used only without ``auto_augment`` (``0``: none).
        interpolation: resize interpolation, one of :data:`INTERPOLATIONS`; ``None``: the model's, else bilinear.
        mean: per-channel mean (``in_chans`` or 3 values); ``None``: the model's, else ImageNet's.
        std: per-channel standard deviation; ``None``: the model's, else ImageNet's.
        crop_pct: centre-crop share at evaluation; ``None``: the model's, else 0.875.
        model_name: a timm model name whose pretrained config gives what is ``None`` above.
        in_chans: channels of the images the model takes, 1 (grayscale) or 3 (RGB).

    Raises:
        ValueError: for a bad setting, an unknown ``model_name`` or an auto-augment string timm does not parse.

    Example:
        >>> from PIL import Image
        >>> transforms = ImageTransforms(image_size=32, auto_augment="rand-m9-mstd0.5", re_prob=0.25)
        >>> image = Image.new("RGB", (48, 40), (200, 30, 90))
        >>> apply_keyed(transforms.train(), image, seed=0, epoch=1, index=7).shape
        torch.Size([3, 32, 32])
        >>> transforms.eval()(image).shape
        torch.Size([3, 32, 32])
    """

    image_size: int = 224
    auto_augment: str | None = None
    re_prob: float = 0.0
    hflip: float = 0.5
    scale: tuple[float, float] = (0.08, 1.0)
    color_jitter: float = 0.4
    interpolation: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    model_name: str | None = None
    in_chans: int = 3

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, minimum=1)
        check_number("re_prob", self.re_prob, low=0.0, high=1.0)
        check_number("hflip", self.hflip, low=0.0, high=1.0)
        check_number("color_jitter", self.color_jitter, low=0.0)
        check_number("crop_pct", self.crop_pct, low=0.0, high=1.0, low_open=True, allow_none=True)
        check_choice("in_chans", self.in_chans, (1, 3), hint="1 for grayscale models, 3 for RGB.")
        if self.interpolation is not None:
            check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        scale = tuple(self.scale)
        if len(scale) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in scale):
            raise ValueError(f"`scale` must be two numbers (low, high), got {self.scale!r}. Typical: (0.08, 1.0).")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"`scale` must satisfy 0 < low <= high, got {self.scale!r}. Typical: (0.08, 1.0).")
        object.__setattr__(self, "scale", (float(scale[0]), float(scale[1])))  # YAML gives a list
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(float(v) for v in value)
            if len(value) not in (self.in_chans, 3):
                counts = "3 values" if self.in_chans == 3 else "1 or 3 values"
                raise ValueError(f"`{name}` must have {counts} for in_chans={self.in_chans}, got {value!r}.")
            if name == "std" and min(value) <= 0:
                raise ValueError(f"`std` must be positive, got {value!r}.")
            object.__setattr__(self, name, value)
        if self.model_name is not None:
            self._pretrained_cfg()  # an unknown name fails now, not in a worker
        if self.auto_augment is not None:
            try:
                self.train()
            except (AssertionError, ValueError, KeyError, IndexError) as error:
                raise ValueError(
                    f"`auto_augment={self.auto_augment!r}` is not a timm policy string ({error!s}). Use e.g. "
                    f"'rand-m9-mstd0.5' (RandAugment), 'augmix-m5-w4-d2', 'original', or None."
                ) from error

    def _pretrained_cfg(self) -> Any | None:
        if self.model_name is None:
            return None
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(self.model_name)
        if cfg is None:
            raise ValueError(
                f"`model_name={self.model_name!r}` is not in timm's registry, so its normalisation is unknown. "
                f"Use a timm model name (e.g. 'resnet18', 'vit_small_patch16_224'), or give `mean` and `std`."
            )
        return cfg

    def resolved(self) -> dict[str, Any]:
        """The settings the pipelines use: ``mean``, ``std`` (``in_chans`` values), ``interpolation``, ``crop_pct``.

        Returns:
            The given values, else the model's pretrained config's, else the defaults.

        Example:
            >>> ImageTransforms(in_chans=1, mean=(0.25, 0.5, 0.75), std=(0.5, 0.5, 0.5)).resolved()["mean"]
            (0.5,)
        """
        cfg = self._pretrained_cfg()
        mean = self.mean or (tuple(cfg.mean) if cfg is not None else IMAGENET_MEAN)
        std = self.std or (tuple(cfg.std) if cfg is not None else IMAGENET_STD)
        if self.in_chans == 1:
            mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
        interpolation = self.interpolation or (cfg.interpolation if cfg is not None else None) or "bilinear"
        crop_pct = self.crop_pct or (cfg.crop_pct if cfg is not None else None) or 0.875
        return {"mean": tuple(mean), "std": tuple(std), "interpolation": interpolation, "crop_pct": crop_pct}

    def train(self) -> Any:
        """The training pipeline (``timm.data.create_transform(..., is_training=True)``): PIL image -> tensor.

        Returns:
            A torchvision ``Compose``; run it through :func:`apply_keyed` for keyed randomness.
        """
        from timm.data import create_transform

        r = self.resolved()
        return create_transform(
            self.image_size,
            is_training=True,
            scale=self.scale,
            hflip=self.hflip,
            color_jitter=self.color_jitter or None,
            auto_augment=self.auto_augment,
            interpolation=r["interpolation"],
            mean=r["mean"],
            std=r["std"],
            re_prob=self.re_prob,
        )

    def eval(self) -> Any:
        """The evaluation pipeline (resize, centre crop, normalise): PIL image -> tensor, no randomness.

        Returns:
            A torchvision ``Compose``.
        """
        from timm.data import create_transform

        r = self.resolved()
        interpolation = "bilinear" if r["interpolation"] == "random" else r["interpolation"]
        return create_transform(
            self.image_size,
            is_training=False,
            interpolation=interpolation,
            mean=r["mean"],
            std=r["std"],
            crop_pct=r["crop_pct"],
        )


def apply_keyed(transform: Any, image: Any, *, seed: int, epoch: int, index: int) -> Any:
    """Run ``transform`` on ``image`` with every global RNG timm's transforms draw from seeded by the key.

    timm's random-resized crop, RandAugment's magnitudes and random erasing draw from Python's ``random``,
    RandAugment's choice of ops and AugMix from NumPy's global RNG, torchvision's flip and colour jitter (and
    erasing's random pixels) from torch's: all three are seeded from ``(seed, epoch, index)`` by
    :func:`~lit_early_phase.functional.keyed_global_rng` and put back afterwards. The output then depends only on
    the key: the same in any worker, on any rank, after a resume.

    Args:
        transform: a callable drawing from the global RNGs, e.g. :meth:`ImageTransforms.train`.
        image: its input (a PIL image).
        seed: the run's data seed.
        epoch: the epoch.
        index: the sample's index in the dataset.

    Returns:
        ``transform(image)``.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> train = ImageTransforms(image_size=16, auto_augment="rand-m9-mstd0.5").train()
        >>> image = Image.new("RGB", (24, 20), (10, 120, 250))
        >>> a = apply_keyed(train, image, seed=0, epoch=2, index=5)
        >>> torch.equal(a, apply_keyed(train, image, seed=0, epoch=2, index=5))
        True
    """
    with keyed_global_rng(seed, epoch, index, python=True, numpy=True):
        return transform(image)


def load_rgb(path: str | os.PathLike, *, in_chans: int = 3) -> Image.Image:
    """Open an image file, decode it fully, and convert it to ``"RGB"`` (``in_chans=3``) or ``"L"`` (``in_chans=1``).

    Grayscale (``L``; 16-bit ``I;16``/``I`` by keeping the high byte), palette (``P``), CMYK and YCbCr files are
    converted by PIL. Transparent images
    (``RGBA``, ``LA``, ``PA``, or a palette with a transparent colour) are composited on white first, so transparent
    pixels show as the white background a viewer shows, not as whatever colour they happen to store (often black).

    Args:
        path: the image file.
        in_chans: 3 for an RGB image, 1 for grayscale.

    Returns:
        The decoded image, in ``"RGB"`` or ``"L"`` mode.

    Raises:
        ImageFileError: (a ``ValueError``) for a file PIL cannot identify (not an image), a truncated file or one
            that cannot be read, naming the path and what to do.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)
        >>> load_rgb(path).getpixel((0, 0))  # fully transparent: the white background
        (255, 255, 255)
    """
    check_choice("in_chans", in_chans, (1, 3), hint="1 for grayscale models, 3 for RGB.")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now: a truncated file fails here, not later in a transform
            image = opened
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            if image.mode.startswith("I;16") or image.mode == "I":
                # 16-bit grayscale: PIL's conversion to L clips at 255 instead of scaling; keep the high byte
                wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
                image = Image.fromarray((wide >> 8).astype(np.uint8), "L")
            return image.convert("RGB" if in_chans == 3 else "L")
    except FileNotFoundError as error:
        raise ImageFileError(f"Image file not found: {os.fspath(path)!r}.") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(
            f"Cannot read {os.fspath(path)!r} as an image ({type(error).__name__}: {error}). It is not an image, "
            f"truncated or damaged: replace or delete it (or move it out of the data folder)."
        ) from error
