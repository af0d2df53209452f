"""timm transforms for image files: settings, keyed application over the three global RNGs, image loading."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from lit_early_phase.datamodules import ImageFileError, ImageTransforms, apply_keyed, load_rgb


def _photo(size: tuple[int, int] = (48, 40)) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_keyed_augmentation_depends_only_on_the_key_and_restores_the_global_rngs():
    train = ImageTransforms(image_size=24, auto_augment="rand-m9-mstd0.5", re_prob=0.5).train()
    image = _photo()
    a = apply_keyed(train, image, seed=0, epoch=1, index=3)
    torch.manual_seed(123), random.seed(5), np.random.seed(7)  # other global states: the same output
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    b = apply_keyed(train, image, seed=0, epoch=1, index=3)
    assert torch.equal(a, b)
    assert torch.equal(before[0], torch.get_rng_state())
    assert before[1] == random.getstate()
    assert np.array_equal(before[2], np.random.get_state()[1])
    others = [apply_keyed(train, image, seed=0, epoch=e, index=i) for e, i in ((2, 3), (1, 4), (1, 5))]
    assert all(not torch.equal(a, o) for o in others)


@pytest.mark.parametrize("library", ["python", "numpy"])
def test_each_global_rng_timm_draws_from_is_seeded(library):
    """Without seeding Python's `random` (crops) or NumPy's (RandAugment's ops), the key would not fix the output."""
    import lit_early_phase.datamodules.vision.transforms as module

    train = ImageTransforms(image_size=24, auto_augment="rand-m9-mstd0.5", hflip=0.0).train()
    image = _photo()
    outputs = []
    for state in (1, 2, 3):
        random.seed(state), np.random.seed(state)
        with module.keyed_global_rng(0, 0, 0, **{library: True}):
            outputs.append(train(image))
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])  # the other library still varies
    outputs = [apply_keyed(train, image, seed=0, epoch=0, index=0) for _ in range(3)]
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])


def test_resolved_normalisation_from_the_model_grayscale_and_defaults():
    assert ImageTransforms().resolved() == {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "interpolation": "bilinear",
        "crop_pct": 0.875,
    }
    test_resnet = ImageTransforms(model_name="test_resnet").resolved()
    assert test_resnet["mean"] == (0.5, 0.5, 0.5) and test_resnet["crop_pct"] == 0.95
    gray = ImageTransforms(in_chans=1, model_name="resnet18").resolved()
    assert gray["mean"] == pytest.approx((0.449,)) and gray["std"] == pytest.approx((0.226,))
    assert gray["interpolation"] == "bicubic"
    given = ImageTransforms(mean=[0.1, 0.2, 0.3], std=[1, 1, 1], model_name="resnet18").resolved()
    assert given["mean"] == (0.1, 0.2, 0.3) and given["std"] == (1.0, 1.0, 1.0)


def test_pipelines_shapes_and_normalisation():
    image = Image.new("RGB", (50, 30), (255, 255, 255))
    transforms = ImageTransforms(image_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = transforms.eval()(image)
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25
    gray = ImageTransforms(image_size=16, in_chans=1, auto_augment="rand-m9-mstd0.5", re_prob=1.0)
    for index in range(20):  # RandAugment's ops on "L" images
        assert apply_keyed(gray.train(), image.convert("L"), seed=0, epoch=0, index=index).shape == (1, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"auto_augment": "foo"}, "is not a timm policy string"),
        ({"model_name": "no_such_model"}, "is not in timm's registry"),
        ({"scale": (0.5, 0.1)}, "0 < low <= high"),
        ({"in_chans": 2}, "`in_chans` must be one of"),
        ({"mean": (0.5, 0.5)}, r"`mean` must have 3 values for in_chans=3"),
        ({"std": (0.0, 1.0, 1.0)}, "`std` must be positive"),
        ({"re_prob": 1.5}, "re_prob"),
        ({"interpolation": "cubic"}, "interpolation"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageTransforms(**kwargs)


def test_load_rgb_converts_every_mode(tmp_path):
    photo = _photo()
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg")
    photo.convert("L").save(tmp_path / "gray.png")
    photo.convert("P").save(tmp_path / "palette.png")
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray(np.full((4, 4), 60000, dtype=np.uint16)).save(tmp_path / "sixteen.png")
    for name in ("cmyk.jpg", "gray.png", "palette.png", "rgba.png"):
        assert load_rgb(tmp_path / name).mode == "RGB"
        assert load_rgb(tmp_path / name, in_chans=1).mode == "L"
    rgb = load_rgb(tmp_path / "rgba.png")
    assert rgb.getpixel((0, 0)) == (255, 255, 255)  # transparent: composited on white
    assert rgb.getpixel((1, 1)) == (0, 0, 255)  # opaque: kept
    assert load_rgb(tmp_path / "sixteen.png", in_chans=1).getpixel((0, 0)) == 60000 >> 8
    cmyk = np.asarray(load_rgb(tmp_path / "cmyk.jpg"), dtype=float)
    assert np.abs(cmyk - np.asarray(photo, dtype=float)).mean() < 20  # the colours survive (JPEG loses some)


def test_load_rgb_names_the_bad_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    _photo().save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name, what in (("notes.jpg", "UnidentifiedImageError"), ("cut.jpg", "truncated")):
        with pytest.raises(ImageFileError, match=rf"{name}.*{what}.*replace or delete it"):
            load_rgb(tmp_path / name)
    with pytest.raises(ImageFileError, match=r"not found.*missing\.png"):
        load_rgb(tmp_path / "missing.png")
