"""UCRDataModule on aeon's bundled sets (offline), High-Loss Removal on series, configs, clear errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import UCRDataModule, offline_classification_sets
from lit_early_phase.datamodules.series.prepare import PadCollate, encode_labels, stratified_split
from lit_early_phase.strategies import HighLossRemoval

ROOT = Path(__file__).resolve().parents[2]
TINY_FCN = {"widths": (8, 16, 8)}

# name: (train, test, channels, min length, max length, classes) -- the documented shapes (DATA.md)
BUNDLED = {
    "GunPoint": (50, 150, 1, 150, 150, 2),
    "ArrowHead": (36, 175, 1, 251, 251, 3),
    "ItalyPowerDemand": (67, 1029, 1, 24, 24, 2),
    "OSULeaf": (200, 242, 1, 427, 427, 6),
    "ACSF1": (100, 100, 1, 1460, 1460, 10),
    "BasicMotions": (40, 40, 6, 100, 100, 4),
    "JapaneseVowels": (270, 370, 12, 7, 29, 9),
    "PickupGestureWiimoteZ": (50, 50, 1, 29, 361, 10),
}


def _trainer(tmp_path, **kw) -> L.Trainer:
    args = {
        "accelerator": "cpu", "devices": 1, "default_root_dir": tmp_path, "logger": False,
        "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }  # fmt: skip
    args.update(kw)
    return L.Trainer(**args)


def test_offline_list_has_the_bundled_sets():
    names = offline_classification_sets()
    assert set(BUNDLED) <= set(names)
    assert "Covid3Month" not in names  # a regression set is not offered for classification


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_set_loads_with_documented_shapes(name):
    n_train, n_test, channels, min_len, max_len, k = BUNDLED[name]
    dm = UCRDataModule(name, batch_size=8, val_size=0)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.test_set), dm.val_set) == (n_train, n_test, None)
    assert (dm.in_chans, dm.min_length, dm.max_length, dm.num_classes) == (channels, min_len, max_len, k)
    assert dm.mask_channel == (min_len != max_len)
    lengths = [s.shape[-1] for s in dm.train_set.series + dm.test_set.series]
    assert (min(lengths), max(lengths)) == (min_len, max_len)
    assert {tuple(dm.train_set.labels.unique().tolist())} == {tuple(range(k))}
    x, y = next(iter(dm.test_dataloader()))
    batch_len = max(s.shape[-1] for s in dm.test_set.series[:8])
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (8, channels + int(dm.mask_channel), batch_len)
    assert torch.equal(y, dm.test_set.labels[:8])
    # z-normalised per series and channel over the real time points
    for s in dm.train_set.series[:5]:
        if s.shape[-1] > 1:
            np.testing.assert_allclose(s.mean(-1), 0.0, atol=1e-5)
            np.testing.assert_allclose(s.std(-1, unbiased=False), 1.0, atol=1e-4)


def test_unequal_batches_carry_a_mask_channel():
    dm = UCRDataModule("JapaneseVowels", batch_size=16, val_size=0)
    dm.setup("fit")
    x, _ = next(iter(dm.test_dataloader()))
    lengths = [s.shape[-1] for s in dm.test_set.series[:16]]
    assert x.shape == (16, 13, max(lengths))
    assert x[:, -1].sum(-1).tolist() == [float(n) for n in lengths]
    for i, n in enumerate(lengths):
        assert torch.equal(x[i, :12, :n], dm.test_set.series[i])
        assert not x[i, :, n:].any()  # zero padding, mask 0


def test_equal_length_variant_has_no_mask():
    dm = UCRDataModule("PickupGestureWiimoteZ", unequal="equal_length", batch_size=4, val_size=0)
    dm.setup("fit")
    assert (dm.mask_channel, dm.min_length, dm.max_length) == (False, 361, 361)
    assert next(iter(dm.train_dataloader()))[0].shape == (4, 1, 361)
    jv = UCRDataModule("JapaneseVowels", unequal="equal_length")
    assert (jv.in_chans, jv.min_length, jv.max_length, jv.mask_channel) == (12, 25, 25, False)


def test_label_encoding_numeric_then_lexicographic():
    dm = UCRDataModule("PickupGestureWiimoteZ")
    assert dm.classes == [str(i) for i in range(1, 11)]  # "10" after "9", not after "1"
    assert UCRDataModule("BasicMotions").classes == ["badminton", "running", "standing", "walking"]
    with pytest.raises(ValueError, match=r"test split has labels \['c'\] that the training split lacks"):
        encode_labels(["a", "b"], ["c"])


def test_validation_split_is_stratified_fixed_and_leaves_test_alone():
    a = UCRDataModule("ArrowHead", val_size=0.25, split_seed=0)
    b = UCRDataModule("ArrowHead", val_size=0.25, split_seed=0)
    c = UCRDataModule("ArrowHead", val_size=0.25, split_seed=1)
    for dm in (a, b, c):
        dm.setup("fit")
    assert (len(a.train_set), len(a.val_set), len(a.test_set)) == (27, 9, 175)
    assert torch.equal(a.val_set.labels, b.val_set.labels)
    assert all(torch.equal(s, t) for s, t in zip(a.val_set.series, b.val_set.series, strict=True))
    assert not all(torch.equal(s, t) for s, t in zip(a.val_set.series, c.val_set.series, strict=True))
    assert torch.bincount(a.val_set.labels).tolist() == [3, 3, 3]  # ArrowHead's training split is 12/12/12
    # test split identical whatever the validation split
    assert all(torch.equal(s, t) for s, t in zip(a.test_set.series, c.test_set.series, strict=True))

    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    train, val = stratified_split(labels, 4, seed=0)
    assert sorted(train.tolist() + val.tolist()) == list(range(10))
    # shares 2.4 / 1.2 / 0.4 -> 2 / 1 / 0, the 4th by largest remainder among classes with room (class 2 keeps
    # its only sample for training)
    assert torch.bincount(labels[val], minlength=3).tolist() == [3, 1, 0]
    with pytest.raises(ValueError, match=r"asks for 8 validation series out of 10, but only 7 can leave"):
        stratified_split(labels, 8, seed=0)


def test_channel_znorm_uses_training_statistics():
    dm = UCRDataModule("BasicMotions", znorm="channel", val_size=0.2)
    dm.setup("fit")
    values = torch.cat(dm.train_set.series, dim=-1)
    torch.testing.assert_close(values.mean(-1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(values.std(-1, unbiased=False), torch.ones(6), atol=1e-4, rtol=0)
    val_values = torch.cat(dm.val_set.series, dim=-1)
    assert val_values.mean(-1).abs().max() > 1e-3  # validation is scaled by the training statistics, not its own
    raw = UCRDataModule("BasicMotions", znorm="none", val_size=0.2)
    raw.setup("fit")
    raw_values = torch.cat(raw.train_set.series, dim=-1).double()  # "none" keeps the values: they give the stats
    mean, std = raw_values.mean(-1, keepdim=True), raw_values.std(-1, unbiased=False, keepdim=True)
    for scaled, kept in zip(dm.val_set.series, raw.val_set.series, strict=True):
        torch.testing.assert_close(scaled.double(), (kept.double() - mean) / std, rtol=0, atol=1e-5)


def test_pad_collate_without_mask():
    x, y = PadCollate(mask_channel=False)([(torch.ones(2, 3), torch.tensor(1)), (torch.ones(2, 5), torch.tensor(0))])
    assert x.shape == (2, 2, 5) and x[0, :, 3:].abs().sum() == 0 and y.tolist() == [1, 0]


# -- errors ------------------------------------------------------------------------------------------------------
def test_unknown_offline_name_lists_available_sets():
    with pytest.raises(ValueError) as err:
        UCRDataModule("GunPiont")
    message = str(err.value)
    assert "`name='GunPiont'` is not available offline" in message
    assert "Did you mean ['GunPoint']?" in message
    for name in BUNDLED:
        assert repr(name) in message
    assert "download=True" in message


def test_download_name_checked_against_the_archive_without_network(monkeypatch):
    with pytest.raises(ValueError, match=r"`name='NotASet'` is not a classification set of aeon's tsml archive"):
        UCRDataModule("NotASet", download=True)
    import aeon.datasets

    calls = []
    gunpoint = aeon.datasets.load_classification

    def fake_load(name, split=None, **kwargs):  # stands in for the Zenodo download
        calls.append((name, split))
        return gunpoint("GunPoint", split=split, **kwargs)

    monkeypatch.setattr(aeon.datasets, "load_classification", fake_load)
    dm = UCRDataModule("Adiac", download=True)  # a real archive name that is not bundled
    assert calls == []  # nothing fetched at construction
    dm.prepare_data()
    assert calls == [("Adiac", "train"), ("Adiac", "test")]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"batch_size": 0}, r"`batch_size` must be an int >= 2, got 0"),
        ({"batch_size": 1}, r"`batch_size` must be an int >= 2, got 1: .*BatchNorm"),
        ({"val_size": 1.5}, r"`val_size` must be a share in \[0, 1\) or an int count >= 0 .* got 1.5"),
        ({"val_size": True}, r"`val_size` must be"),
        ({"unequal": "trim"}, r"`unequal` must be one of \('pad', 'equal_length'\), got 'trim'"),
        ({"znorm": "minmax"}, r"`znorm` must be one of \('series', 'channel', 'none'\), got 'minmax'"),
        ({"num_workers": -1}, r"`num_workers` must be an int >= 0, got -1"),
        ({"name": ""}, r"`name` must be a data set name such as 'GunPoint', got ''"),
    ],
)
def test_bad_arguments_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        UCRDataModule(**kwargs)


def test_validation_larger_than_training_fails_at_setup():
    dm = UCRDataModule("GunPoint", val_size=49)
    with pytest.raises(ValueError, match="asks for 49 validation series out of 50, but only 48 can leave"):
        dm.setup("fit")


# -- training on series ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["JapaneseVowels", "PickupGestureWiimoteZ", "BasicMotions"])
def test_unequal_and_multivariate_batches_train(tmp_path, name):
    dm = UCRDataModule(name, batch_size=8, val_size=0.2)
    model = ImageClassifier("fcn", num_classes=dm.num_classes, in_chans=dm.in_chans, backbone_kwargs=TINY_FCN)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=1)
    trainer.fit(model, dm)
    assert trainer.global_step == 3
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    result = trainer.test(model, dm, verbose=False)[0]
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(-1) == y).sum()) for x, y in dm.test_dataloader())
    assert result["test/acc"] == pytest.approx(hits / len(dm.test_set))  # the logged value is the real accuracy


@pytest.mark.parametrize(("batch_size", "sizes"), [(13, [13, 13, 13]), (8, [8, 8, 8, 8, 8]), (6, [6] * 6 + [4])])
def test_training_batches_never_hold_a_single_series(batch_size, sizes):
    """BasicMotions has 40 training series: 40 = 3 x 13 + 1, the last series of an epoch is left out."""
    dm = UCRDataModule("BasicMotions", batch_size=batch_size, val_size=0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert [len(y) for _, y in loader] == sizes and len(loader) == len(sizes)


def test_removal_on_a_series_batch_drops_exactly_the_highest_losses():
    dm = UCRDataModule("JapaneseVowels", batch_size=10, val_size=0)
    dm.setup("fit")
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1] == 13  # padded, with the mask channel
    model = ImageClassifier("fcn", num_classes=9, in_chans=12, backbone_kwargs=TINY_FCN)
    strategy = HighLossRemoval(fraction=0.3)
    strategy.enter(model)
    step = model.classification_step(x, y, model)
    expected = set(torch.argsort(step.losses, descending=True)[:3].tolist())
    assert set(torch.nonzero(~step.drop.kept).flatten().tolist()) == expected
    kept_losses = step.losses[step.drop.kept]
    torch.testing.assert_close(step.loss, kept_losses.mean())
    assert kept_losses.max() < step.losses[~step.drop.kept].min()
    strategy.exit(model)
    after = model.classification_step(x, y, model)
    assert bool(after.drop.kept.all()) and after.drop.num_removed == 0
    torch.testing.assert_close(after.loss, after.losses.mean())


class _RecordingClassifier(ImageClassifier):
    """Keeps, for every training step, the per-sample losses and which samples counted."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trace: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def reduce_losses(self, losses, weights=None):
        out = super().reduce_losses(losses, weights)
        self.trace.append((self.trainer.global_step, losses.detach().clone(), out.kept.clone()))
        return out


