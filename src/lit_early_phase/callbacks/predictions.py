"""`JSONLPredictionWriter`: what ``trainer.predict`` returns, written one JSON line per prediction.

Imports Lightning only (no transformers): it writes whatever a module's ``predict_step`` returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor


class JSONLPredictionWriter(BasePredictionWriter):
    """Write what ``trainer.predict`` returns, one JSON line per prediction, as each batch is done.

    Made for :meth:`CausalLMFineTune.predict_step <lit_early_phase.modules.CausalLMFineTune.predict_step>` (one
    ``{"prompt", "response", "reference"}`` dict per prompt), and writes any JSON-serialisable prediction: a list
    (one line per element) or a single value (one line). The file is rewritten at each ``predict``. With several
    processes, rank ``r > 0`` writes ``<name>.rank<r>.jsonl``
    beside ``output_path`` (rank zero writes ``output_path`` itself).

    Args:
        output_path: the JSONL file to write (its folder is created).

    Raises:
        ValueError: for an empty ``output_path``.

    Example:
        >>> writer = JSONLPredictionWriter("runs/smollm2/predictions.jsonl")
        >>> writer.output_path.name
        'predictions.jsonl'

        From the CLI, ``--trainer.callbacks+=JSONLPredictionWriter --trainer.callbacks.output_path=predictions.jsonl``
        adds it to a recipe's callbacks (docs/llm.md).
    """

    def __init__(self, output_path: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        if not os.fspath(output_path):
            raise ValueError("`output_path` must name a file, e.g. 'predictions.jsonl'.")
        self.output_path = Path(output_path).expanduser()
        self._file: Any = None
        self.num_written = 0

    def path_for_rank(self, rank: int) -> Path:
        """The file that process ``rank`` writes."""
        if rank == 0:
            return self.output_path
        return self.output_path.with_name(f"{self.output_path.stem}.rank{rank}{self.output_path.suffix or '.jsonl'}")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open (truncate) this rank's file."""
        path = self.path_for_rank(trainer.global_rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - kept open across batches, closed at the end
        self.num_written = 0

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Append this batch's predictions, one JSON line each, and flush."""
        if self._file is None:  # pragma: no cover - Lightning calls on_predict_start first
            self.on_predict_start(trainer, pl_module)
        rows = prediction if isinstance(prediction, list) else [prediction]
        for row in rows:
            if isinstance(row, Tensor):
                row = row.tolist()
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self.num_written += len(rows)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the file and say where the predictions are."""
        if self._file is not None:
            self._file.close()
            self._file = None
            rank_zero_info(f"JSONLPredictionWriter: wrote {self.num_written} predictions to {self.output_path}")
