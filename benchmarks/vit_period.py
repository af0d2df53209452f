"""A long enlightenment period: a small ViT from scratch on Fashion-MNIST, Mixup Pause of several lengths.

The effect benchmark (``effect.py``, timm ``test_resnet``) ended the period at step 20 of 1000 (2 %), too early
for anything to matter. A ViT trained from scratch learns much more slowly at first, the regime of the paper's
largest gain (ViT-S on Tiny-ImageNet, +1.57 pp with a 10-epoch pause, -0.69 pp at 25 epochs). Arms, the same model,
data, optimizer, schedule and number of optimizer steps, paired by seed:

* ``mixup``: Mixup (α = ``ALPHA``) from the first step, no pause - the reference;
* ``pause_metric``: ``EnlightenmentCallback(strategy=MixupPause())`` with its defaults (running training accuracy
  >= 0.5, checked every 10 steps over 20 batches, at most 0.2 of the run);
* ``pause_1`` ... ``pause_20``: the same pause for a fixed 1, 2, 5, 10, 20 % of the run.

``EnlightenmentDiagnostics`` (every ``DIAG_EVERY`` steps, a 64-image probe) runs in the ``mixup`` and
``pause_metric`` arms, so the table also shows how the gradient-interference ratio and the dead-activation
fraction move with the training-set size (paper: interference shrinks as data grows; Mixup keeps fewer units
dead). Test accuracy on the official 10,000 test images after the last step; paired differences to ``mixup``
with 95 % t-intervals. Runs are appended to ``<out>_runs.jsonl``; the same command continues an interrupted sweep.

    python benchmarks/vit_period.py                 # full sweep (~80 min on 2 cores) -> results/vit_period.*
    python benchmarks/vit_period.py --quick         # smoke run, ~1 min -> results/vit_period_quick.*
    python benchmarks/vit_period.py --confirmatory  # the pre-registered run (vit_confirmatory.py)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import effect as E  # the same data, worker set-up, run log and cost accounting

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
    "benchmarks/vit_period.py",
    "benchmarks/effect.py",
)

PAUSES = {"pause_1": 0.01, "pause_2": 0.02, "pause_5": 0.05, "pause_10": 0.10, "pause_20": 0.20}
ARMS = ("mixup", "pause_metric", *PAUSES)
REFERENCE = "mixup"
DIAG_ARMS = ("mixup", "pause_metric")
LABELS = {"mixup": "always Mixup", "pause_metric": "Mixup Pause (metric)"} | {
    a: f"Pause {round(100 * f)} %" for a, f in PAUSES.items()
}
FULL = {"sizes": [2000, 32000], "seeds": 5, "steps": 600, "batch_size": 128, "test_limit": None}
QUICK = {"sizes": [1000], "seeds": 2, "steps": 30, "batch_size": 64, "test_limit": 500}
QUICK_ARMS = ("mixup", "pause_metric", "pause_10")
DIAG_EVERY = 25
VIT = {"img_size": 28, "patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 4}
CONFIG: dict[str, Any] = {
    "data": E.CONFIG["data"],
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": VIT,
    "augment": False,
    "optimizer": "AdamW(lr=1e-3, weight_decay=0.05)",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "schedule": "cosine over the run, stepped per optimizer step",
    "mixup_alpha": 0.4,
    "callback": E.CONFIG["callback"],
    "pauses": PAUSES,
    "diagnostics": f"EnlightenmentDiagnostics(every_n_steps={DIAG_EVERY}, probe_size=64) in {list(DIAG_ARMS)}",
    "torch_threads_per_run": 1,
}


def _callbacks(arm: str) -> tuple[Any, Any]:
    from lit_early_phase import EnlightenmentCallback, EnlightenmentDiagnostics
    from lit_early_phase.strategies import MixupPause

    diag = EnlightenmentDiagnostics(every_n_steps=DIAG_EVERY, probe_size=64) if arm in DIAG_ARMS else None
    if arm == "mixup":
        return None, diag
    if arm == "pause_metric":
        return EnlightenmentCallback(strategy=MixupPause(), verbose=False), diag
    if arm in PAUSES:
        return EnlightenmentCallback(strategy=MixupPause(), duration=f"{PAUSES[arm]}dur", verbose=False), diag
    raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")


def run_one(size: int, arm: str, seed: int, run: dict[str, Any]) -> dict[str, Any]:
    """Train one (size, arm, seed); return test accuracy, the boundary and the diagnostics' history."""
    cb, diag = _callbacks(arm)
    return {"size": size, "arm": arm, "seed": seed} | train(size, seed, run, CONFIG["mixup_alpha"], cb, diag)