def test_default_callback_picks_high_loss_removal_on_series(tmp_path):
    """`EnlightenmentCallback()` with defaults on a 1-D fit: HLR, removed_fraction > 0 before the boundary, 0 after."""
    dm = UCRDataModule("BasicMotions", batch_size=16, val_size=0)  # 40 series: batches of 16, 16, 8
    model = _RecordingClassifier("fcn", num_classes=4, in_chans=6, backbone_kwargs=TINY_FCN)
    cb = EnlightenmentCallback()
    logger = CSVLogger(tmp_path, name="hlr")
    trainer = _trainer(tmp_path, max_epochs=10, callbacks=[cb], logger=logger, log_every_n_steps=1)
    trainer.fit(model, dm)

    assert isinstance(cb.strategy, HighLossRemoval) and cb.strategy.fraction == 0.1
    boundary = cb.boundary_step
    assert boundary is not None and 0 < boundary < trainer.global_step

    with open(Path(logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("enlightenment/removed_fraction")]
    removed = {int(r["step"]): float(r["enlightenment/removed_fraction"]) for r in rows}
    assert sorted(removed) == list(range(trainer.global_step))
    sizes = [16, 16, 8]
    for step, fraction in removed.items():
        if step < boundary:
            size = sizes[step % 3]
            assert fraction == pytest.approx(math.floor(0.1 * size + 0.5) / size) and fraction > 0
        else:
            assert fraction == 0.0

    # and the samples removed were exactly the highest-loss ones of each batch
    assert len(model.trace) == trainer.global_step
    for step, (global_step, losses, kept) in enumerate(model.trace):
        assert global_step == step
        k = math.floor(0.1 * len(losses) + 0.5) if step < boundary else 0
        assert set(torch.nonzero(~kept).flatten().tolist()) == set(torch.topk(losses, k).indices.tolist())


@pytest.mark.parametrize("config", ["ucr_gunpoint_hlr", "ucr_basicmotions_hlr"])
def test_config_runs(tmp_path, config):
    from lit_early_phase.cli import build_cli

    cli = build_cli(
        [
            "fit", "--config", config, "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.logger", "false",
        ]
    )  # fmt: skip
    assert cli.trainer.current_epoch == 1
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback))
    assert isinstance(cb.strategy, HighLossRemoval)
    dm = cli.datamodule
    assert cli.model.num_classes == dm.num_classes and cli.model.model.in_chans == dm.in_chans


