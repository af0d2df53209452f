"""Optimizer and scheduler factories as plain values: what the modules store in ``hparams``.

``ImageClassifier`` and ``CausalLMFineTune`` take ``OptimizerCallable`` / ``LRSchedulerCallable`` arguments and keep
them as LightningCLI-style class-path dicts, so their checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import sys
from pathlib import Path
from typing import Any, Literal

import torch

_PLAIN_SCALARS = (bool, int, float, str, type(None))
_FACTORY_KINDS: dict[str, tuple[type, ...]] = {
    "optimizer": (torch.optim.Optimizer,),
    "lr_scheduler": (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau),
}


def _plain(value: Any) -> Any:
    """``value`` as plain values (tuples become lists, as LightningCLI writes them), or raise ``TypeError``."""
    if isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise TypeError(f"{value!r} is not a plain value")


def _import_path(cls: type) -> str:
    """The shortest dotted path under which ``cls`` is reachable, e.g. ``torch.optim.AdamW``.

    Hand-written because jsonargparse's equivalent is private; LightningCLI writes the path the user typed,
    normally the public one, which this finds too.
    """
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return f"{module.__name__}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_factory(factory: Any, kind: Literal["optimizer", "lr_scheduler"]) -> dict[str, Any] | None:
    """The plain form of an optimizer or scheduler factory, as LightningCLI stores it in ``hparams``.

    ``{"class_path": "torch.optim.AdamW", "init_args": {...}}`` for a class, a ``functools.partial`` of a class
    with plain keyword arguments, or such a dict; ``None`` for ``None``. A factory that plain values cannot
    describe (a lambda, a closure) gives ``{"class_path": None, "description": "..."}``: the checkpoint keeps no
    code, and a model restored from it asks for ``optimizer=`` when it is trained (see :class:`ImageClassifier`).

    Args:
        factory: what was passed as ``optimizer`` / ``lr_scheduler``.
        kind: ``"optimizer"`` or ``"lr_scheduler"``.

    Returns:
        A dict of plain values, or ``None``.

    Example:
        >>> describe_factory(functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9), "optimizer")
        {'class_path': 'torch.optim.SGD', 'init_args': {'lr': 0.1, 'momentum': 0.9}}
    """
    if factory is None:
        return None
    if isinstance(factory, dict):
        _resolve_class(factory, kind)  # validates
        return _plain(factory)
    target, kwargs = factory, {}
    if isinstance(factory, functools.partial):
        if not factory.args:
            target, kwargs = factory.func, factory.keywords
        elif getattr(factory.func, "__module__", "").startswith("jsonargparse") and isinstance(factory.args[-1], type):
            # what jsonargparse builds from a class-path dict (LightningCLI, `load_from_checkpoint` of a CLI
            # checkpoint): partial(<its instantiator>, ..., cls, **init_args)
            target, kwargs = factory.args[-1], factory.keywords
    if isinstance(target, type) and issubclass(target, _FACTORY_KINDS[kind]):
        try:
            return {"class_path": _import_path(target), "init_args": _plain(dict(kwargs))}
        except TypeError:
            pass
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    code = getattr(factory, "__code__", None)
    where = f" ({Path(code.co_filename).name}:{code.co_firstlineno})" if code is not None else ""
    return {"class_path": None, "description": f"{name}{where}"}


def _resolve_class(spec: dict[str, Any], kind: str) -> type | None:
    """Check a class-path dict and return its class (``None`` for a factory that was not stored).

    Only classes of modules already imported resolve (as Lightning resolves a checkpoint's class path): reading a
    checkpoint never imports new code.
    """
    unknown = set(spec) - {"class_path", "init_args", "description"}
    class_path, init_args = spec.get("class_path"), spec.get("init_args", {})
    if unknown or not (class_path is None or isinstance(class_path, str)) or not isinstance(init_args, dict):
        raise ValueError(
            f"`{kind}={spec!r}` is not a class-path dict: use {{'class_path': 'torch.optim.AdamW', "
            f"'init_args': {{'lr': 0.001}}}} (what LightningCLI writes), or pass the class or a callable."
        )
    if class_path is None:
        return None
    module_name, _, name = class_path.rpartition(".")
    module = sys.modules.get(module_name)
    cls = getattr(module, name, None)
    bases = _FACTORY_KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, bases)):
        names = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, bases)] if module else []
        lower = {n.lower(): n for n in names}
        close = [f"{module_name}.{lower[n]}" for n in difflib.get_close_matches(name.lower(), lower, n=3, cutoff=0.6)]
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"`{kind}` class_path {class_path!r} does not name an imported {' or '.join(b.__name__ for b in bases)} "
            f"class.{hint} Check the spelling (e.g. 'torch.optim.AdamW'), or import the module that defines it "
            f"before creating or loading the model."
        )
    try:
        inspect.signature(cls).bind_partial(None, **init_args)
    except TypeError as err:
        raise ValueError(f"`{kind}` init_args {init_args} do not fit {class_path}: {err}.") from err
    return cls


class _NotStored:
    """Stands in for a factory that a checkpoint could not hold as plain values; says what to do when called."""

    def __init__(self, kind: str, description: str) -> None:
        self.kind, self.description = kind, description

    def __call__(self, *args: Any) -> Any:
        raise RuntimeError(
            f"This ImageClassifier was restored from a checkpoint whose `{self.kind}` ({self.description}) could "
            f"not be stored as plain values, so it is not known. Pass it again: "
            f"`ImageClassifier.load_from_checkpoint(path, {self.kind}=...)`, or give the class (with "
            f"`functools.partial` for its arguments) when you create the model, so the checkpoint can hold it."
        )


def _factory(spec: Any, kind: str) -> Any:
    """The callable behind ``optimizer`` / ``lr_scheduler`` (a class-path dict is resolved, anything else kept)."""
    if not isinstance(spec, dict):
        return spec
    cls = _resolve_class(spec, kind)
    if cls is None:
        return _NotStored(kind, str(spec.get("description", "unknown")))
    return functools.partial(cls, **spec.get("init_args", {}))


def split_factories(optimizer: Any, lr_scheduler: Any) -> tuple[Any, Any, dict | None, dict | None]:
    """The callables behind a module's ``optimizer`` / ``lr_scheduler`` arguments and their plain forms.

    A module keeps the callables and rebinds its arguments to the plain class-path dicts before
    ``save_hyperparameters`` (which reads the constructor's frame), so its checkpoints load with
    ``torch.load(weights_only=True)``; under LightningCLI ``save_hyperparameters`` stores the CLI's own config,
    which has the same form.

    Args:
        optimizer: an optimizer factory in any accepted form (class, partial, class-path dict, callable).
        lr_scheduler: a scheduler factory in the same forms, or ``None``.

    Returns:
        ``(optimizer_factory, lr_scheduler_factory, optimizer_plain, lr_scheduler_plain)``.

    Example:
        >>> opt, sched, plain, none = split_factories(functools.partial(torch.optim.SGD, lr=0.1), None)
        >>> plain, sched, none
        ({'class_path': 'torch.optim.SGD', 'init_args': {'lr': 0.1}}, None, None)
    """
    return (
        _factory(optimizer, "optimizer"),
        _factory(lr_scheduler, "lr_scheduler"),
        describe_factory(optimizer, "optimizer"),
        describe_factory(lr_scheduler, "lr_scheduler"),
    )


def optimizers_from_factories(
    params: Any, optimizer_factory: Any, lr_scheduler_factory: Any | None, interval: str
) -> Any:
    """What ``configure_optimizers`` returns: the optimizer, and with a scheduler factory Lightning's dict.

    Args:
        params: the parameters to optimise.
        optimizer_factory: ``params -> Optimizer``.
        lr_scheduler_factory: ``optimizer -> LRScheduler`` or ``None``.
        interval: ``"epoch"`` or ``"step"`` (when the scheduler steps).

    Returns:
        The optimizer, or ``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": interval}}``.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> sgd = functools.partial(torch.optim.SGD, lr=0.1)
        >>> type(optimizers_from_factories(net.parameters(), sgd, None, "epoch")).__name__
        'SGD'
    """
    optimizer = optimizer_factory(params)
    if lr_scheduler_factory is None:
        return optimizer
    scheduler = lr_scheduler_factory(optimizer)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
