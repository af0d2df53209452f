"""Manifold Mixup's plumbing: which blocks of a backbone may be mixed, and one forward that mixes at one of them.

The hidden state is mixed by a **forward hook** on the chosen block, registered for one forward and removed
right after it (even on an error), rather than by re-implementing the forward from timm's ``forward_features``
pieces: timm's forwards differ per family and per version (grad checkpointing, position embeddings, register
tokens, ``patch_drop``, ``norm_pre`` ...), and a copy would drift from them silently, while a hook runs the
model's own forward unchanged and works for any ``nn.Module`` whose blocks are named submodules. The hook is
put first among the block's hooks (``prepend=True``), so other hooks on it (the diagnostics' activation hooks)
see the mixed state, the one the next layer receives. No hook stays on the model outside a mixing forward, so
validation, prediction, export and checkpoints never see one.

The λ and pairing are drawn and applied as for input Mixup (:func:`~lit_early_phase.functional.sample_mix_params`,
:func:`~lit_early_phase.functional.apply_mix` on the block's output), so the soft targets are blended exactly
as for input Mixup.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from lit_early_phase.functional import BatchMixParams, ElemMixParams, MixOutput, apply_mix

#: Where :class:`~lit_early_phase.modules.ImageClassifier` mixes: the inputs, or a hidden state (Manifold Mixup).
MixAt = Literal["input", "manifold"]
#: The values of :data:`MixAt`, for validation.
MIX_AT: tuple[str, ...] = ("input", "manifold")


def default_manifold_blocks(model: nn.Module) -> tuple[str, ...]:
    """The candidate blocks Manifold Mixup draws from by default, as submodule names of ``model``.

    * timm ResNets (``timm.models.resnet.ResNet``): the stem's output (``maxpool``, after ``conv1``/``bn1``/
      ``act1``) and the outputs of ``layer1``, ``layer2``, ``layer3`` (the paper's choice: never the last stage,
      whose mixed features would go straight into the classifier);
    * timm ViTs (``timm.models.vision_transformer.VisionTransformer``): the patch embedding's output
      (``patch_embed``, before the class token and position embeddings, which are the same for both partners
      and so commute with the blend) and the outputs of ``blocks[:-1]``.

    Any other backbone (the 1-D series backbones, other timm families, an ``nn.Module`` of your own) has no
    default: name its blocks with ``manifold_blocks``.

    Args:
        model: the backbone.

    Returns:
        The candidate submodule names, in forward order.

    Raises:
        ValueError: for a backbone without known blocks, naming its top-level submodules.

    Example:
        >>> import timm
        >>> default_manifold_blocks(timm.create_model("test_resnet"))
        ('maxpool', 'layer1', 'layer2', 'layer3')
    """
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    if kind == "timm.models.resnet.ResNet":
        return ("maxpool", "layer1", "layer2", "layer3")
    if kind == "timm.models.vision_transformer.VisionTransformer":
        blocks = getattr(model, "blocks", ())
        return ("patch_embed", *(f"blocks.{i}" for i in range(len(blocks) - 1)))
    children = [name for name, _ in model.named_children()]
    raise ValueError(
        f"`mix_at='manifold'` has no default blocks for the backbone {type(model).__name__} (defaults exist for "
        f"timm ResNets and timm VisionTransformers). Pass `manifold_blocks=[...]`, names of its submodules whose "
        f"output is a (B, ...) tensor called once per forward; its top-level ones are {children}."
    )


def resolve_manifold_blocks(model: nn.Module, blocks: Sequence[str] | None) -> tuple[str, ...]:
    """Check the candidate blocks against ``model`` (or take the defaults) before any training.

    Args:
        model: the backbone.
        blocks: submodule names of ``model`` (as ``model.named_modules()`` gives them), or ``None`` for
            :func:`default_manifold_blocks`.

    Returns:
        The candidate block names.

    Raises:
        ValueError: for a backbone without defaults and no ``blocks``, an empty list, a plain string, a repeated
            name, or a name that is not a submodule (with close matches).

    Example:
        >>> import timm
        >>> resolve_manifold_blocks(timm.create_model("test_resnet"), ["layer2"])
        ('layer2',)
    """
    if blocks is None:
        return default_manifold_blocks(model)
    if isinstance(blocks, str) or not isinstance(blocks, Sequence) or len(blocks) == 0:
        raise ValueError(
            f"`manifold_blocks` must be a non-empty list of submodule names (e.g. ['layer1', 'layer2']), "
            f"or None for the defaults; got {blocks!r}."
        )
    names = {name for name, _ in model.named_modules() if name}
    for block in blocks:
        if block not in names:
            close = difflib.get_close_matches(str(block), sorted(names), n=5, cutoff=0.6)
            hint = f" Close matches: {close}." if close else ""
            raise ValueError(
                f"`manifold_blocks` names {block!r}, which is not a submodule of the backbone "
                f"{type(model).__name__}.{hint} List them with `[n for n, _ in model.model.named_modules()]`."
            )
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"`manifold_blocks` names a block twice: {list(blocks)}. Give each block once.")
    return tuple(blocks)


def manifold_forward(
    model: nn.Module,
    block: str | None,
    inputs: Tensor,
    labels: Tensor,
    params: BatchMixParams | ElemMixParams,
    *,
    num_classes: int,
    smoothing: float = 0.0,
) -> tuple[Tensor, MixOutput]:
    """Forward ``inputs`` through ``model``, mixing the output of ``block`` with ``params`` (Manifold Mixup).

    Args:
        model: the backbone.
        block: the submodule whose output is mixed (``None``, or ``params`` that mix nothing: a plain forward).
        inputs: ``(B, ...)`` inputs, left unmixed.
        labels: ``(B,)`` integer labels.
        params: the mixing draws (Mixup only: no CutMix box on a hidden state).
        num_classes: ``K`` for the soft targets.
        smoothing: label smoothing.

    Returns:
        The logits and a :class:`~lit_early_phase.functional.MixOutput` whose ``inputs`` are the (unmixed)
        inputs and whose targets, dominant labels and parameters are those of the mix applied at the block.

    Raises:
        ValueError: for CutMix parameters.
        RuntimeError: if the block's output is not a tensor of ``B`` rows, the block is not called exactly once
            in the forward, or timm's gradient checkpointing is on (its backward would recompute the block
            unmixed).

    Example:
        >>> import timm, torch
        >>> from lit_early_phase.functional import sample_mix_params
        >>> net = timm.create_model("test_resnet", num_classes=3, in_chans=1)
        >>> p = sample_mix_params(4, (), mixup_alpha=1.0, generator=torch.Generator().manual_seed(0))
        >>> logits, out = manifold_forward(net, "layer1", torch.randn(4, 1, 28, 28), torch.arange(4) % 3, p,
        ...                                num_classes=3)
        >>> logits.shape, out.targets.sum(1).tolist()
        (torch.Size([4, 3]), [1.0, 1.0, 1.0, 1.0])
    """
    if params.any_cutmix:
        raise ValueError("Manifold Mixup mixes hidden states by Mixup only; these parameters carry a CutMix box.")
    if block is None or not params.any_mixed:
        return model(inputs), apply_mix(inputs, labels, params, num_classes=num_classes, smoothing=smoothing)
    if getattr(model, "grad_checkpointing", False):
        # the backward recomputes the checkpointed blocks after the hook is gone: the gradients would be those
        # of the unmixed hidden state, silently
        raise RuntimeError(
            f"Manifold Mixup cannot run with timm's gradient checkpointing on {type(model).__name__}: the backward "
            f"recomputes the blocks without the mixing hook. Call `set_grad_checkpointing(False)` on the backbone, "
            f"or use `mix_at='input'`."
        )
    applied: list[MixOutput] = []

    def mix_output(module: nn.Module, args: object, output: object) -> Tensor:
        if applied:
            raise RuntimeError(
                f"Manifold Mixup block {block!r} was called more than once in one forward; name a block that "
                f"runs once (e.g. a stage, not a shared activation)."
            )
        if not isinstance(output, Tensor) or output.dim() == 0 or output.shape[0] != inputs.shape[0]:
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise RuntimeError(
                f"Manifold Mixup block {block!r} returned {got}, not a tensor with one row per sample "
                f"({inputs.shape[0]}); name a block whose output is the hidden state."
            )
        out = apply_mix(output, labels, params, num_classes=num_classes, smoothing=smoothing)
        applied.append(out)
        return out.inputs

    handle = model.get_submodule(block).register_forward_hook(mix_output, prepend=True)
    try:
        logits = model(inputs)
    finally:
        handle.remove()
    if not applied:
        raise RuntimeError(
            f"Manifold Mixup block {block!r} was not called in the forward of {type(model).__name__}; name a "
            f"block the forward runs."
        )
    mixed = applied[0]
    return logits, MixOutput(inputs, mixed.targets, mixed.dominant, mixed.params)