# -- the saved benchmark ------------------------------------------------------------------------------------------
def _benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ucr_hlr_benchmark", ROOT / "benchmarks" / "ucr_hlr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saved_benchmark_comes_from_the_script_and_the_docs_show_its_table():
    import json

    bench = _benchmark_module()
    result = json.loads((ROOT / "benchmarks" / "results" / "ucr_hlr.json").read_text())
    h = result["header"]
    assert h["script"] == "benchmarks/ucr_hlr.py" and h["mode"] == "full"
    assert set(BUNDLED) <= set(h["sets"]) and len(h["seeds"]) >= 5
    assert h["machine"]["platform"] and h["machine"]["cpu_count"] >= 1 and h["date_utc"]
    assert {"torch", "lightning", "aeon"} <= set(h["versions"])
    runs = {(r["set"], r["arm"], r["seed"]): r for r in result["runs"]}
    assert len(runs) == len(h["sets"]) * len(bench.ARMS) * len(h["seeds"])
    assert {r["steps"] for r in result["runs"]} == {h["steps_per_run"]}  # the same budget for every arm
    assert all(r["boundary_step"] is None for r in result["runs"] if r["arm"] == "baseline")
    assert all(0 < r["boundary_step"] < h["steps_per_run"] for r in result["runs"] if r["arm"] != "baseline")
    # the summary and the table follow from the runs with the committed code
    assert bench.summarise(result["runs"], h["sets"], h["seeds"]) == result["summary"]
    table = bench.markdown(result)
    assert (ROOT / "benchmarks" / "results" / "ucr_hlr.md").read_text() == table
    docs = (ROOT / "docs" / "timeseries.md").read_text()
    assert "<!-- ucr_hlr:begin -->\n" + table + "<!-- ucr_hlr:end -->" in docs  # the docs show the saved table


