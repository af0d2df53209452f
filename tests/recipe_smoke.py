"""A small real image folder and the overrides that run the image-folder recipes for a few steps.

Shared by tests/cli/test_configs.py, tests/cli/test_paper_recipes.py and scripts/gpu_check.py (which puts
``tests/`` on its path), so the CPU smoke runs and the prepared GPU check train on the same folder. The images are
the 20 real ImageNet JPEGs that foolbox ships in its ``data/`` folder (``make setup`` installs it with
``--no-deps``); their labels do not matter for a smoke run, so they are dealt into a few classes by position.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

IMAGE_FOLDER_DATAMODULE = "ImageFolderDataModule"

# per recipe: model arguments that keep its architecture but shrink what a CPU step costs (smaller images)
_SMALLER: dict[str, list[str]] = {
    "cifar10_resnet18_mixup_pause": [],  # ResNet-18 at 32 px: already small
    "tinyimagenet_vit_s_mixup_pause": [],  # ViT-S at 64 px, 8 px patches: already small
    "imagenet_vit_t_alpha_boost": [
        "--data.init_args.image_size=64",
        "--model.init_args.backbone_kwargs={img_size: 64, drop_path_rate: 0.1}",
    ],
}


def foolbox_images() -> list[Path]:
    """The 20 ImageNet JPEGs of foolbox's ``data/`` folder, sorted; empty when foolbox is not installed."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted((Path(spec.submodule_search_locations[0]) / "data").glob("imagenet_*.jpg"))


def build_image_folder(root: Path, *, classes: int = 4) -> Path:
    """Copy foolbox's ImageNet JPEGs into ``root/train/<class>/`` and ``root/val/<class>/`` (one per class in val).

    Args:
        root: the folder to create (the recipe's ``data_dir``).
        classes: how many class subfolders (the images are dealt round-robin).

    Returns:
        ``root``.

    Raises:
        FileNotFoundError: when foolbox is not installed.
    """
    images = foolbox_images()
    if not images:
        raise FileNotFoundError("foolbox's sample images are missing: `pip install --no-deps foolbox==3.3.4`")
    for i, image in enumerate(images):
        split = "val" if i >= len(images) - classes else "train"
        folder = root / split / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
    return root


def uses_image_folder(recipe: dict) -> bool:
    """Whether a loaded recipe trains on an ``ImageFolderDataModule`` (its data live in a user folder)."""
    data = recipe.get("data") or {}
    class_path = data.get("class_path", "") if isinstance(data, dict) else str(data)
    return class_path.rsplit(".", 1)[-1] == IMAGE_FOLDER_DATAMODULE


def smoke_args(name: str, data_dir: Path, *, accelerator: str = "cpu", precision: str = "32-true") -> list[str]:
    """The overrides that run an image-folder recipe on one device of this machine, on ``data_dir``.

    Args:
        name: the recipe's name.
        data_dir: a folder made by :func:`build_image_folder`.
        accelerator: Lightning's accelerator (``cpu`` here, ``cuda`` in scripts/gpu_check.py).
        precision: Lightning's precision (``32-true`` here, ``bf16-mixed`` on a GPU).

    Returns:
        CLI arguments to append after ``fit --config NAME``.
    """
    return [
        f"--trainer.accelerator={accelerator}",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        f"--trainer.precision={precision}",
        f"--data.init_args.data_dir={data_dir}",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        f"--data.init_args.pin_memory={accelerator == 'cuda'}",
        *_SMALLER.get(name, []),
    ]
