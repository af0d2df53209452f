"""Does the enlightenment period pay off here? Mixup Pause / Alpha Boost vs always-Mixup on Fashion-MNIST.

A small-scale test of the paper's claims (METHOD.md): Mixup Pause gains +0.10 pp (CIFAR-10) to +1.57 pp, turns
negative when the pause is too long, and the interference it avoids shrinks as the data set grows. Six arms, the
same model, data, optimizer, schedule and number of optimizer steps, paired by seed (a seed fixes the initial
weights, the batch order and the mixing draws, so two arms of one seed differ only by what the arm changes):

* ``none``: no Mixup, no callback;
* ``mixup``: Mixup (α = ``ALPHA``) from the first step, no callback - the reference of every difference;
* ``pause_metric``: ``EnlightenmentCallback(strategy=MixupPause())`` with its defaults (running training accuracy
  >= 0.5, checked every 10 steps over 20 batches, at most 0.2 of the run);
* ``pause_short``: the same pause for a fixed ``0.05dur`` (the first 5 % of the steps);
* ``pause_long``: the same pause for a fixed ``0.5dur`` (half the run: overlong on purpose);
* ``alpha_boost``: ``EnlightenmentCallback(strategy=AlphaBoost(alpha=1.0))``, metric boundary, base α after.

Each training-set size is a nested subset of the 60,000 training images (the first n of one fixed permutation);
every size gets the same number of optimizer steps, so small sets see many epochs. Reported: test accuracy on the
official 10,000 test images after the last step (no validation split, no model selection), mean ± std over seeds,
the paired difference to ``mixup`` with a 95 % t-interval, and where the period ended.

Runs are appended to ``<out>_runs.jsonl`` as they finish; running the same command again continues an
interrupted sweep (runs of another configuration in that file are kept but ignored).

    python benchmarks/effect.py                      # full sweep (~90 min on 2 cores) -> results/effect.*
    python benchmarks/effect.py --quick              # smoke run, ~1 min -> results/effect_quick.*
    python benchmarks/effect.py --sizes 2000 --seeds 3 --arms mixup pause_metric --out /tmp/e
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import _comparisons as K

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
    "src/lit_early_phase/datamodules/vision/fashion_mnist.py",
    "src/lit_early_phase/datamodules/vision/images.py",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/effect.py",
)

ARMS = ("none", "mixup", "pause_metric", "pause_short", "pause_long", "alpha_boost")
REFERENCE = "mixup"
CALLBACK_ARMS = ("pause_metric", "pause_short", "pause_long", "alpha_boost")
LABELS = {
    "none": "no Mixup",
    "mixup": "always Mixup",
    "pause_metric": "Mixup Pause (metric)",
    "pause_short": "Mixup Pause (0.05dur)",
    "pause_long": "Mixup Pause (0.5dur)",
    "alpha_boost": "Alpha Boost",
}
FULL = {"sizes": [2000, 8000, 32000], "seeds": 5, "steps": 1000, "batch_size": 128, "test_limit": None}
QUICK = {"sizes": [1000], "seeds": 2, "steps": 30, "batch_size": 64, "test_limit": 1000}
QUICK_ARMS = ("none", "mixup", "pause_metric")
CONFIG: dict[str, Any] = {
    "data": "Fashion-MNIST (Debian dataset-fashion-mnist), no validation split, nested training subsets "
    "(split_seed 0), official 10,000 test images",
    "backbone": "test_resnet",
    "augment": False,
    "optimizer": "AdamW(lr=3e-3, weight_decay=0.05)",
    "lr": 3e-3,
    "weight_decay": 0.05,
    "schedule": "cosine over the run, stepped per optimizer step",
    "mixup_alpha": 0.4,
    "cutmix_alpha": 0.0,
    "label_smoothing": 0.0,
    "alpha_boost": 1.0,
    "callback": "EnlightenmentCallback defaults: threshold 0.5 on the running training accuracy, window 20, "
    "check every 10 steps, max_duration 0.2dur",
    "pause_short": "0.05dur",
    "pause_long": "0.5dur",
    "torch_threads_per_run": 1,
}
_ARRAYS: dict[str, Any] = {}


# ------------------------------------------------------------------------------------------------------------
# one run (in a worker process, or inline)
def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    C.quiet()


def _datamodule(size: int, batch_size: int, test_limit: int | None, augment: bool) -> Any:
    """Fashion-MNIST with the arrays read once per process and, in quick mode, a shorter test split."""
    from torch.utils.data import Subset

    from lit_early_phase.datamodules import FashionMNISTDataModule

    class CachedFashionMNIST(FashionMNISTDataModule):
        def load_arrays(self):  # type: ignore[override]
            if "arrays" not in _ARRAYS:
                _ARRAYS["arrays"] = super().load_arrays()
            return _ARRAYS["arrays"]

        def setup(self, stage: str | None = None) -> None:
            super().setup(stage)
            if test_limit is not None and not isinstance(self.test_set, Subset):
                self.test_set = Subset(self.test_set, range(min(test_limit, len(self.test_set))))

    dm = CachedFashionMNIST(batch_size=batch_size, val_size=0, train_subset=size, augment=augment, num_workers=0)
    dm.setup("fit")
    if len(dm.train_set) != size:
        raise ValueError(f"asked for {size} training images, Fashion-MNIST has {len(dm.train_set)} available.")
    return dm


def _callback(arm: str) -> Any:
    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import AlphaBoost, MixupPause

    if arm in ("none", "mixup"):
        return None
    if arm == "pause_metric":
        return EnlightenmentCallback(strategy=MixupPause(), verbose=False)
    if arm == "pause_short":
        return EnlightenmentCallback(strategy=MixupPause(), duration=CONFIG["pause_short"], verbose=False)
    if arm == "pause_long":
        return EnlightenmentCallback(strategy=MixupPause(), duration=CONFIG["pause_long"], verbose=False)
    if arm == "alpha_boost":
        return EnlightenmentCallback(strategy=AlphaBoost(alpha=CONFIG["alpha_boost"]), verbose=False)
    raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")


def _ended_by(reason: str) -> str | None:
    if not reason:
        return None
    if reason.startswith("fixed duration"):
        return "duration"
    if reason.startswith("max_duration"):
        return "max_duration"
    return "metric"


def run_one(size: int, arm: str, seed: int, run: dict[str, Any]) -> dict[str, Any]:
    """Train one (size, arm, seed) for ``run['steps']`` optimizer steps; return test accuracy and the boundary."""
    import lightning as L
    import torch

    from lit_early_phase import ImageClassifier

    C.quiet()
    started = C.utc_now()
    t0 = time.perf_counter()
    steps = run["steps"]
    dm = _datamodule(size, run["batch_size"], run["test_limit"], CONFIG["augment"])
    L.seed_everything(seed, verbose=False)
    model = ImageClassifier(
        CONFIG["backbone"],
        num_classes=10,
        in_chans=1,
        mixup_alpha=0.0 if arm == "none" else CONFIG["mixup_alpha"],
        cutmix_alpha=CONFIG["cutmix_alpha"],
        label_smoothing=CONFIG["label_smoothing"],
        optimizer=lambda params: torch.optim.AdamW(params, lr=CONFIG["lr"], weight_decay=CONFIG["weight_decay"]),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
        lr_interval="step",
    )
    cb = _callback(arm)
    trainer = C.quiet_trainer(
        steps=steps,
        callbacks=[cb] if cb is not None else [],
        accelerator=run["accelerator"],
        devices=1,
        limit_val_batches=0,
    )
    t_fit = time.perf_counter()
    trainer.fit(model, dm)
    fit_s = time.perf_counter() - t_fit
    train_acc = trainer.callback_metrics.get("train/acc_epoch")
    test = trainer.test(model, dm, verbose=False)[0]
    return {
        "size": size,
        "arm": arm,
        "seed": seed,
        "test_acc": float(test["test/acc"]),
        "test_loss": float(test["test/loss"]),
        "last_epoch_train_acc": None if train_acc is None else float(train_acc),
        "steps": int(trainer.global_step),
        "epochs": round(int(trainer.global_step) * run["batch_size"] / size, 2),
        "boundary_step": None if cb is None else cb.boundary_step,
        "boundary_epoch": None if cb is None else cb.boundary_epoch,
        "boundary_fraction": None if cb is None or cb.boundary_step is None else cb.boundary_step / steps,
        "ended_by": None if cb is None else _ended_by(cb.reason),
        "reason": None if cb is None else cb.reason,
        "running_acc_at_last_check": None if cb is None else cb.last_value,
        "fit_s": round(fit_s, 2),
        "step_ms": round(1000 * fit_s / max(1, trainer.global_step), 2),
        "run_s": round(time.perf_counter() - t0, 2),
        "started_utc": started,
        "finished_utc": C.utc_now(),
        "pid": os.getpid(),
    }


# ------------------------------------------------------------------------------------------------------------
# summary
def summarise(runs: list[dict[str, Any]], sizes: list[int], arms: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per size: mean ± std per arm, paired differences to ``mixup``, boundary statistics."""
    by = {(r["size"], r["arm"], r["seed"]): r for r in runs}
    out = []
    for size in sizes:
        row: dict[str, Any] = {"size": size, "arms": {}, "vs_" + REFERENCE: {}, "boundary": {}}
        for arm in arms:
            accs = [by[(size, arm, s)]["test_acc"] for s in seeds if (size, arm, s) in by]
            mean, std = C.mean_std(accs)
            row["arms"][arm] = {"n": len(accs), "mean": mean, "std": std, "values": accs}
        if REFERENCE in arms:
            for arm in arms:
                if arm == REFERENCE:
                    continue
                paired = [s for s in seeds if (size, arm, s) in by and (size, REFERENCE, s) in by]
                row["vs_" + REFERENCE][arm] = C.paired_difference(
                    [by[(size, arm, s)]["test_acc"] for s in paired],
                    [by[(size, REFERENCE, s)]["test_acc"] for s in paired],
                ) | {"seeds": paired}
        for arm in arms:
            if arm not in CALLBACK_ARMS:
                continue
            rs = [by[(size, arm, s)] for s in seeds if (size, arm, s) in by]
            all_steps = [r["boundary_step"] for r in rs]
            steps = [s for s in all_steps if s is not None]
            ended: dict[str, int] = {}
            for r in rs:
                key = r["ended_by"] or "never"
                ended[key] = ended.get(key, 0) + 1
            row["boundary"][arm] = {
                "steps": [r["boundary_step"] for r in rs],
                "epochs": [r["boundary_epoch"] for r in rs],
                "median_step": float(np.median(steps)) if steps else None,
                "min_step": min(steps) if steps else None,
                "max_step": max(steps) if steps else None,
                "median_fraction": float(np.median([s / r["steps"] for r, s in zip(rs, all_steps, strict=True) if s]))
                if steps
                else None,
                "median_epochs_seen": float(np.median([s * rs[0]["epochs"] / rs[0]["steps"] for s in steps]))
                if steps
                else None,
                "ended_by": ended,
            }
        out.append(row)
    return {"per_size": out}


