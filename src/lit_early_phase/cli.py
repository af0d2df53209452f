"""`lit-early-phase`: the LightningCLI entry point (``lit-early-phase fit --config configs/<recipe>.yaml``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

# Imported so that jsonargparse knows the suite's classes as subclasses of LightningModule / LightningDataModule /
# Callback: short names work (`--model ImageClassifier`, `--data MNIST5kDataModule`,
# `--trainer.callbacks+=EnlightenmentCallback`) and `--model.help ImageClassifier` prints a class's arguments.
import lit_early_phase.datamodules
import lit_early_phase.modules.causal_lm
import lit_early_phase.modules.classifier  # noqa: F401

MODELS = ("ImageClassifier", "CausalLMFineTune")
DATAMODULES = ("FashionMNISTDataModule", "MNIST5kDataModule", "UCRDataModule", "InstructionDataModule")

EPILOG = (
    "Model and data are chosen by class (a recipe's `class_path`, or `--model CLASS --data CLASS`), so their "
    "arguments are listed per class: `lit-early-phase fit --model.help ImageClassifier` (or "
    f"{', '.join(MODELS[1:])}) and `lit-early-phase fit --data.help MNIST5kDataModule` (or "
    f"{', '.join(d for d in DATAMODULES if d != 'MNIST5kDataModule')}); the callback's: "
    "`lit-early-phase fit --trainer.callbacks.help EnlightenmentCallback`. Example: `lit-early-phase fit "
    "--model ImageClassifier --model.backbone test_resnet --model.in_chans 1 --data MNIST5kDataModule "
    "--trainer.max_epochs 2 --trainer.callbacks+=EnlightenmentCallback --trainer.callbacks.duration 1`."
)


class EnlightenmentCLI(LightningCLI):
    """LightningCLI with model and data chosen by class path or short name (any LightningModule / DataModule).

    The suite's modules (``ImageClassifier``, ``CausalLMFineTune``), DataModules and ``EnlightenmentCallback``
    are registered, so ``--model ImageClassifier``, ``--data MNIST5kDataModule`` and
    ``--trainer.callbacks+=EnlightenmentCallback`` work by name, and ``--model.help CLASS`` /
    ``--data.help CLASS`` list a class's arguments. A recipe names ``num_classes`` for the model itself (it is
    not linked from the data: the language model has none).
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Defaults shared by every recipe."""
        parser.set_defaults({"trainer.enable_model_summary": False})


def build_cli(args: list[str] | None = None, *, run: bool = True) -> EnlightenmentCLI:
    """Parse ``args`` (``None`` reads ``sys.argv``), build trainer, model and data, and run the subcommand.

    Args:
        args: command-line arguments, e.g. ``["fit", "--config", "configs/fashion_mnist_mixup.yaml"]``; with
            ``run=False`` no subcommand, e.g. ``["--config", "configs/demo_fashion_mnist.yaml"]``.
        run: run the subcommand (``False`` only instantiates, as LightningCLI's ``run`` argument).

    Returns:
        The CLI object (its ``trainer``, ``model`` and ``datamodule`` are set).

    Example:
        >>> cli = build_cli(["--model", "ImageClassifier", "--model.backbone", "test_resnet",
        ...                  "--data", "MNIST5kDataModule", "--trainer.logger", "false",
        ...                  "--trainer.callbacks+=EnlightenmentCallback", "--trainer.callbacks.duration", "10"],
        ...                 run=False)  # doctest: +ELLIPSIS
        ...
        >>> cli.trainer.callbacks[0].duration
        Duration(value=10.0, unit='ep', spec='10')
    """
    epilog = {"epilog": EPILOG}
    return EnlightenmentCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={sub: dict(epilog) for sub in ("fit", "validate", "test", "predict")},
        args=args,
        auto_configure_optimizers=False,
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    """Console-script entry point ``lit-early-phase``.

    Args:
        args: command-line arguments (``None`` reads ``sys.argv``).
    """
    build_cli(args)


if __name__ == "__main__":  # pragma: no cover
    main()
