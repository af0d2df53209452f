"""Detection data: box checks, VOC/COCO readers, tiling, box-aware flips, the folder DataModules, bad input."""

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from lit_early_phase.datamodules import (
    CocoDetectionDataModule,
    DetectionDataModule,
    DetectionDataset,
    TreeCrownDataModule,
    VOCDetectionDataModule,
    detection_collate,
)
from lit_early_phase.datamodules.detection.boxes import check_boxes, check_labels, read_coco, read_voc
from lit_early_phase.datamodules.detection.dataset import flip_augmentation
from lit_early_phase.datamodules.detection.tiling import crop_boxes, tile_image, tile_starts
from lit_early_phase.datamodules.loaders import SampleKey

_spec = importlib.util.find_spec("deepforest")
pytestmark = pytest.mark.skipif(_spec is None, reason="needs `pip install --no-deps deepforest==2.1.0`")
DATA = Path(_spec.submodule_search_locations[0]) / "data" if _spec else Path()


def read_csv(path: Path) -> dict[str, tuple[list[list[float]], list[str]]]:
    """deepforest's CSV (image_path,xmin,ymin,xmax,ymax,label) -> {image: (boxes, names)}."""
    out: dict[str, tuple[list, list]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            boxes, names = out.setdefault(row["image_path"], ([], []))
            boxes.append([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
            names.append(row["label"])
    return out


# readers and checks --------------------------------------------------------------------------------------------
def test_voc_matches_csv():
    ann = read_voc(DATA / "OSBS_029.xml")
    boxes, names = read_csv(DATA / "OSBS_029.csv")["OSBS_029.tif"]
    assert (ann.image, ann.width, ann.height) == ("OSBS_029.tif", 400, 400)
    assert ann.boxes.shape == (61, 4) and ann.boxes.dtype == torch.float32
    assert ann.boxes.tolist() == boxes
    assert ann.names == names == ["Tree"] * 61


def test_check_boxes_clips_within_tolerance():
    out = check_boxes([[-1.5, 0, 10, 10], [390, 395, 401, 402], [5, 5, 6, 6]], width=400, height=400, where="x")
    assert out.tolist() == [[0, 0, 10, 10], [390, 395, 400, 400], [5, 5, 6, 6]]
    assert check_boxes([], width=4, height=4, where="x").shape == (0, 4)
    # a larger tolerance clips what the default refuses
    assert check_boxes([[0, 0, 410, 10]], width=400, height=400, where="x", tolerance=20).tolist() == [[0, 0, 400, 10]]


@pytest.mark.parametrize(
    ("box", "match"),
    [
        ([10, 0, 10, 5], r"img\.png: box 1 \[10.0, 0.0, 10.0, 5.0\] has x2 <= x1 or y2 <= y1"),
        ([10, 5, 20, 4], r"box 1 .* has x2 <= x1 or y2 <= y1"),
        ([500, 10, 520, 30], r"box 1 .* lies fully outside the 400x300 image"),
        ([10, -30, 50, 40], r"box 1 .* overhangs the 400x300 image by 30 px, more than the tolerance of 2 px"),
        ([10, 0, float("nan"), 5], r"box 1 .* non-finite"),
    ],
)
def test_check_boxes_refuses(box, match):
    with pytest.raises(ValueError, match=match):
        check_boxes([[0, 0, 1, 1], box], width=400, height=300, where="img.png")


def test_check_labels_refuses_background_and_out_of_range():
    assert check_labels([1, 2], num_classes=3, where="x").dtype == torch.int64
    with pytest.raises(ValueError, match=r"a\.png: box 1 has label 0, which torchvision's detectors reserve"):
        check_labels([1, 0], num_classes=3, where="a.png")
    with pytest.raises(ValueError, match=r"box 0 has label 3, outside 1\.\.2 for num_classes=3 .* num_classes=4"):
        check_labels([3], num_classes=3, where="a.png")
    with pytest.raises(ValueError, match="labels must be integers"):
        check_labels([1.0], num_classes=3, where="a.png")


def test_dataset_refuses_bad_targets():
    image = torch.zeros(3, 20, 30, dtype=torch.uint8)
    with pytest.raises(ValueError, match="im7: box 0 has label 0"):
        DetectionDataset([image], [{"boxes": [[0, 0, 5, 5]], "labels": [0]}], num_classes=2, names=["im7"])
    with pytest.raises(ValueError, match="im7: 1 boxes but 2 labels"):
        DetectionDataset([image], [{"boxes": [[0, 0, 5, 5]], "labels": [1, 1]}], num_classes=2, names=["im7"])
    with pytest.raises(ValueError, match=r"im7: box 0 .* lies fully outside the 30x20 image"):
        DetectionDataset([image], [{"boxes": [[0, 25, 5, 29]], "labels": [1]}], num_classes=2, names=["im7"])
    with pytest.raises(ValueError, match=r"uint8 \(3, H, W\)"):
        DetectionDataset([image.float()], [{"boxes": [], "labels": []}], num_classes=2)


# tiling --------------------------------------------------------------------------------------------------------
def test_tile_starts():
    assert tile_starts(1249, 400, 40) == [0, 283, 566, 849]
    assert tile_starts(1035, 400, 40) == [0, 318, 635]
    assert tile_starts(760, 400, 40) == [0, 360]
    assert tile_starts(400, 400, 0) == [0] and tile_starts(10, 400, 0) == [0]


def test_tiling_keeps_shifts_clips_and_drops():
    image = torch.arange(3 * 100 * 160, dtype=torch.int64).reshape(3, 100, 160)  # every pixel distinct
    boxes = torch.tensor(
        [
            [10.0, 10, 30, 30],  # fully inside tile (0, 0) only
            [100, 60, 120, 90],  # fully inside tile (96, 36); 12x30 of 20x30 in (48, 36); 4 rows in y=0 tiles
            [50, 20, 70, 40],  # 14/20 of its width in tile (0, 0), fully inside (48, 0); 4 rows in y=36 tiles
            [62, 5, 66, 15],  # 2/4 of it in tile x=0 (kept at 0.5), fully inside x=48
            [63.5, 50, 70, 60],  # 0.5 px sliver in tile x=0: dropped there even at min_visible=0
        ]
    )
    labels = torch.tensor([1, 2, 3, 4, 5])
    tiles, dropped = tile_image(image, boxes, labels, tile_size=64, overlap=16, min_visible=0.5, source="syn")
    assert [(t.x, t.y) for t in tiles] == [(x, y) for y in (0, 36) for x in (0, 48, 96)]
    for t in tiles:
        assert torch.equal(t.image, image[:, t.y : t.y + 64, t.x : t.x + 64]) and t.source == "syn"
    by_origin = {(t.x, t.y): t for t in tiles}
    t00 = by_origin[(0, 0)]
    got = dict(zip(t00.labels.tolist(), t00.boxes.tolist(), strict=True))
    assert got == {1: [10, 10, 30, 30], 3: [50, 20, 64, 40], 4: [62, 5, 64, 15]}
    t48 = by_origin[(48, 0)]
    got = dict(zip(t48.labels.tolist(), t48.boxes.tolist(), strict=True))
    assert got == {3: [2, 20, 22, 40], 4: [14, 5, 18, 15], 5: [15.5, 50, 22, 60]}
    assert by_origin[(96, 36)].boxes.tolist() == [[4, 24, 24, 54]] and by_origin[(96, 36)].labels.tolist() == [2]
    assert by_origin[(48, 36)].labels.tolist() == [2, 5]
    assert by_origin[(48, 36)].boxes.tolist() == [[52, 24, 64, 54], [15.5, 14, 22, 24]]
    # dropped: box 2 in (48, 0) and (96, 0), box 3 in (0, 36) and (48, 36) (4 of 20 rows each), box 5's 0.5 px
    # sliver in (0, 0) and (0, 36)
    assert dropped == 6
    _, _, n = crop_boxes(boxes, labels, (0, 0, 64, 64), min_visible=0.0, min_side=2)
    assert n == 1  # the sliver, whatever min_visible
    _, lab, n = crop_boxes(boxes, labels, (0, 0, 64, 64), min_visible=0.6, min_side=2)
    assert lab.tolist() == [1, 3] and n == 2  # box 4 shows 0.5 of its area, below 0.6
    with pytest.raises(ValueError, match="overlap"):
        tile_image(image, boxes, labels, tile_size=64, overlap=64)


# augmentation --------------------------------------------------------------------------------------------------
def _asymmetric():
    image = torch.zeros(3, 20, 30, dtype=torch.uint8)
    image[0, 2:6, 3:11] = 200  # the box's pixels, off-centre
    target = {"boxes": torch.tensor([[3.0, 2, 11, 6]]), "labels": torch.tensor([1])}
    return image, target


@pytest.mark.parametrize(
    ("transform", "expected", "flip_dims"),
    [
        (v2.RandomHorizontalFlip(p=1.0), [30 - 11, 2, 30 - 3, 6], [-1]),
        (v2.RandomVerticalFlip(p=1.0), [3, 20 - 6, 11, 20 - 2], [-2]),
    ],
)
def test_flips_move_boxes(transform, expected, flip_dims):
    image, target = _asymmetric()
    out_image, out = DetectionDataset([image], [target], num_classes=2, augment=transform)[0]
    assert out["boxes"].tolist() == [expected] and type(out["boxes"]) is torch.Tensor
    assert torch.equal(out_image, image.flip(flip_dims).float() / 255) and type(out_image) is torch.Tensor
    x1, y1, x2, y2 = (int(v) for v in expected)
    assert (out_image[0, y1:y2, x1:x2] > 0.7).all() and out_image[0].gt(0).sum() == (x2 - x1) * (y2 - y1)


def test_keyed_flips_are_reproducible_and_consistent():
    image, target = _asymmetric()
    data = DetectionDataset([image], [target], num_classes=2, augment=flip_augmentation())
    rng = torch.get_rng_state()
    seen = set()
    for epoch in range(12):
        key = SampleKey(index=0, epoch=epoch, seed=5)
        (a, ta), (b, tb) = data[key], data[key]
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
        for h in (False, True):
            for v in (False, True):
                dims = ([-1] if h else []) + ([-2] if v else [])
                if torch.equal(a, (image.flip(dims) if dims else image).float() / 255):
                    x1, x2 = (30 - 11, 30 - 3) if h else (3, 11)
                    y1, y2 = (20 - 6, 20 - 2) if v else (2, 6)
                    assert ta["boxes"].tolist() == [[x1, y1, x2, y2]]
                    seen.add((h, v))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left as it was
    assert data[SampleKey(0, 0, 5)][1]["labels"].tolist() == [1]


def test_collate_keeps_lists():
    image, target = _asymmetric()
    data = DetectionDataset([image, image[:, :10]], [target, {"boxes": [], "labels": []}], num_classes=2)
    images, targets = detection_collate([data[0], data[1]])
    assert [tuple(i.shape) for i in images] == [(3, 20, 30), (3, 10, 30)]
    assert targets[1]["boxes"].shape == (0, 4) and targets[1]["labels"].dtype == torch.int64


# the folder DataModules ----------------------------------------------------------------------------------------
STEMS = ("OSBS_029", "SOAP_061")


@pytest.fixture
def voc_dir(tmp_path):
    """OSBS_029 + SOAP_061 with their XML, and SOAP_031 (no annotation in deepforest) as background-only."""
    d = tmp_path / "voc"
    d.mkdir()
    for stem in STEMS:
        shutil.copy(DATA / f"{stem}.png", d)
        shutil.copy(DATA / f"{stem}.xml", d)
    shutil.copy(DATA / "SOAP_031.png", d)
    (d / "SOAP_031.xml").write_text("<annotation><filename>SOAP_031.png</filename></annotation>")
    return d


@pytest.fixture
def coco_dir(tmp_path):
    """The same images with a COCO json written from deepforest's CSV files (not from the XML)."""
    d = tmp_path / "coco"
    d.mkdir()
    for name in ("OSBS_029.png", "SOAP_031.png", "SOAP_061.png"):
        shutil.copy(DATA / name, d)
    rows = read_csv(DATA / "OSBS_029.csv")["OSBS_029.tif"], read_csv(DATA / "testfile_multi.csv")["SOAP_061.png"]
    cat_ids = {"Alive": 3, "Dead": 5, "Tree": 7}  # not contiguous, not from 1: mapped by name
    images = [{"id": 10 + i, "file_name": n, "width": 400, "height": 400} for i, n in enumerate(sorted(d.iterdir()))]
    images = [{**im, "file_name": Path(im["file_name"]).name} for im in images]
    anns = []
    for image_id, (boxes, names) in zip((10, 12), rows, strict=True):
        for (x1, y1, x2, y2), name in zip(boxes, names, strict=True):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            anns.append({"id": len(anns), "image_id": image_id, "category_id": cat_ids[name], "bbox": bbox})
    anns.append({"id": 999, "image_id": 10, "category_id": 7, "bbox": [0, 0, 400, 400], "iscrowd": 1})
    cats = [{"id": i, "name": n} for n, i in cat_ids.items()]
    (d / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return d


def test_voc_and_coco_modules_agree(voc_dir, coco_dir):
    voc = VOCDetectionDataModule(str(voc_dir), batch_size=2, val_size=0, augment=False)
    coco = CocoDetectionDataModule(str(coco_dir), str(coco_dir / "ann.json"), batch_size=2, val_size=0, augment=False)
    assert voc.classes == coco.classes == ["Alive", "Dead", "Tree"] and voc.num_classes == coco.num_classes == 4
    voc.setup("fit")
    coco.setup("fit")
    assert len(voc.train_set) == len(coco.train_set) == 3 and voc.val_set is None
    for a, b in zip(voc.train_set.targets, coco.train_set.targets, strict=True):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    counts = [len(t["boxes"]) for t in voc.train_set.targets]
    assert counts == [61, 0, 37]  # OSBS_029, SOAP_031 (background only), SOAP_061
    assert voc.train_set.targets[0]["labels"].unique().tolist() == [3]
    assert torch.bincount(voc.train_set.targets[2]["labels"]).tolist() == [0, 9, 28]
    images, targets = next(iter(voc.train_dataloader()))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == 2
    assert all(i.dtype == torch.float32 and i.shape == (3, 400, 400) and 0 <= i.min() <= i.max() <= 1 for i in images)
    assert all(t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64 for t in targets)
    with pytest.raises(RuntimeError, match="val_size=0"):
        voc.test_dataloader()


def test_folder_module_splits_by_image(voc_dir):
    dm = VOCDetectionDataModule(str(voc_dir), batch_size=2, val_size=1, classes=["Tree", "Alive", "Dead"])
    dm.setup()
    assert len(dm.train_set) == 2 and len(dm.val_set) == 1 and dm.test_set is dm.val_set
    assert not set(dm.train_set.names) & set(dm.val_set.names)
    assert dm.hparams["val_size"] == 1 and dm.hparams["classes"] == ["Tree", "Alive", "Dead"]


def _voc(path: Path, boxes, names=None, size=(400, 400)) -> None:
    names = names or ["Tree"] * len(boxes)
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>"
        for b, n in zip(boxes, names, strict=True)
    )
    path.write_text(f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>{objs}</annotation>")


def test_bad_folder_input(tmp_path, voc_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        _ = VOCDetectionDataModule(str(empty)).classes
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        VOCDetectionDataModule(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"`annotation_file` .*missing\.json.* does not exist"):
        CocoDetectionDataModule(str(voc_dir), str(tmp_path / "missing.json"))
    (voc_dir / "SOAP_031.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"SOAP_031\.png' has no annotation .*SOAP_031\.xml"):
        _ = VOCDetectionDataModule(str(voc_dir)).classes
    _voc(voc_dir / "SOAP_031.xml", [])
    with pytest.raises(
        ValueError,
        match=r"SOAP_061\.xml \(image SOAP_061\.png\): box 0 has class 'Dead', not among `classes` \['Tree'\]",
    ):
        VOCDetectionDataModule(str(voc_dir), classes=["Tree"]).setup()
    _voc(voc_dir / "SOAP_031.xml", [[10, 10, 5, 20]])
    with pytest.raises(
        ValueError, match=r"SOAP_031\.xml \(image SOAP_031\.png\): box 0 \[10.0, 10.0, 5.0, 20.0\] has x2 <= x1"
    ):
        VOCDetectionDataModule(str(voc_dir)).setup()
    _voc(voc_dir / "SOAP_031.xml", [[10, 10, 20, 20], [410, 10, 420, 20]])
    with pytest.raises(
        ValueError, match=r"SOAP_031\.xml \(image SOAP_031\.png\): box 1 .* fully outside the 400x400 image"
    ):
        VOCDetectionDataModule(str(voc_dir)).setup()
    _voc(voc_dir / "SOAP_031.xml", [[10, 10, 20, 20]], size=(800, 400))
    with pytest.raises(ValueError, match=r"states a 800x400 image but .*SOAP_031\.png is 400x400"):
        VOCDetectionDataModule(str(voc_dir)).setup()
    (voc_dir / "SOAP_031.xml").write_text("<annotation><object><name>Tree</name></object></annotation>")
    with pytest.raises(ValueError, match=r"SOAP_031\.xml, object 0: missing <bndbox/xmin>"):
        _ = VOCDetectionDataModule(str(voc_dir)).classes


def test_bad_coco_input(coco_dir):
    path = coco_dir / "ann.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotation 0 \(id 0\): category_id 42 is not among the file's categories"):
        read_coco(path)
    data["annotations"][0]["category_id"] = 7
    data["images"].append({"id": 99, "file_name": "absent.png"})
    path.write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match=r"lists 'absent\.png', which is not in `images_dir`"):
        CocoDetectionDataModule(str(coco_dir), str(path)).setup()
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a COCO detection file"):
        read_coco(path)


def test_bad_arguments(voc_dir):
    for kwargs, match in [
        ({"batch_size": 1}, "batch_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"classes": "Tree"}, "`classes` must be a non-empty list"),
        ({"classes": ["a", "a"]}, "distinct"),
        ({"box_tolerance": -1}, "box_tolerance"),
    ]:
        with pytest.raises(ValueError, match=match):
            VOCDetectionDataModule(str(voc_dir), **kwargs)
    with pytest.raises(ValueError, match="leaves no training images out of 3"):
        VOCDetectionDataModule(str(voc_dir), val_size=3).setup()


def test_every_detection_datamodule_shares_one_base():
    # the loaders, list batches, flips and test/predict data are DetectionDataModule's, not copies
    for cls in (TreeCrownDataModule, VOCDetectionDataModule, CocoDetectionDataModule):
        assert issubclass(cls, DetectionDataModule)
        for name in ("train_dataloader", "test_dataloader", "predict_dataloader", "make_dataset", "setup"):
            assert getattr(cls, name) is getattr(DetectionDataModule, name), (cls.__name__, name)
