"""The LightningCLI of the suite: ``EnlightenmentCLI`` and ``build_cli`` (``lit-early-phase fit --config ...``).

The console script ``lit-early-phase`` (and ``python -m lit_early_phase``) is :mod:`lit_early_phase.__main__`,
which dispatches to this module's LightningCLI and to the other commands; this module knows none of them.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from typing import Any

from lightning.pytorch.cli import LightningCLI

# Imported so that jsonargparse knows the suite's classes as subclasses of LightningModule / LightningDataModule /
# Callback: short names work (`--model ImageClassifier`, `--data MNIST5kDataModule`,
# `--trainer.callbacks+=EnlightenmentCallback`) and `--model.help ImageClassifier` prints a class's arguments.
import lit_early_phase.datamodules
import lit_early_phase.modules.causal_lm
import lit_early_phase.modules.classifier
import lit_early_phase.modules.detector  # noqa: F401
from lit_early_phase.recipes import HELP as RECIPES_HELP
from lit_early_phase.recipes import resolve_config_args

log = logging.getLogger(__name__)

# what the model's constructor takes from the data module's attribute of the same name, when both have it
LINKED_FROM_DATA: tuple[str, ...] = ("num_classes", "in_chans")

MODELS = ("ImageClassifier", "ObjectDetector", "CausalLMFineTune")
DATAMODULES = (
    "FashionMNISTDataModule",
    "MNIST5kDataModule",
    "ImageFolderDataModule",
    "UCRDataModule",
    "TreeCrownDataModule",
    "VOCDetectionDataModule",
    "CocoDetectionDataModule",
    "InstructionDataModule",
    "StreamingImageDataModule",
)

EPILOG = (
    "Model and data are chosen by class (a recipe's `class_path`, or `--model CLASS --data CLASS`), so their "
    "arguments are listed per class: `lit-early-phase fit --model.help ImageClassifier` (or "
    f"{', '.join(MODELS[1:])}) and `lit-early-phase fit --data.help MNIST5kDataModule` (or "
    f"{', '.join(d for d in DATAMODULES if d != 'MNIST5kDataModule')}); the callback's: "
    "`lit-early-phase fit --trainer.callbacks.help EnlightenmentCallback`. Example: `lit-early-phase fit "
    "--model ImageClassifier --model.backbone test_resnet --data MNIST5kDataModule "
    "--trainer.max_epochs 2 --trainer.callbacks+=EnlightenmentCallback --trainer.callbacks.duration 1` "
    "(the model's num_classes and in_chans come from the data module). " + RECIPES_HELP
)


class EnlightenmentCLI(LightningCLI):
    """LightningCLI with model and data chosen by class path or short name (any LightningModule / DataModule).

    The suite's modules (``ImageClassifier``, ``ObjectDetector``, ``CausalLMFineTune``), DataModules and
    ``EnlightenmentCallback`` are registered, so ``--model ImageClassifier``, ``--data MNIST5kDataModule`` and
    ``--trainer.callbacks+=EnlightenmentCallback`` work by name, and ``--model.help CLASS`` /
    ``--data.help CLASS`` list a class's arguments.

    ``num_classes`` and ``in_chans`` are linked from the data (``parser.link_arguments(..., apply_on="instantiate")``):
    when the data module has the attribute (every DataModule of the suite has ``num_classes``; the image and
    series ones ``in_chans``) and the model's constructor takes the argument, the model gets the data's value
    and a recipe does not repeat it. A data module without the attribute (a user's own) leaves the model's value
    as configured; a model without the argument (``CausalLMFineTune``) is not linked. A configured value that
    differs from the data's is replaced by it, with a warning naming both.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Defaults shared by every recipe, and the links from the data module to the model."""
        parser.set_defaults({"trainer.enable_model_summary": False})
        for name in LINKED_FROM_DATA:
            parser.link_arguments(
                "data", f"model.init_args.{name}", compute_fn=self._from_data(name), apply_on="instantiate"
            )

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does, then drop the links the model's constructor does not take.

        jsonargparse applies a link to a model without the argument as a no-op, but Lightning still records the
        linked value in the model's ``hparams`` (``CausalLMFineTune`` would get ``num_classes: None``), and a
        later ``--ckpt_path`` run re-parses those hparams and fails on the unknown argument.
        """
        super().instantiate_classes()
        model = getattr(self, "model", None)
        if model is None:
            return
        accepted = inspect.signature(type(model)).parameters
        for name in LINKED_FROM_DATA:
            if name not in accepted:
                for hparams in (getattr(model, "_hparams", None), getattr(model, "_hparams_initial", None)):
                    if hparams is not None:
                        hparams.pop(name, None)

    def _model_config(self) -> Any:
        """The parsed ``model`` section (``class_path``, ``init_args``) of this run's subcommand."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        return None if config is None else config.model

    def _configured(self, name: str) -> Any:
        """The model's ``name`` as parsed (the recipe's or command line's value, else the constructor default)."""
        model = self._model_config()
        return None if model is None else model.init_args.get(name)

    def _from_data(self, name: str) -> Any:
        """The link's ``compute_fn``: the data module's ``name`` where it has one, else the configured value.

        By hand rather than the link source ``"data.num_classes"``: that form fails on a data module without the
        attribute, and a user's own data module need not have one.
        """

        def compute(data: Any) -> Any:
            configured = self._configured(name)
            value = getattr(data, name, None)
            if value is None:
                return configured
            if configured is not None and configured != value:
                default = _constructor_default(self._model_config().class_path, name)
                if configured != default:
                    log.warning(
                        "model.%s=%r replaced by %s.%s=%r (linked from the data module; leave it out of the recipe)",
                        name,
                        configured,
                        type(data).__name__,
                        name,
                        value,
                    )
            return value

        return compute


def _constructor_default(class_path: str, name: str) -> Any:
    """Default of ``name`` in the constructor of the class at ``class_path`` (``None`` if it has none)."""
    try:
        module, _, attr = class_path.rpartition(".")
        parameter = inspect.signature(getattr(importlib.import_module(module), attr)).parameters.get(name)
    except (AttributeError, ImportError, TypeError, ValueError):
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def build_cli(
    args: list[str] | None = None, *, run: bool = True, epilog: str = EPILOG, prog: str | None = None
) -> EnlightenmentCLI:
    """Parse ``args`` (``None`` reads ``sys.argv``), build trainer, model and data, and run the subcommand.

    Args:
        args: command-line arguments, e.g. ``["fit", "--config", "fashion_mnist_mixup"]``; with ``run=False`` no
            subcommand, e.g. ``["--config", "demo_fashion_mnist"]``. A ``--config`` value that is not an existing
            file names a packaged recipe (``lit_early_phase.recipes.resolve_config_args``).
        run: run the subcommand (``False`` only instantiates, as LightningCLI's ``run`` argument).
        epilog: the text under ``--help`` (of the main parser and of each subcommand).
        prog: the program's name in ``--help`` and in errors (``None``: argparse's, from ``sys.argv[0]``).

    Returns:
        The CLI object (its ``trainer``, ``model`` and ``datamodule`` are set).

    Raises:
        ValueError: when a ``--config`` value is neither a file nor a recipe name (the message lists the names).

    Example:
        >>> cli = build_cli(["--model", "ImageClassifier", "--model.backbone", "test_resnet",
        ...                  "--data", "MNIST5kDataModule", "--trainer.logger", "false",
        ...                  "--trainer.callbacks+=EnlightenmentCallback", "--trainer.callbacks.duration", "10"],
        ...                 run=False)  # doctest: +ELLIPSIS
        ...
        >>> cli.trainer.callbacks[0].duration
        Duration(value=10.0, unit='ep', spec='10')
    """
    if args is None:  # LightningCLI reads sys.argv itself (given `args` too, it warns of a mix-up)
        sys.argv[1:] = resolve_config_args(sys.argv[1:])
    else:
        args = resolve_config_args(args)
    main_kwargs: dict[str, Any] = {"epilog": epilog} | ({"prog": prog} if prog else {})
    return EnlightenmentCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs=main_kwargs | {sub: {"epilog": epilog} for sub in ("fit", "validate", "test", "predict")},
        args=args,
        auto_configure_optimizers=False,
        run=run,
    )
