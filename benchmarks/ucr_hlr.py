"""High-Loss Removal on every classification set aeon bundles: baseline vs HLR (metric) vs HLR (fixed short).

Three arms, the same model, data, optimizer, schedule and number of optimizer steps, paired by seed (a seed fixes
the initial weights and the batch order, so two arms of one seed differ only by the removal):

* ``baseline``: no EnlightenmentCallback, every sample counts all the time;
* ``hlr_metric``: ``EnlightenmentCallback(strategy="high_loss_removal", chance_adjusted=True)``: 10 % of each
  batch's highest-loss series leave the loss until the running training accuracy, chance-adjusted, reaches 0.5
  (default guard: at most a fifth of the run);
* ``hlr_fixed``: the same removal for a fixed short period, the first 5 % of the optimizer steps.

Reported: test accuracy on the official test split after the last step (no model selection, no validation
split), per set mean ± std over seeds, the paired difference to the baseline with a 95 % t-interval, and a
win/tie/loss count (win: the interval is above 0, loss: below 0, tie: it contains 0). Holm (:func:`comparisons`)
adjusts two families apart: the headline one, each arm's mean of per-set differences over the sets (m = 2), and
the per-set comparisons (m = sets x arms).

    python benchmarks/ucr_hlr.py            # full: all bundled sets, 5 seeds -> benchmarks/results/ucr_hlr.*
    python benchmarks/ucr_hlr.py --quick    # 2 sets, 2 seeds, 40 steps -> benchmarks/results/ucr_hlr_quick.*
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

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
    "src/lit_early_phase/modules/classifier.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/modules/factories.py",
    "src/lit_early_phase/modules/manifold.py",
    "src/lit_early_phase/backbones",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/datamodules/series",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/ucr_hlr.py",
)

ARMS = ("baseline", "hlr_metric", "hlr_fixed")
QUICK_SETS = ("GunPoint", "BasicMotions")
CONFIG: dict[str, Any] = {
    "backbone": "fcn",
    "backbone_kwargs": {"widths": [32, 64, 32], "kernel_sizes": [8, 5, 3]},
    "optimizer": "AdamW(lr=2e-3, weight_decay=0.01)",
    "lr": 2e-3,
    "schedule": "cosine over the run, per step",
    "batch_size": 16,
    "val_size": 0,
    "unequal": "pad",
    "znorm": "series for univariate sets, channel for multivariate ones",
    "drop_fraction": 0.1,
    "metric_callback": {
        "strategy": "high_loss_removal",
        "threshold": 0.5,
        "chance_adjusted": True,
        "window": 5,
        "check_every_n_steps": 2,
        "max_duration": "0.2dur",
    },
    "fixed_duration": "0.05dur",
    "torch_threads_per_run": 1,
}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    C.quiet()


def run_one(name: str, arm: str, seed: int, steps: int) -> dict[str, Any]:
    """Train one (set, arm, seed) for ``steps`` optimizer steps and return its test accuracy."""
    import lightning as L
    import torch

    from lit_early_phase import EnlightenmentCallback, ImageClassifier
    from lit_early_phase.datamodules import UCRDataModule

    C.quiet()
    probe = UCRDataModule(name, val_size=0)
    znorm = "series" if probe.in_chans == 1 else "channel"
    dm = UCRDataModule(name, batch_size=CONFIG["batch_size"], val_size=0, unequal="pad", znorm=znorm)
    L.seed_everything(seed, verbose=False)
    model = ImageClassifier(
        CONFIG["backbone"],
        num_classes=dm.num_classes,
        in_chans=dm.in_chans,
        backbone_kwargs=CONFIG["backbone_kwargs"],
        optimizer=lambda params: torch.optim.AdamW(params, lr=CONFIG["lr"], weight_decay=0.01),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
        lr_interval="step",
    )
    callbacks = []
    if arm == "hlr_metric":
        callbacks.append(EnlightenmentCallback(**CONFIG["metric_callback"], verbose=False))
    elif arm == "hlr_fixed":
        callbacks.append(
            EnlightenmentCallback(strategy="high_loss_removal", duration=CONFIG["fixed_duration"], verbose=False)
        )
    elif arm != "baseline":
        raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")
    trainer = C.quiet_trainer(steps=steps, callbacks=callbacks, accelerator="cpu", devices=1)
    trainer.fit(model, dm)
    acc = float(trainer.test(model, dm, verbose=False)[0]["test/acc"])
    cb = callbacks[0] if callbacks else None
    return {
        "set": name,
        "arm": arm,
        "seed": seed,
        "test_acc": acc,
        "steps": int(trainer.global_step),
        "boundary_step": None if cb is None else cb.boundary_step,
        "boundary_reason": None if cb is None else cb.reason,
    }


def summarise(runs: list[dict[str, Any]], sets: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per-set mean ± std per arm, paired differences to the baseline with 95 % t-intervals, win/tie/loss."""
    acc = {(r["set"], r["arm"], r["seed"]): r["test_acc"] for r in runs}
    per_set = []
    diffs_by_arm: dict[str, list[float]] = {arm: [] for arm in ARMS[1:]}
    for name in sets:
        row: dict[str, Any] = {"set": name}
        base = np.array([acc[(name, "baseline", s)] for s in seeds])
        for arm in ARMS:
            mean, std = C.mean_std(acc[(name, arm, s)] for s in seeds)
            row[arm] = {"mean": mean, "std": std}
        for arm in ARMS[1:]:
            d = np.array([acc[(name, arm, s)] for s in seeds]) - base
            mean, lo, hi = C.t_interval(d)
            outcome = "win" if lo > 0 else "loss" if hi < 0 else "tie"
            boundaries = [r["boundary_step"] for r in runs if r["set"] == name and r["arm"] == arm]
            row[f"{arm}_vs_baseline"] = {
                "mean_diff": mean,
                "ci95": [lo, hi],
                "outcome": outcome,
                "seed_wins": int((d > 0).sum()),
                "seed_ties": int((d == 0).sum()),
                "seed_losses": int((d < 0).sum()),
                "boundary_steps": boundaries,
            }
            diffs_by_arm[arm].append(mean)
        per_set.append(row)
    overall = {}
    for arm in ARMS[1:]:
        outcomes = [row[f"{arm}_vs_baseline"]["outcome"] for row in per_set]
        mean, lo, hi = C.t_interval(diffs_by_arm[arm])
        overall[arm] = {
            "wins": outcomes.count("win"),
            "ties": outcomes.count("tie"),
            "losses": outcomes.count("loss"),
            "mean_of_set_diffs": mean,
            "ci95_over_sets": [lo, hi],
        }
    return {"per_set": per_set, "overall": overall}


