"""Adapter-only Lightning checkpoints and the saved model of a fine-tune (a mixin of ``CausalLMFineTune``)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only
from torch import Tensor

from lit_early_phase.hf.loading import save_finetuned
from lit_early_phase.hf.lora import check_adapter_keys


class FineTuneSavingMixin:
    """What :class:`~lit_early_phase.modules.CausalLMFineTune` writes: adapter-only checkpoints, saved models.

    For a LightningModule holding a transformers (or peft) model as ``self.model``. With ``self.lora`` true,
    Lightning checkpoints keep only the trainable tensors (MBs, not the whole frozen base, which is rebuilt from
    the module's arguments), and a checkpoint is checked key by key before Lightning loads it
    (:func:`~lit_early_phase.hf.check_adapter_keys`); the module sets ``strict_loading = False``, the base not
    being in the file. At the end of ``fit`` the model is saved to ``self.save_dir`` (if set) with
    :meth:`save_pretrained`.
    """

    model: Any
    tokenizer: Any
    lora: bool
    save_dir: str | None
    merge_lora: bool
    base_model_spec: dict[str, Any] | None
    trainer: Any

    def setup(self, stage: str) -> None:
        """Refuse, before any step, what cannot be saved under the strategy in use.

        Raises:
            ValueError: for ``merge_lora=True`` with a ``save_dir`` under FSDP (merging needs the whole model in
                one process).
        """
        if stage == "fit" and self.save_dir and self.merge_lora and isinstance(self.trainer.strategy, FSDPStrategy):
            raise ValueError(
                "`merge_lora=True` cannot merge a model sharded by FSDP. Save the adapter (`merge_lora=False`) and "
                "merge it afterwards: `load_finetuned(save_dir)[0].merge_and_unload().save_pretrained(...)`."
            )

    def _trainable_keys(self) -> set[str]:
        return {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With LoRA, keep only the trainable tensors in Lightning checkpoints.

        The adapter's key names are recorded too (``checkpoint["lit_early_phase"]["adapter_keys"]``), so that a
        resume under a strategy that loads the weights before :meth:`on_load_checkpoint` (FSDP) is checked too.
        """
        if not self.lora:
            return
        trainable = self._trainable_keys()
        # cloned: under FSDP the gathered tensors can be views of one flat buffer that `torch.save` would write whole
        checkpoint["state_dict"] = {k: v.clone() for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint["lit_early_phase"] = {"adapter_keys": sorted(trainable)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With LoRA, check that the checkpoint's adapter is exactly this module's before Lightning loads it.

        Every key of the checkpoint must be in the module and every trainable tensor of the module in the
        checkpoint (:func:`check_adapter_keys`).

        Raises:
            RuntimeError: naming the keys that do not match, and what to do.
        """
        if not self.lora:
            return
        state = checkpoint.get("state_dict")
        # FSDP loads the weights (and pops them) before this hook: check the key names saved beside them
        saved = set(state) if state is not None else set(checkpoint.get("lit_early_phase", {}).get("adapter_keys", []))
        if state is None and not saved:
            return
        module: Any = self
        known = {n for n, _ in module.named_parameters()} | {n for n, _ in module.named_buffers()}
        hparams = checkpoint.get("hyper_parameters", {})
        check_adapter_keys(saved, known=known, trainable=self._trainable_keys(), hparams=hparams)

    def on_train_end(self) -> None:
        """Save to ``save_dir`` if one was given (not in ``fast_dev_run``, like Lightning's checkpoints).

        Under FSDP every rank takes part in gathering the full weights; rank zero writes them.
        """
        if self.save_dir and not self.trainer.fast_dev_run:
            state = None
            if isinstance(self.trainer.strategy, FSDPStrategy):
                full = self.trainer.strategy.lightning_module_state_dict()  # a collective: every rank calls it
                state = {k.removeprefix("model."): v for k, v in full.items() if k.startswith("model.")}
            self._save_rank_zero(self.save_dir, state)

    @rank_zero_only
    def _save_rank_zero(self, directory: str, state_dict: dict[str, Tensor] | None = None) -> None:
        path = self.save_pretrained(directory, merge_lora=self.merge_lora, state_dict=state_dict)
        rank_zero_info(f"CausalLMFineTune: saved the fine-tuned model to {path}")

    def save_pretrained(
        self,
        directory: str | os.PathLike,
        *,
        merge_lora: bool = False,
        state_dict: dict[str, Tensor] | None = None,
    ) -> Path:
        """Save the model (full, LoRA adapter, or LoRA merged) and tokenizer where transformers reloads them.

        A full or merged model reloads with ``AutoModelForCausalLM.from_pretrained(directory)``; an adapter
        with ``peft.PeftModel.from_pretrained(base, directory)``. :func:`~lit_early_phase.hf.load_finetuned` does
        either, finding the base of an adapter from ``lit_early_phase.json`` (which
        :func:`~lit_early_phase.hf.save_finetuned` writes).

        Args:
            directory: where to write (created if needed).
            merge_lora: with LoRA, save the merged full model instead of the adapter.
            state_dict: the model's full state (keys as in ``self.model.state_dict()``) when the module's own
                tensors are shards (FSDP); ``None`` reads them from the model.

        Returns:
            The directory.

        Raises:
            ValueError: for ``merge_lora=True`` together with ``state_dict``.
        """
        model, kind = self.model, "full"
        if self.lora:
            kind = "lora"
            if merge_lora:
                if state_dict is not None:
                    raise ValueError("`merge_lora=True` needs the whole model in this process, not a `state_dict`.")
                model, kind = copy.deepcopy(model).merge_and_unload(), "merged"
        return save_finetuned(
            model, self.tokenizer, directory, kind=kind, base_model=self.base_model_spec, state_dict=state_dict
        )