def train(size: int, seed: int, run: dict[str, Any], mixup_alpha: float, cb: Any, diag: Any) -> dict[str, Any]:
    """Train the small ViT on ``size`` images with seed ``seed`` for ``run['steps']`` steps, Mixup α
    ``mixup_alpha`` (0: none), callback ``cb`` and diagnostics ``diag`` (either ``None``); test it (also the
    confirmatory run, ``vit_confirmatory.py``)."""
    import lightning as L
    import torch

    from lit_early_phase import ImageClassifier

    C.quiet()
    started = C.utc_now()
    t0 = time.perf_counter()
    steps = run["steps"]
    dm = E._datamodule(size, run["batch_size"], run["test_limit"], CONFIG["augment"])
    L.seed_everything(seed, verbose=False)
    model = ImageClassifier(
        CONFIG["backbone"],
        num_classes=10,
        in_chans=1,
        mixup_alpha=mixup_alpha,
        backbone_kwargs=dict(VIT),
        optimizer=lambda params: torch.optim.AdamW(params, lr=CONFIG["lr"], weight_decay=CONFIG["weight_decay"]),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
        lr_interval="step",
    )
    trainer = C.quiet_trainer(
        steps=steps,
        callbacks=[c for c in (cb, diag) if c is not None],
        accelerator=run["accelerator"],
        devices=1,
        limit_val_batches=0,
    )
    t_fit = time.perf_counter()
    trainer.fit(model, dm)
    fit_s = time.perf_counter() - t_fit
    test = trainer.test(model, dm, verbose=False)[0]
    return {
        "test_acc": float(test["test/acc"]),
        "test_loss": float(test["test/loss"]),
        "steps": int(trainer.global_step),
        "epochs": round(int(trainer.global_step) * run["batch_size"] / size, 2),
        "boundary_step": None if cb is None else cb.boundary_step,
        "boundary_fraction": None if cb is None or cb.boundary_step is None else cb.boundary_step / steps,
        "ended_by": None if cb is None else E._ended_by(cb.reason),
        "diagnostics": None if diag is None else diag.history,
        "fit_s": round(fit_s, 2),
        "step_ms": round(1000 * fit_s / max(1, trainer.global_step), 2),
        "run_s": round(time.perf_counter() - t0, 2),
        "started_utc": started,
        "finished_utc": C.utc_now(),
        "pid": os.getpid(),
    }


# ------------------------------------------------------------------------------------------------------------
def _diag_mean(runs: list[dict[str, Any]], key: str, lo: float, hi: float) -> tuple[float, float]:
    """Mean ± std over runs of each run's mean of ``key`` over the checks at steps in ``[lo, hi]``."""
    per_run = []
    for r in runs:
        vals = [h[key] for h in r["diagnostics"] or [] if key in h and lo <= h["step"] <= hi and np.isfinite(h[key])]
        if vals:
            per_run.append(float(np.mean(vals)))
    return C.mean_std(per_run) if per_run else (float("nan"), float("nan"))


