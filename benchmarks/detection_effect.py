"""Does Mixup Pause help a detector? mAP@0.5 on the tree crowns with always-Mixup, Mixup Pause and no Mixup.

Three arms of the tree-crown recipe (``tree_crowns_frcnn_mixup_pause``: Faster R-CNN on the packaged
ImageNet EfficientNet-Lite0, 400 px tiles, batch 4, AdamW 2e-4, ``--epochs`` epochs), the same seeds:

* ``always_mixup``: detection Mixup α 0.2 from the first step, no callback;
* ``mixup_pause``: the same, with the default ``EnlightenmentCallback(strategy="mixup_pause")`` (no Mixup until
  the boundary: the recipe as shipped);
* ``no_mixup``: α 0.

Each run is a fresh process (so its peak memory is its own) and is appended to ``<out>_runs.jsonl`` as it
finishes; the same command continues an interrupted sweep (runs of other code or settings are not reused). The
validation set is the two whole validation images (98 crowns), so mAP@0.5 is noisy: read the paired
differences by seed and their intervals, not single runs.

    python benchmarks/detection_effect.py                 # full: 3 arms x 3 seeds x 12 epochs (~1 h on 2 cores)
    python benchmarks/detection_effect.py --quick         # 3 arms x 1 seed x 2 epochs x 2 steps at 64 px (smoke test)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import detection_curve

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/callbacks",
    "src/lit_early_phase/strategies",
    "src/lit_early_phase/knobs.py",
    "src/lit_early_phase/keys.py",
    "src/lit_early_phase/modules/detector.py",
    "src/lit_early_phase/modules/detection_losses.py",
    "src/lit_early_phase/modules/detection_models.py",
    "src/lit_early_phase/modules/factories.py",
    "src/lit_early_phase/modules/mixin.py",
    "src/lit_early_phase/modules/rng.py",
    "src/lit_early_phase/modules/manifold.py",
    "src/lit_early_phase/functional",
    "src/lit_early_phase/datamodules/detection",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/detection_effect.py",
    "benchmarks/detection_curve.py",
)

STEM = C.RESULTS / "detection_effect"
#: arm -> (detection Mixup α, Mixup Pause callback attached)
ARMS: dict[str, tuple[float, bool]] = {
    "always_mixup": (0.2, False),
    "mixup_pause": (0.2, True),
    "no_mixup": (0.0, False),
}
WINDOW = 20  # the callback's default running window (batches)


def _run(arm: str, seed: int, epochs: int, quick: bool) -> dict[str, Any]:
    import torch

    C.quiet()
    torch.set_num_threads(2)
    alpha, pause = ARMS[arm]
    started = time.monotonic()
    r = detection_curve.run(seed, epochs=epochs, quick=quick, mixup_alpha=alpha, pause=pause)
    return {"arm": arm, **r, "run_s": time.monotonic() - started}


def running_accuracy(fg_counts: list[list[int]], window: int = WINDOW) -> list[list[float]]:
    """``[step, correct/total over the last window steps]``: what the default callback compares with 0.5."""
    out = []
    for i in range(len(fg_counts)):
        part = fg_counts[max(0, i + 1 - window) : i + 1]
        total = sum(t for _, _, t in part)
        out.append([fg_counts[i][0], sum(c for _, c, _ in part) / total if total else float("nan")])
    return out


def summarise(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Final mAP@0.5 per arm (mean ± std, t-interval), paired differences by seed, the monitor's reach."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    final = {a: [by[a, s]["val_map_50"][-1][1] for s in seeds if (a, s) in by] for a in ARMS}
    arms = {}
    for a, values in final.items():
        mean, lo, hi = C.t_interval(values)
        arms[a] = {"final_map_50": values, "mean": mean, "std": C.mean_std(values)[1], "ci95": [lo, hi]}
    complete = [s for s in seeds if all((a, s) in by for a in ARMS)]
    pick = lambda a: [by[a, s]["val_map_50"][-1][1] for s in complete]  # noqa: E731
    paired = {
        f"{a}-{b}": C.paired_difference(pick(a), pick(b))
        for a, b in (("mixup_pause", "always_mixup"), ("mixup_pause", "no_mixup"), ("always_mixup", "no_mixup"))
    }
    reach = {}
    for r in runs:
        acc = running_accuracy(r["fg_counts"])
        # where the default callback would have ended the period: its checks fall on every 10th step
        first = next((step for step, v in acc if step % 10 == 0 and v >= 0.5), None)
        reach[f"{r['arm']}/{r['seed']}"] = {"first_step_at_0.5": first, "max": max(v for _, v in acc)}
    return {"arms": arms, "paired": paired, "paired_seeds": complete, "monitor_reach": reach}


def comparisons(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`_common.holm` over the script's family: every paired difference of the summary (keys as there)."""
    return C.holm({name: d["diffs"] for name, d in result["summary"]["paired"].items()})