def cost(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall-clock cost of the sweep, from the runs' own timestamps."""
    if not runs:
        return {}

    def parse(s: str) -> dt.datetime:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")

    first = min(parse(r["started_utc"]) for r in runs)
    last = max(parse(r["finished_utc"]) for r in runs)
    return {
        "runs": len(runs),
        "span_s": (last - first).total_seconds(),
        "sum_run_s": round(sum(r["run_s"] for r in runs), 1),
        "mean_run_s": round(float(np.mean([r["run_s"] for r in runs])), 1),
        "mean_step_ms": round(float(np.mean([r["step_ms"] for r in runs])), 1),
        "first_started_utc": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_finished_utc": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _cell(a: dict[str, Any]) -> str:
    return f"{C.pct(a['mean'])} ± {C.pct(a['std'])}" if a["n"] else "-"


def difference_table(
    per_size: list[dict[str, Any]],
    others: list[str],
    labels: dict[str, str],
    reference: str,
    runs: list[dict[str, Any]],
    n_seeds: int,
) -> list[str]:
    """The Markdown lines of the paired-difference table (raw and Holm intervals, same runs); also vit_period."""
    return K.difference_lines(per_size, others, labels, reference, runs, n_seeds, label="exploratory")


def markdown(result: dict[str, Any]) -> str:
    """The tables: accuracy per arm and size, differences to always-Mixup, boundaries, cost."""
    h, s, run = result["header"], result["summary"], result["header"]["run"]
    arms = h["arms"]
    per_size = s["per_size"]
    n_seeds = len(h["seeds"])
    epochs = {row["size"]: round(run["steps"] * run["batch_size"] / row["size"], 1) for row in per_size}
    lines = [
        f"# Effect: Mixup Pause and Alpha Boost vs always-Mixup on Fashion-MNIST ({h['mode']} run, exploratory)",
        "",
        *C.header_markdown(h),
        f"- Model timm `{CONFIG['backbone']}` (0.37 M parameters), batch {run['batch_size']}, "
        f"{CONFIG['optimizer']} with cosine decay per step, {run['steps']} optimizer steps per run for every size "
        f"and arm, {'random crop + flip' if CONFIG['augment'] else 'no augmentation'}, Mixup α "
        f"{CONFIG['mixup_alpha']} (CutMix off), Alpha Boost α {CONFIG['alpha_boost']} in the period, "
        f"{CONFIG['torch_threads_per_run']} torch thread(s) per run, "
        + (f"{h['workers']} runs in parallel." if h["workers"] else "runs one after another in one process."),
        f"- Test accuracy on {'the official 10,000' if run['test_limit'] is None else run['test_limit']} test "
        "images after the last step; no validation split, no model selection. Training sets are nested subsets "
        "of the 60,000 training images.",
        "",
        f"Test accuracy (%), mean ± std over {n_seeds} seeds:",
        "",
        "| train images | epochs | " + " | ".join(LABELS[a] for a in arms) + " |",
        "|---:|---:|" + "---:|" * len(arms),
    ]
    for row in per_size:
        lines.append(
            f"| {row['size']:,} | {epochs[row['size']]} | " + " | ".join(_cell(row["arms"][a]) for a in arms) + " |"
        )
    others = [a for a in arms if a != REFERENCE]
    if REFERENCE in arms and others:
        lines += difference_table(per_size, others, LABELS, REFERENCE, result["runs"], n_seeds)
    cb_arms = [a for a in arms if a in CALLBACK_ARMS]
    if cb_arms:
        lines += [
            "",
            "Where the enlightenment period ended: optimizer step, median [min-max] over seeds, its share of the "
            "run and the epochs of data seen by then; what ended it (metric = running accuracy reached 0.5, "
            "max_duration = the 0.2dur guard, duration = the fixed length).",
            "",
            "| train images | arm | boundary step | share of run | epochs seen | ended by |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for row in per_size:
            for a in cb_arms:
                b = row["boundary"][a]
                if b["median_step"] is None:
                    lines.append(f"| {row['size']:,} | {LABELS[a]} | never | - | - | {b['ended_by']} |")
                    continue
                ended = ", ".join(f"{k} {v}" for k, v in sorted(b["ended_by"].items()))
                lines.append(
                    f"| {row['size']:,} | {LABELS[a]} | {b['median_step']:.0f} [{b['min_step']}-{b['max_step']}] | "
                    f"{100 * b['median_fraction']:.1f} % | {b['median_epochs_seen']:.2f} | {ended} |"
                )
    if REFERENCE in arms and "pause_metric" in arms:
        holm = K.result_holm(result)
        lines += [
            "",
            "Measured sign of Mixup Pause (metric boundary) against always-Mixup (raw 95 % interval; Holm-adjusted "
            "interval over this sweep's comparisons, which decides):",
            "",
        ]
        for row in per_size:
            x = holm[(row["size"], "pause_metric")]
            verdict = {
                "+": "better (resolved after Holm, above 0)",
                "-": "worse (resolved after Holm, below 0)",
                "0": "no difference resolved after Holm",
            }[C.holm_sign(x)]
            lines.append(f"- {row['size']:,} images: {C.holm_cell(x)} pp, {verdict}.")
    c = result["cost"]
    if c:
        lines += [
            "",
            f"Cost: {c['runs']} runs, {c['span_s'] / 60:.1f} min of wall time from the first start to the last end "
            "(including any pause between an interrupted sweep and its resumption) "
            f"({c['sum_run_s'] / 60:.1f} min summed over runs, {c['mean_run_s']:.0f} s per run including the test, "
            f"{c['mean_step_ms']:.0f} ms per optimizer step). The machine may have been shared: accuracy does not "
            "depend on timing, the cost does.",
        ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy vs training-set size per arm (± std) and the paired difference to always-Mixup (95 % CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, per_size = result["header"], result["summary"]["per_size"]
    arms = h["arms"]
    sizes = np.array([row["size"] for row in per_size], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    offsets = np.linspace(-0.06, 0.06, len(arms))
    for k, arm in enumerate(arms):
        mean = np.array([row["arms"][arm]["mean"] for row in per_size]) * 100
        std = np.array([row["arms"][arm]["std"] for row in per_size]) * 100
        axes[0].errorbar(
            sizes * 10 ** offsets[k], mean, yerr=std, marker="o", capsize=3, color=f"C{k}", label=LABELS[arm]
        )
    axes[0].set(xscale="log", xlabel="training images", ylabel="test accuracy (%)", title="mean ± std over seeds")
    axes[0].set_xticks(sizes, [f"{int(s):,}" for s in sizes])
    axes[0].minorticks_off()
    axes[0].legend(fontsize=8)
    if REFERENCE in arms:
        others = [a for a in arms if a != REFERENCE]
        for k, arm in enumerate(arms):
            if arm == REFERENCE:
                continue
            d = [row["vs_" + REFERENCE][arm] for row in per_size]
            mean = np.array([x["mean_diff"] for x in d]) * 100
            lo = np.array([x["ci95"][0] for x in d]) * 100
            hi = np.array([x["ci95"][1] for x in d]) * 100
            yerr = np.nan_to_num(np.vstack([mean - lo, hi - mean]))
            axes[1].errorbar(
                sizes * 10 ** offsets[k], mean, yerr=yerr, marker="o", capsize=3, color=f"C{k}", label=LABELS[arm]
            )
        axes[1].axhline(0, color="grey", lw=1)
        axes[1].set(
            xscale="log",
            xlabel="training images",
            ylabel=f"Δ vs {LABELS[REFERENCE]} (pp)",
            title="paired difference, 95 % t-interval",
        )
        axes[1].set_xticks(sizes, [f"{int(s):,}" for s in sizes])
        axes[1].minorticks_off()
        if others:
            axes[1].legend(fontsize=8)
    tag = " (quick mode: not a result)" if h["mode"] == "quick" else ""
    fig.suptitle(f"Fashion-MNIST, timm test_resnet, {h['run']['steps']} steps per run, {len(h['seeds'])} seeds{tag}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------
def run_tasks(fn: Any, todo: list[tuple], run: dict[str, Any], *, workers: int, threads: int, record: Any) -> None:
    """``fn(*task, run)`` for every task, inline (``workers == 0``) or in spawned processes; ``record(i, result)``
    as each finishes (also vit_period)."""
    if workers == 0:
        _worker_init(threads)
        for i, task in enumerate(todo, 1):
            record(i, fn(*task, run))
    elif todo:
        context = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = [pool.submit(fn, *task, run) for task in todo]
            for i, future in enumerate(as_completed(futures), 1):
                record(i, future.result())


def config_id(run: dict[str, Any], code_id: str | None) -> str:
    """Hash of everything that changes a run's result: settings and code (not the sizes/arms/seeds chosen).

    ``code_id`` (:func:`_common.git_state`) hashes the package, scripts and recipes as they are on disk, so after
    any change to the code the same command trains again instead of reusing runs of the old code.
    """
    text = json.dumps({"config": CONFIG, "run": run, "code_id": code_id}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_runs(path: Path, cid: str) -> list[dict[str, Any]]:
    """Finished runs of configuration ``cid`` from the JSONL log (other configurations are skipped)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("config_id") == cid:
                runs.append(record)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="smoke run: 1 size, 2 seeds, 3 arms, 30 steps",
        out="output stem (default results/effect, quick results/effect_quick)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", help=f"training-set sizes (default {FULL['sizes']})")
    parser.add_argument("--seeds", type=int, help=f"number of seeds 0..n-1 (default {FULL['seeds']}, quick 2)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, help="arms to run (default all; quick: 3)")
    parser.add_argument("--steps", type=int, help=f"optimizer steps per run (default {FULL['steps']}, quick 30)")
    parser.add_argument("--batch-size", type=int, help="batch size (default 128, quick 64)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first n test images (quick: 1000)")
    parser.add_argument("--workers", type=int, help="parallel processes (default 2; 0 = in this process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator for the runs (default cpu)")
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / ("effect_quick" if args.quick else "effect"), markdown)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)

    preset = QUICK if args.quick else FULL
    sizes = args.sizes or preset["sizes"]
    seeds = list(range(args.seeds if args.seeds is not None else preset["seeds"]))
    arms = [a for a in ARMS if a in (args.arms or (QUICK_ARMS if args.quick else ARMS))]
    workers = args.workers if args.workers is not None else (0 if args.quick else 2)
    run = {
        "steps": args.steps or preset["steps"],
        "batch_size": args.batch_size or preset["batch_size"],
        "test_limit": args.test_limit if args.test_limit is not None else preset["test_limit"],
        "accelerator": args.accelerator,
    }
    CONFIG["torch_threads_per_run"] = args.threads
    cid = config_id(run, git["code_id"])
    out = args.out or C.RESULTS / ("effect_quick" if args.quick else "effect")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}_runs.jsonl"

    done = {(r["size"], r["arm"], r["seed"]) for r in load_runs(log_path, cid)}
    # seed-major order: an interrupted sweep has every arm at the same seeds; big sizes first within a seed
    todo = [
        (size, arm, seed)
        for seed in seeds
        for size in sorted(sizes, reverse=True)
        for arm in arms
        if (size, arm, seed) not in done
    ]
    print(
        f"effect: {len(sizes)} sizes x {len(arms)} arms x {len(seeds)} seeds, {run['steps']} steps per run; "
        f"{len(done & {(z, a, s) for z in sizes for a in arms for s in seeds})} done, {len(todo)} to run "
        f"({'inline' if workers == 0 else f'{workers} processes'}); log {log_path}",
        flush=True,
    )
    started = time.monotonic()

    def record(i: int, r: dict[str, Any]) -> None:
        r["config_id"] = cid
        r["git"] = {k: git[k] for k in ("commit", "code_dirty", "code_id")}
        with log_path.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(
            f"[{i}/{len(todo)} {time.monotonic() - started:6.0f}s] size {r['size']:>6} {r['arm']:<12} seed "
            f"{r['seed']}: test acc {r['test_acc']:.4f}, boundary {r['boundary_step']} ({r['ended_by']}), "
            f"{r['run_s']:.0f}s",
            flush=True,
        )

    run_tasks(run_one, todo, run, workers=workers, threads=args.threads, record=record)

    wanted = {(z, a, s) for z in sizes for a in arms for s in seeds}
    runs = sorted(
        (r for r in load_runs(log_path, cid) if (r["size"], r["arm"], r["seed"]) in wanted),
        key=lambda r: (r["size"], ARMS.index(r["arm"]), r["seed"]),
    )
    # keep the last record of a (size, arm, seed) if a run was logged twice
    runs = list({(r["size"], r["arm"], r["seed"]): r for r in runs}.values())
    result: dict[str, Any] = {
        "header": C.header(
            "benchmarks/effect.py",
            mode="quick" if args.quick else "full",
            seeds=seeds,
            config=CONFIG,
            git=git,
            sizes=sizes,
            arms=arms,
            reference=REFERENCE,
            run=run,
            config_id=cid,
            workers=workers,
            runs_log=str(log_path.relative_to(C.ROOT)) if log_path.is_relative_to(C.ROOT) else str(log_path),
            wall_s_this_invocation=round(time.monotonic() - started, 1),
        ),
        "summary": summarise(runs, sizes, arms, seeds),
        "cost": cost(runs),
        "runs": runs,
    }
    table = markdown(result)
    C.write_results(out, result, table)
    plot(result, out.with_suffix(".png"))
    print(table)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
