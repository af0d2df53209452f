"""`lit-early-phase`: the LightningCLI entry point (``lit-early-phase fit --config configs/<recipe>.yaml``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI


class EnlightenmentCLI(LightningCLI):
    """LightningCLI with model and data chosen by class path (any LightningModule / LightningDataModule).

    ``num_classes`` of the model is linked from the data module's ``num_classes`` when both have it, so a recipe
    names it once.
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
    """
    return EnlightenmentCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
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
