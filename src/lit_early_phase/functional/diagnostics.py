"""The paper's diagnostics of the enlightenment period as pure tensor functions (no Lightning).

* :func:`benr`: batch-epoch norm ratio of a window of parameter updates;
* :func:`dead_fraction`: share of activations at or below zero (ReLU-like layers);
* :func:`interference_ratio`: the part of a mixed-batch gradient perpendicular to the clean-batch gradient;
* :func:`activation_distance`: how far a probe batch's activations moved between two checks.

:class:`~lit_early_phase.callbacks.EnlightenmentDiagnostics` measures them during training; the definitions here
are the ones documented in ``docs/diagnostics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor | None]) -> Tensor:
    """Concatenate tensors into one float32 vector (``None`` entries, such as unused parameters' gradients, skipped).

    Args:
        tensors: tensors of any shapes, on one device.

    Returns:
        A 1-D float32 tensor (empty when nothing is given).

    Example:
        >>> flatten([torch.ones(2, 2), None, torch.zeros(1)])
        tensor([1., 1., 1., 1., 0.])
    """
    parts = [t.detach().reshape(-1).float() for t in tensors if t is not None]
    return torch.cat(parts) if parts else torch.zeros(0)


def benr(step_norm_sum: float | Tensor, total_update: Tensor) -> Tensor:
    """Batch-epoch norm ratio: ``Σ_t ‖Δθ_t‖ / ‖Σ_t Δθ_t‖`` over a window of optimizer steps.

    ``Δθ_t`` is the change of the (trainable) parameters made by step ``t``; the sum of their norms is passed in,
    so a caller keeps one running number instead of every update. The ratio is 1 when every step moved the
    parameters in the same direction and grows as steps disagree (the paper's "noisy" early phase). It is
    ``inf`` when the steps cancelled exactly, and NaN for a window without movement (``0 / 0``).

    Args:
        step_norm_sum: ``Σ_t ‖Δθ_t‖₂``.
        total_update: ``θ_end − θ_start`` flattened (or any shape: its norm is taken).

    Returns:
        A 0-dim float32 tensor, >= 1 whenever defined (triangle inequality).

    Example:
        >>> d1, d2 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
        >>> benr(d1.norm() + d2.norm(), d1 + d2)  # (3 + 4) / 5
        tensor(1.4000)
    """
    return torch.as_tensor(step_norm_sum, dtype=torch.float32) / total_update.float().norm()


def dead_fraction(activations: Tensor) -> Tensor:
    """Share of the activations that are ``<= 0``: for ReLU the zero outputs, the units that pass no gradient.

    For GELU, SiLU, ELU, Leaky ReLU (whose output is ``<= 0`` exactly where the input is) it is the share of
    units in the negative, low-gradient region, the same quantity with a soft floor.

    Args:
        activations: a layer's output, any shape.

    Returns:
        A 0-dim float32 tensor in ``[0, 1]`` (NaN for an empty tensor).

    Example:
        >>> dead_fraction(torch.relu(torch.tensor([-1.0, 0.5, -2.0, 3.0])))
        tensor(0.5000)
    """
    return (activations.detach() <= 0).float().mean()


def interference_ratio(mixed_grad: Tensor, clean_grad: Tensor) -> Tensor:
    """Mixup gradient interference: ``‖g_mix − proj_{g_clean} g_mix‖ / ‖g_clean‖``.

    ``g_clean`` is the gradient of the mean loss of a clean batch, ``g_mix`` the gradient of the mean loss of the
    same batch mixed (inputs and soft targets). The ratio is the size of the mixed gradient's component that is
    perpendicular to the clean one, the direction that does not help the clean objective, measured in units of
    the clean gradient. 0 when mixing only rescales the clean gradient; for the paper's linear-sigmoid model and
    one mixed pair of orthogonal, equal-norm inputs it is ``2 |λ − 1/2|`` (tested).

    Args:
        mixed_grad: flattened ``g_mix``.
        clean_grad: flattened ``g_clean``, the same length.

    Returns:
        A 0-dim float32 tensor (``inf`` when ``g_clean`` is zero and ``g_mix`` is not).

    Raises:
        ValueError: if the two gradients have different numbers of elements.

    Example:
        >>> interference_ratio(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]))  # perp part 1, clean norm 2
        tensor(0.5000)
    """
    g_mix, g_clean = mixed_grad.reshape(-1).float(), clean_grad.reshape(-1).float()
    if g_mix.numel() != g_clean.numel():
        raise ValueError(
            f"`mixed_grad` has {g_mix.numel()} elements and `clean_grad` {g_clean.numel()}: they must be gradients "
            "of the same parameters."
        )
    clean_sq = g_clean.dot(g_clean)
    parallel = g_mix.dot(g_clean) / clean_sq if clean_sq > 0 else torch.zeros(())
    return (g_mix - parallel * g_clean).norm() / clean_sq.sqrt()


def activation_distance(previous: Sequence[Tensor], current: Sequence[Tensor]) -> Tensor:
    """Activation trajectory distance: ``‖a_now − a_before‖₂`` over a probe batch's activations, all layers.

    Args:
        previous: the layers' outputs at the previous check.
        current: the same layers' outputs now (same shapes, same probe batch).

    Returns:
        A 0-dim float32 tensor.

    Raises:
        ValueError: if the layer lists or their shapes differ.

    Example:
        >>> activation_distance([torch.zeros(2)], [torch.tensor([3.0, 4.0])])
        tensor(5.)
    """
    if len(previous) != len(current) or any(p.shape != c.shape for p, c in zip(previous, current, strict=False)):
        raise ValueError(
            "`previous` and `current` must hold the same layers' outputs for the same probe batch: got shapes "
            f"{[tuple(p.shape) for p in previous]} and {[tuple(c.shape) for c in current]}."
        )
    return (flatten(list(current)) - flatten(list(previous))).norm()
