"""The training hot path between checks makes no host sync of its own: ImageClassifier + EnlightenmentCallback on a GPU.

For each strategy, the shipped ``ImageClassifier`` (timm's ``test_resnet``, Mixup α 0.4 + CutMix α 1.0, so that the
mixing runs) trains with ``EnlightenmentCallback(check_every_n_steps=10**6)``: no check falls in the run, so every
step is a step *between checks*, where the package must not read a tensor value on the host. After ``--warmup``
steps ``torch.cuda.set_sync_debug_mode`` is switched on for ``--steps`` steps (hooks of the callback included) and
off again before the last step, so the epoch and fit ends (which may sync: checks, summaries) stay outside:

1. ``warn`` mode: every synchronizing CUDA call is recorded with the Python stack that made it, and attributed to
   the innermost frame of the package (``lit_early_phase``) or of Lightning on that stack (torch, torchmetrics
   and timm frames are skipped: they run for whoever called them). A sync attributed to the package fails the
   check; Lightning's and torch's own are listed.
2. ``error`` mode (``torch.cuda.set_sync_debug_mode("error")``): the same fit again, where a synchronizing call
   raises; the first one is reported, attributed the same way, and fails the check if it is the package's.

With ``--device cpu`` sync debug mode does not exist: the fits run (the script and the model are exercised) and
the sync part is reported as skipped. Writes ``<out>.json`` and ``<out>.md`` naming the device; exits 1 on a
failure.

    python scripts/gpu_check_hot_path.py --device cuda --out benchmarks/results/gpu_check_hot_path
    python scripts/gpu_check_hot_path.py --device cpu --steps 3 --warmup 1 --out /tmp/hot_path   # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common as C

STRATEGIES = ("mixup_pause", "alpha_boost", "high_loss_removal")
#: libraries that only run for whoever called them: a sync inside them belongs to the caller
PASS_THROUGH = ("/torch/", "/torchmetrics/", "/timm/", "/lightning_utilities/")
SYNC_WARNING = "called a synchronizing CUDA operation"


def attribute(filenames: list[str], package_dir: str) -> str:
    """Who made a host sync: ``"package"``, ``"lightning"`` or ``"other"``.

    Args:
        filenames: the stack's file names, outermost first (``traceback.extract_stack()`` order).
        package_dir: the folder of the ``lit_early_phase`` package under test.

    Returns:
        The owner of the innermost frame that is not in a pass-through library (torch, torchmetrics, timm).

    Example:
        >>> pkg = "/s/lit_early_phase"
        >>> attribute(["/x/lightning/pytorch/loops/a.py", f"{pkg}/m.py", "/x/torch/nn/t.py"], pkg)
        'package'
        >>> attribute([f"{pkg}/m.py", "/x/lightning/pytorch/core/o.py", "/x/torch/optim/a.py"], pkg)
        'lightning'
    """
    package = package_dir.rstrip("/") + "/"
    for name in reversed(filenames):
        name = name.replace("\\", "/")
        if name.startswith(package):
            return "package"
        if any(part in name for part in PASS_THROUGH):
            continue
        return "lightning" if "/lightning/" in name or "/pytorch_lightning/" in name else "other"
    return "other"


def _site(frames: list[traceback.FrameSummary]) -> str:
    """The innermost frames of a stack, for the report."""
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-6:]))


def _fit(strategy: str, args: argparse.Namespace, mode: str | None) -> dict[str, Any]:
    """One fit of ``warmup + steps + 1`` steps, sync debug mode ``mode`` on for the ``steps`` in between."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, TensorDataset

    import lit_early_phase
    from lit_early_phase import EnlightenmentCallback, ImageClassifier

    package_dir = str(Path(lit_early_phase.__file__).resolve().parent)
    on_at, off_at = args.warmup, args.warmup + args.steps
    syncs: list[dict[str, Any]] = []

    def record(message, category, filename, lineno, file=None, line=None) -> None:
        if SYNC_WARNING in str(message):
            frames = traceback.extract_stack()[:-1]
            owner = attribute([f.filename for f in frames], package_dir)
            syncs.append({"owner": owner, "site": _site(frames)})

    class SyncDebug(Callback):
        """First in the callback list: on before every hook of a covered step, off at the step after them."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if mode is None:
                return
            if trainer.global_step == on_at:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode(mode)
            elif trainer.global_step == off_at:
                torch.cuda.set_sync_debug_mode(0)

        def on_exception(self, trainer, pl_module, exception) -> None:
            if mode is not None:  # off before Lightning's teardown, which may sync
                torch.cuda.set_sync_debug_mode(0)

    L.seed_everything(0, verbose=False)
    n = args.batch_size * (off_at + 2)  # one epoch holds every step: no epoch end inside the covered steps
    data = TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,)))
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, pin_memory=args.device == "cuda")
    model = ImageClassifier(
        "test_resnet", num_classes=10, in_chans=3, mixup_alpha=0.4, cutmix_alpha=1.0, drop_fraction=0.0
    )
    callback = EnlightenmentCallback(
        strategy=strategy, check_every_n_steps=10**6, threshold=0.999, max_duration=None, verbose=False, figure=False
    )
    trainer = L.Trainer(
        accelerator=args.device, devices=1, precision=args.precision, max_steps=off_at + 1, max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=10**6, callbacks=[SyncDebug(), callback],
    )  # fmt: skip
    started = time.perf_counter()
    error: dict[str, Any] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        try:
            trainer.fit(model, loader)
        except RuntimeError as err:
            frames = traceback.extract_tb(err.__traceback__)
            owner = attribute([f.filename for f in frames], package_dir)
            error = {"owner": owner, "site": _site(list(frames)), "message": str(err).splitlines()[0][:300]}
        finally:
            if mode is not None:
                torch.cuda.set_sync_debug_mode(0)
    return {
        "strategy": strategy,
        "mode": mode or "off",
        "global_step": trainer.global_step,
        "in_period": callback.in_period,
        "wall_s": round(time.perf_counter() - started, 2),
        "syncs": syncs,
        "error": error,
    }


def _failures(run: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """What fails the check in one run: a sync made by the package, or a fit that stopped early without error."""
    found = [f"package sync at {s['site']}" for s in run["syncs"] if s["owner"] == "package"]
    error = run["error"]
    if error is not None and error["owner"] == "package":
        found.append(f"package sync at {error['site']}: {error['message']}")
    if error is None and run["global_step"] != args.warmup + args.steps + 1:
        found.append(f"the fit stopped at step {run['global_step']}")
    return found


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()})"


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [
        "# GPU check: host syncs on the training hot path between checks",
        "",
        f"- Device: {result['device_name']} (`--device {result['device']}`, precision {result['precision']}); "
        f"torch {result['torch']}, Lightning {result['lightning']}; {result['date_utc']}.",
        f"- Git: {result['git']['commit']}{' (uncommitted code changes)' if result['git']['code_dirty'] else ''}.",
        f"- Sync debug mode ({result['sync_debug']}) for steps {result['warmup']} to "
        f"{result['warmup'] + result['steps'] - 1}; verdict: **{'pass' if result['ok'] else 'FAIL'}**.",
        "",
        "| strategy | mode | steps | package syncs | Lightning / other syncs | error (owner: first site) |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        own = sum(s["owner"] == "package" for s in run["syncs"])
        other = len(run["syncs"]) - own
        err = run["error"]
        err_text = f"{err['owner']}: {err['site']}" if err else "none"
        lines.append(f"| {run['strategy']} | {run['mode']} | {run['global_step']} | {own} | {other} | {err_text} |")
    sites = sorted({s["site"] for run in result["runs"] for s in run["syncs"] if s["owner"] != "package"})
    if sites:
        lines += ["", "Sync sites outside the package (not failures):", ""] + [f"- `{s}`" for s in sites[:20]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check; write ``<out>.json`` / ``<out>.md``; return 0 when the package made no host sync."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--precision", default=None, help="Lightning precision (default: bf16-mixed on cuda)")
    parser.add_argument("--steps", type=int, default=40, help="steps under sync debug mode")
    parser.add_argument("--warmup", type=int, default=10, help="steps before sync debug mode is switched on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check_hot_path"))
    args = parser.parse_args(argv)
    import lightning
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a smoke run", file=sys.stderr)
        return 2
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    modes: list[str | None] = ["warn", "error"] if args.device == "cuda" else [None]
    runs = [_fit(strategy, args, mode) for strategy in STRATEGIES for mode in modes]
    failures = [f"{run['strategy']} ({run['mode']}): {what}" for run in runs for what in _failures(run, args)]
    result = {
        "script": "scripts/gpu_check_hot_path.py",
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": C.git_state(),
        "device": args.device,
        "device_name": _device_name(args.device),
        "precision": args.precision,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "warmup": args.warmup,
        "steps": args.steps,
        "sync_debug": "skipped: no sync debug mode on CPU" if args.device == "cpu" else "warn, then error",
        "runs": runs,
        "failures": failures,
        "ok": not failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