def summarise(runs: list[dict[str, Any]], sizes: list[int], arms: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per size: accuracy per arm, paired differences to ``mixup``, boundaries, diagnostics in/after the period."""
    by = {(r["size"], r["arm"], r["seed"]): r for r in runs}
    out = []
    for size in sizes:
        row: dict[str, Any] = {"size": size, "arms": {}, "vs_" + REFERENCE: {}, "boundary": {}, "diagnostics": {}}
        for arm in arms:
            accs = [by[(size, arm, s)]["test_acc"] for s in seeds if (size, arm, s) in by]
            mean, std = C.mean_std(accs)
            row["arms"][arm] = {"n": len(accs), "mean": mean, "std": std, "values": accs}
            rs = [by[(size, arm, s)] for s in seeds if (size, arm, s) in by]
            if arm != REFERENCE:
                paired = [s for s in seeds if (size, arm, s) in by and (size, REFERENCE, s) in by]
                row["vs_" + REFERENCE][arm] = C.paired_difference(
                    [by[(size, arm, s)]["test_acc"] for s in paired],
                    [by[(size, REFERENCE, s)]["test_acc"] for s in paired],
                ) | {"seeds": paired}
                steps = [r["boundary_step"] for r in rs if r["boundary_step"] is not None]
                ended: dict[str, int] = {}
                for r in rs:
                    ended[r["ended_by"] or "never"] = ended.get(r["ended_by"] or "never", 0) + 1
                row["boundary"][arm] = {
                    "steps": [r["boundary_step"] for r in rs],
                    "median_step": float(np.median(steps)) if steps else None,
                    "min_step": min(steps) if steps else None,
                    "max_step": max(steps) if steps else None,
                    "ended_by": ended,
                }
            if arm in DIAG_ARMS and rs:
                total = rs[0]["steps"]
                row["diagnostics"][arm] = {
                    f"{key}_{part}": _diag_mean(rs, f"diagnostics/{key}", lo, hi)
                    for key in ("interference", "dead_fraction", "benr", "atd")
                    for part, (lo, hi) in {"early": (0, 0.2 * total), "late": (0.2 * total + 1, total)}.items()
                }
        out.append(row)
    return {"per_size": out}


def _pm(ms: tuple[float, float], digits: int = 3) -> str:
    return "-" if not np.isfinite(ms[0]) else f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """Accuracy per arm and size, differences to always-Mixup, boundaries, diagnostics, cost."""
    h, per_size, run = result["header"], result["summary"]["per_size"], result["header"]["run"]
    arms = h["arms"]
    lines = [
        "# A long period: Mixup Pause of several lengths vs always-Mixup, small ViT on Fashion-MNIST "
        f"({h['mode']} run, exploratory)",
        "",
        *C.header_markdown(h),
        f"- Model timm `{CONFIG['backbone']}` with {VIT} (0.21 M parameters), from scratch, batch "
        f"{run['batch_size']}, {CONFIG['optimizer']} with cosine decay per step, {run['steps']} optimizer steps per "
        f"run for every size and arm, no augmentation, Mixup α {CONFIG['mixup_alpha']}, "
        f"{CONFIG['torch_threads_per_run']} torch thread(s) per run, "
        + (f"{h['workers']} runs in parallel." if h["workers"] else "runs one after another in one process."),
        f"- Test accuracy on {'the official 10,000' if run['test_limit'] is None else run['test_limit']} test "
        "images after the last step; no validation split, no model selection. Diagnostics: "
        f"{CONFIG['diagnostics']}.",
        "",
        f"Test accuracy (%), mean ± std over {len(h['seeds'])} seeds:",
        "",
        "| train images | epochs | " + " | ".join(LABELS[a] for a in arms) + " |",
        "|---:|---:|" + "---:|" * len(arms),
    ]
    for row in per_size:
        epochs = round(run["steps"] * run["batch_size"] / row["size"], 1)
        cells = [E._cell(row["arms"][a]) for a in arms]
        lines.append(f"| {row['size']:,} | {epochs} | " + " | ".join(cells) + " |")
    others = [a for a in arms if a != REFERENCE]
    lines += E.difference_table(per_size, others, LABELS, REFERENCE, result["runs"], len(h["seeds"]))
    lines += [
        "",
        "Where the period ended: optimizer step, median [min-max] over seeds, share of the run, what ended it "
        "(metric = running accuracy reached 0.5, max_duration = the 0.2dur guard, duration = the fixed length).",
        "",
        "| train images | arm | boundary step | share of run | ended by |",
        "|---:|---|---:|---:|---|",
    ]
    for row in per_size:
        for a in others:
            b = row["boundary"][a]
            ended = ", ".join(f"{k} {v}" for k, v in sorted(b["ended_by"].items()))
            if b["median_step"] is None:
                lines.append(f"| {row['size']:,} | {LABELS[a]} | never | - | {ended} |")
                continue
            lines.append(
                f"| {row['size']:,} | {LABELS[a]} | {b['median_step']:.0f} [{b['min_step']}-{b['max_step']}] | "
                f"{100 * b['median_step'] / run['steps']:.1f} % | {ended} |"
            )
    lines += [
        "",
        "Diagnostics on the probe batch (docs/diagnostics.md), mean over the checks in the first 20 % of the run "
        "(early) and after it (late), then mean ± std over seeds:",
        "",
        "| train images | arm | interference early | interference late | dead fraction early | dead fraction late "
        "| BENR early | BENR late |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in per_size:
        for a in (x for x in DIAG_ARMS if x in row["diagnostics"]):
            d = row["diagnostics"][a]
            lines.append(
                f"| {row['size']:,} | {LABELS[a]} | {_pm(d['interference_early'])} | {_pm(d['interference_late'])} | "
                f"{_pm(d['dead_fraction_early'])} | {_pm(d['dead_fraction_late'])} | {_pm(d['benr_early'], 2)} | "
                f"{_pm(d['benr_late'], 2)} |"
            )
    c = result["cost"]
    if c:
        lines += [
            "",
            f"Cost: {c['runs']} runs, {c['span_s'] / 60:.1f} min of wall time from the first start to the last end "
            f"({c['sum_run_s'] / 60:.1f} min summed over runs, {c['mean_run_s']:.0f} s per run including the test, "
            f"{c['mean_step_ms']:.0f} ms per optimizer step). The machine may have been shared: accuracy does not "
            "depend on timing, the cost does.",
        ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Paired difference to always-Mixup against the pause length (share of the run), one line per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, per_size = result["header"], result["summary"]["per_size"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    fixed = [a for a in h["arms"] if a in PAUSES]
    for k, row in enumerate(per_size):
        x = np.array([100 * PAUSES[a] for a in fixed])
        d = [row["vs_" + REFERENCE][a] for a in fixed]
        mean = np.array([v["mean_diff"] for v in d]) * 100
        err = np.nan_to_num(np.vstack([mean - np.array([v["ci95"][0] for v in d]) * 100,
                                       np.array([v["ci95"][1] for v in d]) * 100 - mean]))  # fmt: skip
        ax.errorbar(x * (1 + 0.04 * k), mean, yerr=err, marker="o", capsize=3, color=f"C{k}",
                    label=f"{row['size']:,} images, fixed pause")  # fmt: skip
        if "pause_metric" in row["vs_" + REFERENCE] and row["boundary"]["pause_metric"]["median_step"]:
            m = row["vs_" + REFERENCE]["pause_metric"]
            share = 100 * row["boundary"]["pause_metric"]["median_step"] / h["run"]["steps"]
            ax.errorbar([share], [100 * m["mean_diff"]], yerr=[[100 * (m["mean_diff"] - m["ci95"][0])],
                        [100 * (m["ci95"][1] - m["mean_diff"])]], marker="*", ms=12, capsize=3, color=f"C{k}",
                        ls="none", label=f"{row['size']:,} images, metric boundary (median share)")  # fmt: skip
    ax.axhline(0, color="grey", lw=1)
    ax.set(xscale="log", xlabel="pause length (% of the run)", ylabel="Δ test acc vs always Mixup (pp)",
           title="paired difference, 95 % t-interval")  # fmt: skip
    ax.legend(fontsize=8)
    tag = " (quick mode: not a result)" if h["mode"] == "quick" else ""
    fig.suptitle(f"Fashion-MNIST, ViT (patch 4), {h['run']['steps']} steps, {len(h['seeds'])} seeds{tag}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def config_id(run: dict[str, Any], code_id: str | None) -> str:
    """Hash of the settings and the code (as ``effect.config_id``): changed code trains again."""
    text = json.dumps({"config": CONFIG, "run": run, "code_id": code_id}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="smoke run: 1 size, 2 seeds, 3 arms, 30 steps",
        out="output stem (default results/vit_period, quick results/vit_period_quick)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", help=f"training-set sizes (default {FULL['sizes']})")
    parser.add_argument("--seeds", type=int, help=f"number of seeds 0..n-1 (default {FULL['seeds']}, quick 2)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, help="arms to run (default all; quick: 3)")
    parser.add_argument("--steps", type=int, help=f"optimizer steps per run (default {FULL['steps']}, quick 30)")
    parser.add_argument("--workers", type=int, help="parallel processes (default 2; 0 = in this process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator for the runs (default cpu)")
    parser.add_argument(
        "--confirmatory",
        action="store_true",
        help="the pre-registered confirmatory run (docs/benchmarks.md; vit_confirmatory.py) instead of the sweep",
    )
    args = parser.parse_args(argv)
    if args.confirmatory:
        import vit_confirmatory

        return vit_confirmatory.main([a for a in (sys.argv[1:] if argv is None else argv) if a != "--confirmatory"])
    stem = "vit_period_quick" if args.quick else "vit_period"
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / stem, markdown)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    preset = QUICK if args.quick else FULL
    sizes = args.sizes or preset["sizes"]
    seeds = list(range(args.seeds if args.seeds is not None else preset["seeds"]))
    arms = [a for a in ARMS if a in (args.arms or (QUICK_ARMS if args.quick else ARMS))]
    if REFERENCE not in arms:
        parser.error(f"--arms must include the reference {REFERENCE!r}")
    workers = args.workers if args.workers is not None else (0 if args.quick else 2)
    run = {
        "steps": args.steps or preset["steps"],
        "batch_size": preset["batch_size"],
        "test_limit": preset["test_limit"],
        "accelerator": args.accelerator,
    }
    CONFIG["torch_threads_per_run"] = args.threads
    cid = config_id(run, git["code_id"])
    out = args.out or C.RESULTS / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}_runs.jsonl"
    done = {(r["size"], r["arm"], r["seed"]) for r in E.load_runs(log_path, cid)}
    todo = [(z, a, s) for s in seeds for z in sorted(sizes, reverse=True) for a in arms if (z, a, s) not in done]
    print(f"vit_period: {len(sizes)} sizes x {len(arms)} arms x {len(seeds)} seeds, {run['steps']} steps; "
          f"{len(todo)} to run; log {log_path}", flush=True)  # fmt: skip
    started = time.monotonic()

    def record(i: int, r: dict[str, Any]) -> None:
        r["config_id"] = cid
        r["git"] = {k: git[k] for k in ("commit", "code_dirty", "code_id")}
        with log_path.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"[{i}/{len(todo)} {time.monotonic() - started:6.0f}s] size {r['size']:>6} {r['arm']:<12} seed "
              f"{r['seed']}: test acc {r['test_acc']:.4f}, boundary {r['boundary_step']} ({r['ended_by']}), "
              f"{r['run_s']:.0f}s", flush=True)  # fmt: skip

    E.run_tasks(run_one, todo, run, workers=workers, threads=args.threads, record=record)
    wanted = {(z, a, s) for z in sizes for a in arms for s in seeds}
    runs = {
        (r["size"], r["arm"], r["seed"]): r
        for r in E.load_runs(log_path, cid)
        if (r["size"], r["arm"], r["seed"]) in wanted
    }
    runs_list = sorted(runs.values(), key=lambda r: (r["size"], ARMS.index(r["arm"]), r["seed"]))
    result: dict[str, Any] = {
        "header": C.header(
            "benchmarks/vit_period.py",
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
        "summary": summarise(runs_list, sizes, arms, seeds),
        "cost": E.cost(runs_list),
        "runs": runs_list,
    }
    table = markdown(result)
    C.write_results(out, result, table)
    plot(result, out.with_suffix(".png"))
    print(table)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