def markdown(result: dict[str, Any]) -> str:
    """The tables: mAP@0.5 per arm, paired differences, the boundary, the monitor's running accuracy."""
    s, runs = result["summary"], result["runs"]
    lines = [
        "# Detector: Mixup Pause on the tree crowns (val mAP@0.5; exploratory)",
        "",
        *C.header_markdown(result["header"]),
    ]
    cost = sum(r["run_s"] for r in runs)
    lines += [f"- Cost: {len(runs)} runs, {cost / 60:.0f} min of wall time in all.", ""]
    lines += ["| arm | final val mAP@0.5 (mean ± std) | 95 % interval | per seed |", "|---|---|---|---|"]
    for a, v in s["arms"].items():
        per = ", ".join(f"{x:.3f}" for x in v["final_map_50"])
        lines.append(f"| {a} | {v['mean']:.3f} ± {v['std']:.3f} | [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] | {per} |")
    holm = comparisons(result)
    lines += [
        "",
        f"Paired by seed ({s['paired_seeds']}), difference of final mAP@0.5 (exploratory comparisons); the Holm "
        f"interval is adjusted over the m = {len(holm)} differences below, {C.holm_level_words(holm)}; the sign "
        "follows it (+ / - : resolved after Holm, adjusted p < 0.05; 0: not resolved):",
        "",
    ]
    lines += [
        "| difference | mean | raw 95 % interval | Holm interval | better / equal / worse | sign |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in s["paired"].items():
        x = holm[name]
        lines.append(
            f"| {name} | {d['mean_diff']:+.3f} | [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
            f"[{x['ci_holm'][0]:+.3f}, {x['ci_holm'][1]:+.3f}] | "
            f"{d['pairs_better']} / {d['pairs_equal']} / {d['pairs_worse']} | {C.holm_sign(x)} |"
        )
    by_arm: dict[str, dict[int, dict[str, Any]]] = {a: {} for a in ARMS}
    for r in runs:
        by_arm[r["arm"]][r["seed"]] = {"test_acc": r["val_map_50"][-1][1], "boundary_step": r["boundary_step"]}
    same = [f"{b} same runs as {a} in seeds {seeds}" for (a, b), seeds in C.same_runs(by_arm).items()]
    lines += ["", "Same runs (identical final mAP@0.5 and boundary step): " + ("; ".join(same) or "none") + "."]
    lines += [
        "",
        "Per run: the boundary (Mixup Pause only), the default monitor (box-classifier accuracy on its sampled "
        f"foreground proposals, running over {WINDOW} batches) and where it first reached 0.5, val mAP@0.5 by "
        "epoch, step time and peak memory:",
        "",
        "| arm | seed | boundary step (ended by) | steps | monitor max / first step at 0.5 | val mAP@0.5 by epoch | "
        "step (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        reach = s["monitor_reach"][f"{r['arm']}/{r['seed']}"]
        ended = "-" if r["boundary_step"] is None else f"{r['boundary_step']} ({str(r['reason']).split(' ')[0]})"
        first = reach["first_step_at_0.5"] if reach["first_step_at_0.5"] is not None else "never"
        maps = ", ".join(f"{m:.2f}" for _, m in r["val_map_50"])
        lines.append(
            f"| {r['arm']} | {r['seed']} | {ended} | {r['steps_total']} | {reach['max']:.2f} / {first} | {maps} | "
            f"{r['step_s_mean']:.2f} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    quick = "3 arms x 1 seed x 2 epochs x 2 steps at 64 px (smoke test)"
    parser = C.arg_parser(__doc__, quick=quick, out="output stem")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    stem = args.out or (Path(tempfile.mkdtemp()) / "detection_effect" if args.quick else STEM)
    if args.report_only:
        C.report_only(stem, markdown)
        return
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    seeds = args.seeds[:1] if args.quick else args.seeds
    config = {"epochs": args.epochs, "recipe": "tree_crowns_frcnn_mixup_pause", "batch_size": 4}
    config["arms"] = {a: {"mixup_alpha": ARMS[a][0], "mixup_pause_callback": ARMS[a][1]} for a in args.arms}
    cid = hashlib.sha1(json.dumps([config, mode, git["code_id"]], sort_keys=True).encode()).hexdigest()[:12]
    log = stem.parent / f"{stem.name}_runs.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    done = [r for r in done if r.get("config_id") == cid]
    have = {(r["arm"], r["seed"]) for r in done}
    todo = [(a, s) for s in seeds for a in args.arms if (a, s) not in have]  # seed-major: arms stay paired
    print(f"detection_effect: {len(have)} runs done, {len(todo)} to run; log {log}", flush=True)
    # one fresh process per run: its peak RSS is its own and no state leaks between arms
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        for arm, seed in todo:
            r = pool.submit(_run, arm, seed, args.epochs, args.quick).result()
            r["config_id"] = cid
            with log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            done.append(r)
            print(f"{arm} seed {seed}: final val mAP@0.5 {r['val_map_50'][-1][1]:.3f}, {r['run_s']:.0f}s", flush=True)
    runs = sorted(
        (r for r in done if r["arm"] in args.arms and r["seed"] in seeds), key=lambda r: (r["arm"], r["seed"])
    )
    header = C.header("benchmarks/detection_effect.py", mode=mode, seeds=seeds, config=config, git=git, threads=2)
    result = {"header": header, "summary": summarise(runs, seeds), "runs": runs}
    C.write_results(stem, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