def test_saved_benchmark_adjusts_the_means_over_sets_and_the_per_set_comparisons_as_two_families():
    import json
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import _common as C  # the benchmark scripts are files, not a package

    bench = _benchmark_module()
    result = json.loads((ROOT / "benchmarks" / "results" / "ucr_hlr.json").read_text())
    h = result["header"]
    holm = bench.comparisons(result)
    means = {k: x for k, x in holm.items() if k.startswith("over sets|")}
    per_set = {k: x for k, x in holm.items() if k not in means}
    assert {x["m"] for x in means.values()} == {2} and len(means) == 2
    assert {x["m"] for x in per_set.values()} == {len(h["sets"]) * 2} and len(per_set) == len(h["sets"]) * 2
    # the headline family is Holm over the two means alone: the per-set comparisons do not widen it
    overall = result["summary"]["overall"]
    alone = C.holm({k: [per_set[f"{s}|{k.split('|')[1]}"]["mean_diff"] for s in h["sets"]] for k in means})
    for k, x in means.items():
        assert x["ci_holm"] == pytest.approx(alone[k]["ci_holm"], abs=1e-12) and x["resolved"] == alone[k]["resolved"]
        assert x["mean_diff"] == pytest.approx(overall[k.split("|")[1]]["mean_of_set_diffs"], abs=1e-12)
    assert "headline family: the m = 2 means" in (ROOT / "benchmarks" / "results" / "ucr_hlr.md").read_text()