def header(args: argparse.Namespace, sets: list[str], seeds: list[int], git: dict[str, Any]) -> dict[str, Any]:
    """Machine, versions, date, commit, seeds and the exact configuration (:func:`_common.header`)."""
    return C.header(
        "benchmarks/ucr_hlr.py",
        mode="quick" if args.quick else "full",
        seeds=seeds,
        config=CONFIG,
        git=git,
        versions=("torch", "lightning", "aeon", "numpy", "scipy", "lit-early-phase"),
        sets=sets,
        arms=list(ARMS),
        steps_per_run=args.steps,
        workers=args.workers,
    )


def comparisons(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`_common.holm` over the script's two families, keys ``"over sets|<arm>"`` and ``"<set>|<arm>"``.

    The headline family is each arm's mean of per-set differences over the sets (m = 2, one per arm); the per-set
    comparisons (each arm against the baseline on each set, paired by seed) are a separate family (m = sets x
    arms). The means are made from the per-set differences, so the two are not mixed in one family; each entry's
    ``m`` says which family it belongs to.
    """
    h = result["header"]
    acc = {(r["set"], r["arm"], r["seed"]): r["test_acc"] for r in result["runs"]}
    per_set: dict[str, list[float]] = {}
    for name in h["sets"]:
        for arm in ARMS[1:]:
            per_set[f"{name}|{arm}"] = [acc[(name, arm, s)] - acc[(name, "baseline", s)] for s in h["seeds"]]
    over_sets = {
        f"over sets|{arm}": [float(np.mean(per_set[f"{name}|{arm}"])) for name in h["sets"]] for arm in ARMS[1:]
    }
    return {**C.holm(over_sets), **C.holm(per_set)}


def _outcome(x: dict[str, Any]) -> str:
    return {"+": "win", "-": "loss", "0": "tie"}[C.holm_sign(x)]


def _raw_outcome(x: dict[str, Any]) -> str:
    lo, hi = x["ci95"]
    return "win" if lo > 0 else "loss" if hi < 0 else "tie"


def markdown(result: dict[str, Any]) -> str:
    """The results table (accuracy in %, differences in percentage points, raw and Holm-adjusted intervals)."""
    h = result["header"]
    s = result["summary"]
    load = result["load"]
    holm = comparisons(result)
    means = {k: x for k, x in holm.items() if k.startswith("over sets|")}
    per_set = {k: x for k, x in holm.items() if k not in means}
    lines = [
        f"**UCR/UEA: High-Loss Removal vs baseline ({h['mode']} run, exploratory)**",
        "",
        *(line for line in C.header_markdown(h) if not line.startswith("- Seeds")),
        f"- Load average (1 min) during the run: min {load['min']:.2f}, mean {load['mean']:.2f}, max "
        f"{load['max']:.2f}; accuracy only (no timing is reported).",
        f"- Seeds: {h['seeds']}; {h['steps_per_run']} optimizer steps per run (every arm), batch "
        f"{h['config']['batch_size']}, FCN widths {h['config']['backbone_kwargs']['widths']}, AdamW lr "
        f"{h['config']['lr']} with cosine decay, no validation split, test accuracy after the last step.",
        f"- HLR: {int(100 * h['config']['drop_fraction'])} % of each batch; metric boundary = chance-adjusted "
        f"running train accuracy >= 0.5 (guard 0.2 of the run); fixed = first "
        f"{h['config']['fixed_duration']} of the steps.",
        "",
        "Test accuracy (%), mean ± std over seeds; Δ = arm − baseline in percentage points, paired by seed, "
        f"[raw 95 % t-interval] Holm [interval adjusted by Holm over the m = {len(per_set)} per-set comparisons "
        f"of this run, every set and arm, {C.holm_level_words(per_set)}: a family of its own, apart from the headline "
        "family of the two means over sets below]; W/T/L: resolved after Holm (adjusted p < 0.05) above 0 / not "
        "resolved / resolved below 0. Exploratory comparisons.",
        "",
        "| set | baseline | HLR metric | Δ metric [95 % CI] Holm [CI] | | HLR fixed | Δ fixed [95 % CI] Holm [CI] | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in s["per_set"]:
        cells = [row["set"], f"{C.pct(row['baseline']['mean'], 1)} ± {C.pct(row['baseline']['std'], 1)}"]
        for arm in ARMS[1:]:
            x = holm[f"{row['set']}|{arm}"]
            cells += [
                f"{C.pct(row[arm]['mean'], 1)} ± {C.pct(row[arm]['std'], 1)}",
                C.holm_cell(x, 1),
                _outcome(x)[0].upper(),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    sets = [row["set"] for row in s["per_set"]]

    def counts(outcome: Any, arm: str) -> str:
        found = [outcome(holm[f"{name}|{arm}"]) for name in sets]
        return f"{found.count('win')} / {found.count('tie')} / {found.count('loss')}"

    lines += ["", "| | HLR metric | HLR fixed |", "|---|---|---|"]
    lines.append("| win / tie / loss (sets, after Holm) | " + " | ".join(counts(_outcome, a) for a in ARMS[1:]) + " |")
    lines.append(
        "| raw interval above / containing / below 0 (sets) | "
        + " | ".join(counts(_raw_outcome, a) for a in ARMS[1:])
        + " |"
    )
    lines.append(
        f"| mean of per-set Δ [95 % CI over sets] Holm [CI, headline family: the m = {len(means)} means, "
        f"{C.holm_level_words(means)}] | "
        + " | ".join(
            f"{C.holm_cell(holm[f'over sets|{a}'], 1)} ({C.holm_sign(holm[f'over sets|{a}'])})" for a in ARMS[1:]
        )
        + " |"
    )
    same = []
    for name in sets:
        by_arm = {a: {r["seed"]: r for r in result["runs"] if r["set"] == name and r["arm"] == a} for a in ARMS}
        for (a, b), seeds in C.same_runs(by_arm).items():
            same.append(f"{name}: {b} same runs as {a} in {len(seeds)} of {len(h['seeds'])} seeds")
    lines += [
        "",
        "Same runs (identical test accuracy and boundary step): " + ("; ".join(same) if same else "none") + ".",
    ]
    boundary = []
    for row in s["per_set"]:
        steps = row["hlr_metric_vs_baseline"]["boundary_steps"]
        boundary.append(f"{row['set']} {steps}")
    lines += ["", "Metric boundary (optimizer step where the period ended, per seed): " + "; ".join(boundary) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__, quick="2 sets, 2 seeds, 40 steps (a smoke run)", out="output stem (default results/ucr_hlr[_quick])"
    )
    parser.add_argument("--sets", nargs="+", help="data set names (default: every bundled classification set)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds, 0..n-1 (default 5; quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 300; quick 40)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes, 1 torch thread each")
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / ("ucr_hlr_quick" if args.quick else "ucr_hlr"), markdown)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)

    from lit_early_phase.datamodules import offline_classification_sets

    sets = args.sets or (list(QUICK_SETS) if args.quick else offline_classification_sets())
    seeds = list(range(args.seeds if args.seeds is not None else (2 if args.quick else 5)))
    args.steps = args.steps if args.steps is not None else (40 if args.quick else 300)
    out = args.out or C.RESULTS / ("ucr_hlr_quick" if args.quick else "ucr_hlr")
    result: dict[str, Any] = {"header": header(args, sets, seeds, git)}

    # longest series first, so the slowest runs do not end up alone at the end
    from lit_early_phase.datamodules import UCRDataModule

    size = {n: UCRDataModule(n).max_length * UCRDataModule(n).in_chans for n in sets}
    tasks = [(n, arm, seed) for n in sorted(sets, key=lambda n: -size[n]) for seed in seeds for arm in ARMS]
    runs: list[dict[str, Any]] = []
    start = time.monotonic()
    sampler = C.LoadSampler()
    sampler.start()
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, initializer=_worker_init) as pool:
        futures = {pool.submit(run_one, n, arm, seed, args.steps): (n, arm, seed) for n, arm, seed in tasks}
        for i, future in enumerate(as_completed(futures), 1):
            run = future.result()
            runs.append(run)
            print(
                f"[{i}/{len(tasks)} {time.monotonic() - start:6.0f}s] {run['set']:<22} {run['arm']:<10} "
                f"seed {run['seed']}: test acc {run['test_acc']:.4f} boundary {run['boundary_step']}",
                flush=True,
            )
    runs.sort(key=lambda r: (r["set"], ARMS.index(r["arm"]), r["seed"]))
    result["runs"] = runs
    result["summary"] = summarise(runs, sets, seeds)
    result["load"] = sampler.stop()
    result["wall_s"] = round(time.monotonic() - start, 1)
    table = markdown(result)
    C.write_results(out, result, table)
    print(table)
    return result


if __name__ == "__main__":
    main()
