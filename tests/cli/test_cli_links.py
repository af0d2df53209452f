"""The CLI links `num_classes` / `in_chans` from the data module to the model (recipes do not repeat them)."""

import logging

import lightning as L
import pytest
import yaml
from helpers import random_loader
from torch.utils.data import DataLoader

from lit_early_phase.cli import LINKED_FROM_DATA, build_cli
from lit_early_phase.recipes import names, recipe_path

CONFIGS = [recipe_path(name) for name in names()]


class OwnDataModule(L.LightningDataModule):
    """A user's data module that knows neither `num_classes` nor `in_chans`."""

    def train_dataloader(self) -> DataLoader:
        return random_loader(num_classes=4)


def _cli(*args: str):
    return build_cli([*args, "--trainer.logger", "false"], run=False)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_recipes_do_not_repeat_what_the_cli_links(config):
    model_args = (yaml.safe_load(config.read_text())["model"].get("init_args") or {}).keys()
    assert not set(model_args) & set(LINKED_FROM_DATA), (
        f"{config.name} repeats {set(model_args) & set(LINKED_FROM_DATA)}"
    )


@pytest.mark.parametrize(
    ("data", "num_classes", "in_chans"),
    [
        (["--data", "UCRDataModule", "--data.name", "BasicMotions"], 4, 6),
        (["--data", "UCRDataModule", "--data.name", "GunPoint"], 2, 1),
        (["--data", "MNIST5kDataModule"], 10, 1),
    ],
)
def test_the_model_gets_the_data_modules_classes_and_channels(data, num_classes, in_chans):
    cli = _cli("--model", "ImageClassifier", "--model.backbone", "fcn" if "UCR" in data[1] else "test_resnet", *data)
    assert (cli.datamodule.num_classes, cli.datamodule.in_chans) == (num_classes, in_chans)
    assert (cli.model.num_classes, cli.model.hparams.in_chans) == (num_classes, in_chans)
    cli.datamodule.setup("fit")
    x, _ = next(iter(cli.datamodule.train_dataloader()))
    assert cli.model(x).shape == (x.shape[0], num_classes)  # the data's channels go in, its classes come out


def test_a_conflicting_configured_value_is_replaced_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="lit_early_phase.cli"):
        cli = _cli(
            "--model", "ImageClassifier", "--model.backbone", "fcn", "--model.num_classes", "5",
            "--data", "UCRDataModule", "--data.name", "GunPoint",
        )  # fmt: skip
    assert cli.model.num_classes == 2
    assert "model.num_classes=5 replaced by UCRDataModule.num_classes=2" in caplog.text
    assert "in_chans" not in caplog.text  # the default 3 was not given: replaced without a word


def test_a_data_module_without_the_attributes_keeps_the_configured_values():
    cli = _cli(
        "--model", "ImageClassifier", "--model.backbone", "test_resnet", "--model.num_classes", "4",
        "--model.in_chans", "2", "--data", "test_cli_links.OwnDataModule",
    )  # fmt: skip
    assert (cli.model.num_classes, cli.model.hparams.in_chans) == (4, 2)
