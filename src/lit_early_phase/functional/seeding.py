"""Randomness keyed by where training is: one hash from a few integers to a seed, for data, mixing and dropout.

A sample's augmentation is keyed by ``(seed, epoch, index)`` and a training step's mixing draws by
``(seed, rank, epoch, batch)``, as are a language model's dropout masks (:func:`keyed_device_rng`): the draws then
depend only on the key, not on a generator's history, so a run resumed from a checkpoint, or served by any number
of workers or ranks, draws the same numbers with no generator state saved.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def keyed_seed(*key: int) -> int:
    """A well-spread 63-bit seed from a key of integers: neighbouring keys give unrelated streams.

    BLAKE2b over the integers, each taken modulo ``2**64`` (so negative ones are fine): about 1 µs, where
    ``numpy.random.SeedSequence`` takes about 40 µs.

    Args:
        *key: the integers that say where training is, e.g. ``(seed, epoch, index)``.

    Returns:
        A seed in ``[0, 2**63)`` for ``torch.Generator.manual_seed``.

    Raises:
        ValueError: for an empty key.

    Example:
        >>> keyed_seed(0, 3, 1) == keyed_seed(0, 3, 1), keyed_seed(0, 3, 1) == keyed_seed(0, 3, 2)
        (True, False)
        >>> 0 <= keyed_seed(-1, 2**70) < 2**63
        True
    """
    if not key:
        raise ValueError("`keyed_seed` needs at least one integer, e.g. keyed_seed(seed, epoch, index).")
    packed = struct.pack(f"<{len(key)}Q", *(int(k) % 2**64 for k in key))
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little") >> 1


def keyed_generator(*key: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded by :func:`keyed_seed` of ``key`` (it costs microseconds).

    Args:
        *key: the integers that say where training is.

    Returns:
        The seeded generator.

    Example:
        >>> a, b = keyed_generator(0, 1), keyed_generator(0, 1)
        >>> torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
        True
    """
    return torch.Generator().manual_seed(keyed_seed(*key))


@contextmanager
def keyed_global_rng(*key: int, python: bool = False, numpy: bool = False) -> Iterator[None]:
    """Seed torch's global CPU RNG by :func:`keyed_seed` of ``key`` inside the block, and put its state back after.

    For code that draws from the global RNG and takes no generator (torchvision's ``transforms.v2``). Saving and
    restoring the state by hand costs a third of ``torch.random.fork_rng``. timm's transforms also draw from
    Python's ``random`` (random-resized crop, RandAugment's magnitudes, random erasing) and NumPy's legacy global
    RNG (RandAugment's choice of ops, AugMix): ``python=True`` / ``numpy=True`` seed those too (each from its own
    key, ``key + (1,)`` and ``key + (2,)``) and put them back after.

    Args:
        *key: the integers that say where training is.
        python: also seed (and restore) Python's ``random``.
        numpy: also seed (and restore) NumPy's global ``numpy.random`` state.

    Yields:
        Nothing; the global RNG is seeded inside the block.

    Example:
        >>> with keyed_global_rng(0, 2, 5):
        ...     a = torch.rand(2)
        >>> with keyed_global_rng(0, 2, 5):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b)
        True
        >>> import random
        >>> with keyed_global_rng(0, 2, 5, python=True):
        ...     c = random.random()
        >>> with keyed_global_rng(0, 2, 5, python=True):
        ...     d = random.random()
        >>> c == d
        True
    """
    state = torch.get_rng_state()
    py_state = random.getstate() if python else None
    np_state = np.random.get_state() if numpy else None
    try:
        torch.default_generator.manual_seed(keyed_seed(*key))
        if python:
            random.seed(keyed_seed(*key, 1))
        if numpy:
            np.random.seed(keyed_seed(*key, 2) % 2**32)  # the legacy seeder takes 32 bits
        yield
    finally:
        torch.set_rng_state(state)
        if py_state is not None:
            random.setstate(py_state)
        if np_state is not None:
            np.random.set_state(np_state)


@contextmanager
def keyed_device_rng(device: torch.device | str, *key: int) -> Iterator[None]:
    """Seed torch's global CPU RNG, and on a GPU that device's generator, by :func:`keyed_seed` of ``key``.

    For model code that draws from the default generators (``torch.nn.Dropout``, peft's ``lora_dropout``): on a
    GPU dropout draws from the device's generator, so seeding the CPU one alone (:func:`keyed_global_rng`) would
    not key it. Both states are put back after the block, so code outside it sees the global RNG unchanged.

    Args:
        device: the device the model runs on (``"cpu"``, ``"cuda:0"``, ...); other accelerators' generators are
            left alone.
        *key: the integers that say where training is.

    Yields:
        Nothing; the generators are seeded inside the block.

    Example:
        >>> with keyed_device_rng("cpu", 0, 1, 4):
        ...     a = torch.nn.functional.dropout(torch.ones(6), 0.5)
        >>> with keyed_device_rng("cpu", 0, 1, 4):
        ...     b = torch.nn.functional.dropout(torch.ones(6), 0.5)
        >>> torch.equal(a, b)
        True
    """
    device = torch.device(device)
    seed = keyed_seed(*key)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(index) if cuda else None
    try:
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, index)
