"""TreeCrownDataModule on deepforest's images: counts, the split by image, batches, keyed flips, bad arguments."""

import importlib.util
import logging

import pytest
import torch

from lit_early_phase.datamodules import TreeCrownDataModule
from lit_early_phase.datamodules.detection.boxes import read_voc
from lit_early_phase.datamodules.detection.tiling import tile_starts
from lit_early_phase.datamodules.detection.tree_crowns import TRAIN_IMAGES, VAL_IMAGES, deepforest_data_dir
from lit_early_phase.datamodules.loaders import SampleKey

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("deepforest") is None, reason="needs `pip install --no-deps deepforest==2.1.0`"
)


@pytest.fixture(scope="module")
def dm():
    """The defaults, set up once (decoding the 2299x2472 mosaic once per session)."""
    module = TreeCrownDataModule()
    module.setup("fit")
    return module


def test_default_counts(dm):
    assert len(dm.train_set) == 61 and dm.num_classes == 2 and dm.classes == ["Tree"] and dm.overlap_px == 40
    assert sum(len(t["boxes"]) for t in dm.train_set.targets) == 1247
    assert dm.dropped_boxes == 212
    assert len(dm.val_set) == 2 and [len(t["boxes"]) for t in dm.val_set.targets] == [61, 37]
    assert dm.test_set is dm.val_set
    assert all(t["labels"].unique().tolist() in ([1], []) for t in dm.train_set.targets + dm.val_set.targets)


def test_validation_images_are_never_tiled_for_training(dm):
    assert sorted(set(dm.tile_sources)) == [f"{s}.png" for s in sorted(TRAIN_IMAGES)]
    assert dm.tile_sources.count(f"{TRAIN_IMAGES[0]}.png") == 49 and len(dm.tile_sources) == 61
    assert dm.val_set.names == [f"{s}.png" for s in VAL_IMAGES]
    assert not {n.split(" tile at ")[0] for n in dm.train_set.names} & set(dm.val_set.names)


def test_real_tiles_keep_every_box_inside_them_exactly(dm):
    """Each original crown that lies fully inside a tile's window is in that tile, shifted by the tile's origin."""
    data = deepforest_data_dir()
    covered = 0
    for stem in TRAIN_IMAGES:
        boxes = read_voc(data / f"{stem}.xml").boxes
        tiles = [(i, n) for i, n in enumerate(dm.train_set.names) if n.startswith(f"{stem}.png")]
        seen = torch.zeros(len(boxes), dtype=torch.bool)
        for i, name in tiles:
            x, y = (int(part.split("=")[1]) for part in name.split(" tile at ")[1].split(", "))
            image = dm.train_set.images[i]
            assert image.shape == (3, 400, 400)
            inside = (boxes[:, 0] >= x) & (boxes[:, 1] >= y) & (boxes[:, 2] <= x + 400) & (boxes[:, 3] <= y + 400)
            expected = boxes[inside] - torch.tensor([x, y, x, y], dtype=torch.float32)
            got = dm.train_set.targets[i]["boxes"]
            assert {tuple(b) for b in expected.tolist()} <= {tuple(b) for b in got.tolist()}
            assert (got[:, :2] >= 0).all() and (got[:, 2:] <= 400).all()
            seen |= inside
        covered += int(seen.sum())
    assert covered == 851  # of 853 crowns; the other 2 straddle a seam where they are taller than the overlap


def test_tile_origins_cover_the_mosaics():
    assert tile_starts(2299, 400, 40) == [0, 316, 633, 950, 1266, 1582, 1899]
    assert tile_starts(2472, 400, 40) == [0, 345, 691, 1036, 1381, 1727, 2072]


def test_train_loader_batches(dm):
    images, targets = next(iter(dm.train_dataloader()))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == 4
    for image, target in zip(images, targets, strict=True):
        assert image.dtype == torch.float32 and image.shape == (3, 400, 400) and 0 <= image.min() <= image.max() <= 1
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
        assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(target["boxes"])
    val_images, val_targets = next(iter(dm.val_dataloader()))
    assert [len(t["boxes"]) for t in val_targets] == [61, 37] and len(val_images) == 2


def test_keyed_augmentation(dm):
    key = SampleKey(index=7, epoch=2, seed=0)
    (a, ta), (b, tb) = dm.train_set[key], dm.train_set[key]
    assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
    plain = dm.train_set.images[7].float() / 255
    flips = [dm.train_set[SampleKey(7, epoch, 0)][0] for epoch in range(8)]
    assert any(not torch.equal(f, plain) for f in flips) and any(torch.equal(f, plain) for f in flips)


def test_dropped_remnants_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="lit_early_phase.datamodules.detection.tree_crowns"):
        small = TreeCrownDataModule(tile_size=800, overlap=0, min_visible=0.9)
        small.setup()
    assert len(small.train_set) == 16 and small.dropped_boxes > 0
    assert f"{small.dropped_boxes} clipped remnants dropped (min_visible=0.9" in caplog.text
    assert small.hparams["tile_size"] == 800


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"only SOAP_061 .* labels its crowns Alive/Dead"):
        TreeCrownDataModule(label_set="alive_dead")
    with pytest.raises(ValueError, match="`label_set` must be 'tree'"):
        TreeCrownDataModule(label_set="oak")
    with pytest.raises(ValueError, match=r"`overlap` must be a share of tile_size in \[0, 1\) or an int .* 400\)"):
        TreeCrownDataModule(overlap=400)
    with pytest.raises(ValueError, match="min_visible"):
        TreeCrownDataModule(min_visible=1.5)
    with pytest.raises(ValueError, match="tile_size"):
        TreeCrownDataModule(tile_size=8)
    with pytest.raises(FileNotFoundError, match="is missing; `data_dir` must hold deepforest's data files"):
        TreeCrownDataModule(data_dir=str(tmp_path)).setup()
