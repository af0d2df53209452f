"""``lit-early-phase find --config <recipe name or file>``: the finder on a LightningCLI recipe."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from lit_early_phase.recipes import HELP as RECIPES_HELP
from lit_early_phase.recipes import UnknownRecipeError

DESCRIPTION = """\
Run a short pilot of a recipe and recommend an enlightenment strategy, or `none` (train as usual) where this
repository measured no gain or a loss for it (EnlightenmentFinder).

Every argument the finder does not know goes to LightningCLI, as for `lit-early-phase fit`: `--config`,
`--model.*`, `--data.*`, `--trainer.*`. The planned run is the recipe's Trainer (`max_steps`, or `max_epochs` of
the training loader); an EnlightenmentCallback in the recipe gives the monitor and threshold. Prints the
recommendation, the measured figures behind its rule (results file, mean, raw and Holm intervals), its uncertainty
and the pilot's evidence; writes `finder.json` and `finder.png` to --out.
"""


def planned_steps(trainer: Any, datamodule: Any) -> int:
    """Optimizer steps of the run a Trainer would do: ``max_steps``, or ``max_epochs`` × loader batches.

    Args:
        trainer: the recipe's (not fitted) Trainer.
        datamodule: the recipe's data module.

    Returns:
        The planned optimizer steps.

    Raises:
        ValueError: when neither ``max_steps`` nor ``max_epochs`` bounds the run.
    """
    if trainer.max_steps and trainer.max_steps > 0:
        return int(trainer.max_steps)
    epochs = trainer.max_epochs
    if epochs is None or epochs < 0:
        raise ValueError(
            "`lit-early-phase find` needs a bounded run to size the pilot: set `trainer.max_steps` or "
            "`trainer.max_epochs` in the recipe."
        )
    datamodule.setup("fit")
    batches = len(datamodule.train_dataloader())
    limit = trainer.limit_train_batches
    if isinstance(limit, int):
        batches = min(batches, limit)
    elif limit is not None:
        batches = int(batches * limit)
    # Lightning steps the optimizer at every epoch's end too, so each epoch has ceil(batches / accumulation) steps
    return max(1, epochs * math.ceil(batches / max(1, trainer.accumulate_grad_batches)))


def main(argv: list[str]) -> int:
    """Parse the finder's own options, build the recipe with LightningCLI, run the pilot, report.

    Args:
        argv: the arguments after ``find``.

    Returns:
        The exit status (0).
    """
    from lit_early_phase.callbacks import EnlightenmentCallback
    from lit_early_phase.cli import build_cli
    from lit_early_phase.finder import EnlightenmentFinder

    parser = argparse.ArgumentParser(prog="lit-early-phase find", description=DESCRIPTION, epilog=RECIPES_HELP)
    parser.add_argument("--pilot-fraction", type=float, default=0.25, help="longest pilot, share of the run")
    parser.add_argument("--max-pilot-steps", type=int, default=None, help="upper bound on the pilot's steps")
    parser.add_argument("--every-n-steps", type=int, default=5, help="steps between diagnostics checks")
    parser.add_argument("--out", type=Path, default=Path("finder"), help="folder for finder.json / finder.png")
    own, rest = parser.parse_known_args(argv)
    try:
        cli = build_cli(rest, run=False)
    except UnknownRecipeError as error:
        parser.error(str(error))
    user_cb = next((c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback)), None)
    finder = EnlightenmentFinder(
        pilot_fraction=own.pilot_fraction,
        max_pilot_steps=own.max_pilot_steps,
        every_n_steps=own.every_n_steps,
        callback=user_cb,
        trainer_kwargs={
            "accelerator": cli.trainer.accelerator,
            "precision": cli.trainer.precision,
            "val_check_interval": cli.trainer.val_check_interval,
            "check_val_every_n_epoch": cli.trainer.check_val_every_n_epoch,
            "accumulate_grad_batches": cli.trainer.accumulate_grad_batches,
        },
    )
    planned = planned_steps(cli.trainer, cli.datamodule)
    rec = finder.find(cli.model, cli.datamodule, planned_steps=planned)
    own.out.mkdir(parents=True, exist_ok=True)
    (own.out / "finder.json").write_text(json.dumps(rec.to_dict(), indent=2, default=str) + "\n")
    rec.figure().savefig(own.out / "finder.png", dpi=110)
    print(rec)
    print(f"wrote {own.out / 'finder.json'} and {own.out / 'finder.png'}", file=sys.stderr)
    return 0
