"""A few steps of each image-folder recipe on one device, on the small real image folder of the CPU tests.

Each recipe (``ImageFolderDataModule`` data: the paper's settings) runs through the CLI with the overrides of
``tests/recipe_smoke.py`` (one device, no DDP, batch size 4, smaller images where the recipe's are large) and
``--precision`` (``bf16-mixed`` by default on ``cuda``). Records the steps done, the wall time, the loss and, on
CUDA, the peak memory allocated (at batch size 4: a smoke value, not the recipe's memory). Writes ``<out>.json`` and
``<out>.md`` naming the device; exits 1 when a recipe fails.

    python scripts/gpu_check_recipes.py --device cuda --out benchmarks/results/gpu_check_recipes
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the smoke folder and overrides of the CPU tests
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmarks' provenance: commit, uncommitted changes, code hash
import _common as C  # noqa: E402
from recipe_smoke import build_image_folder, smoke_args, uses_image_folder  # noqa: E402


def image_folder_recipes() -> list[str]:
    """The packaged recipes that train on an image folder."""
    import yaml

    from lit_early_phase.recipes import names, recipe_path

    return [n for n in names() if uses_image_folder(yaml.safe_load(recipe_path(n).read_text()))]


def run_recipe(name: str, data_dir: Path, root_dir: Path, *, device: str, precision: str, steps: int) -> dict:
    """``steps`` training steps of recipe ``name``; what happened, as plain values."""
    import torch

    from lit_early_phase.cli import build_cli

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        cli = build_cli(
            [
                "fit", "--config", name, *smoke_args(name, data_dir, accelerator=device, precision=precision),
                f"--trainer.max_steps={steps}", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1",
                "--trainer.num_sanity_val_steps=0", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={root_dir / name}",
            ]
        )  # fmt: skip
    except Exception as err:
        return {"recipe": name, "ok": False, "error": "".join(traceback.format_exception_only(err)).strip()[-1000:]}
    loss = cli.trainer.callback_metrics.get("train/loss")
    loss = None if loss is None else float(loss)
    ok = cli.trainer.global_step == steps and (loss is None or math.isfinite(loss))
    return {
        "recipe": name,
        "ok": ok,
        "global_step": cli.trainer.global_step,
        "wall_s": round(time.perf_counter() - started, 2),
        "train_loss": loss,
        "precision": str(cli.trainer.precision),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every image-folder recipe; write the results; 0 when all ran their steps with a finite loss."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--precision", default=None, help="Lightning precision (default: bf16-mixed on cuda)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--recipes", nargs="+", help="recipe names (default: every image-folder recipe)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check_recipes"))
    args = parser.parse_args(argv)
    import lightning
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a smoke run", file=sys.stderr)
        return 2
    precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({platform.machine()})"
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = build_image_folder(Path(tmp) / "images")
        runs = [
            run_recipe(n, data_dir, Path(tmp), device=args.device, precision=precision, steps=args.steps)
            for n in args.recipes or image_folder_recipes()
        ]
    result = {
        "script": "scripts/gpu_check_recipes.py",
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": C.git_state(),
        "device": args.device,
        "device_name": device_name,
        "precision": precision,
        "steps": args.steps,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "runs": runs,
        "ok": all(r["ok"] for r in runs),
    }
    lines = [
        "# GPU check: a few steps of each image-folder recipe",
        "",
        f"- Device: {device_name} (`--device {args.device}`, {precision}); torch {torch.__version__}, Lightning "
        f"{lightning.__version__}; {result['date_utc']}. Batch size 4 on 20 foolbox ImageNet JPEGs: peak memory is a "
        "smoke value, not the recipe's.",
        f"- Git: {result['git']['commit']}{' (uncommitted code changes)' if result['git']['code_dirty'] else ''}.",
        "",
        "| recipe | ok | steps | wall s | train loss | peak memory MiB | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['recipe']} | {r['ok']} | {r.get('global_step', '')} | {r.get('wall_s', '')} | "
            f"{r.get('train_loss', '')} | {r.get('peak_memory_mib', '')} | {r.get('error', '')[:200]} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
