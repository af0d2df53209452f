"""The pre-registered confirmatory run: Mixup Pause vs always-Mixup on the small ViT, fresh seeds 100-109.

The plan is docs/benchmarks.md, section "Confirmatory run: Mixup Pause on the small ViT (pre-registered)",
committed at ``PLAN_COMMIT`` before any of its runs; this script implements it unchanged. The setting is that of
``vit_period.py`` at 32,000 images (model, data, optimizer, schedule, 600 steps, Mixup α 0.4), with no diagnostics
callback. Arms, paired by seed:

* ``mixup``: Mixup from the first step, no callback (the reference);
* ``pause_metric``: ``EnlightenmentCallback(strategy=MixupPause())`` with its defaults;
* ``none``: no Mixup (``mixup_alpha=0``), no callback.

Primary outcome: ``pause_metric - mixup`` in test accuracy, paired over the 10 seeds, mean and two-sided 95 %
Student-t interval, no correction (one primary comparison): **confirmed** if the interval lies above 0,
**contradicted** if below 0, **not resolved** otherwise. Secondary (exploratory): ``none - mixup`` and
``pause_metric - none``, Holm-adjusted over these two; where the period ended in each seed. A full run refuses to
start unless ``PLAN_COMMIT`` is an ancestor of ``HEAD`` (the plan came first). Runs are appended to
``<out>_runs.jsonl``; the same command continues an interrupted run.

    python benchmarks/vit_period.py --confirmatory --workers 2 --threads 1   # the plan's command
    python benchmarks/vit_period.py --confirmatory --quick                   # smoke run, ~1 min, not results
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import effect as E  # worker set-up, run log and cost accounting
import vit_period as V  # the model, data and training of the ViT sweep

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py): the
# ViT sweep's, whose model, data and training it runs, and this script.
MEASURES = (
    *V.MEASURES,
    "benchmarks/vit_confirmatory.py",
)

PLAN_COMMIT = "ebd3b56fc8becda7dccb1bb4244a884910e7291b"
PLAN = 'docs/benchmarks.md, "Confirmatory run: Mixup Pause on the small ViT (pre-registered)"'
ARMS = ("mixup", "pause_metric", "none")
REFERENCE = "mixup"
PRIMARY = ("pause_metric", "mixup")
SECONDARY = (("none", "mixup"), ("pause_metric", "none"))
LABELS = {"mixup": "always Mixup", "pause_metric": "Mixup Pause (metric)", "none": "no Mixup"}
FULL = {"size": 32000, "seeds": list(range(100, 110)), "steps": 600, "batch_size": 128, "test_limit": None}
QUICK = {"size": 1000, "seeds": [100, 101], "steps": 30, "batch_size": 64, "test_limit": 500}
#: the plan's run settings, against which a full run lists its deviations
PLANNED = {"workers": 2, "threads": 1, "accelerator": "cpu"}
CONFIG: dict[str, Any] = {
    "plan": PLAN,
    "plan_commit": PLAN_COMMIT,
    "setting": "vit_period.py at 32,000 images, without the diagnostics callback",
    "vit_period_config": {k: v for k, v in V.CONFIG.items() if k not in ("pauses", "diagnostics")},
    "arms": {
        "mixup": f"Mixup α {V.CONFIG['mixup_alpha']} from the first step, no callback",
        "pause_metric": "EnlightenmentCallback(strategy=MixupPause()) defaults: running training accuracy >= 0.5, "
        "checked every 10 steps, max_duration 0.2dur",
        "none": "mixup_alpha=0 (no Mixup), no callback",
    },
    "diagnostics": None,
}


def plan_is_ancestor() -> bool:
    """Whether ``PLAN_COMMIT`` is an ancestor of (or is) ``HEAD``: the plan was committed before this code."""
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", PLAN_COMMIT, "HEAD"], cwd=C.ROOT, capture_output=True, check=False
    )
    return done.returncode == 0


def run_one(size: int, arm: str, seed: int, run: dict[str, Any]) -> dict[str, Any]:
    """Train one (arm, seed) of the plan; test accuracy and where the period ended."""
    from lit_early_phase import EnlightenmentCallback
    from lit_early_phase.strategies import MixupPause

    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; the plan has {ARMS}")
    cb = EnlightenmentCallback(strategy=MixupPause(), verbose=False) if arm == "pause_metric" else None
    alpha = 0.0 if arm == "none" else V.CONFIG["mixup_alpha"]
    return {"size": size, "arm": arm, "seed": seed} | V.train(size, seed, run, alpha, cb, None)


# ------------------------------------------------------------------------------------------------------------
def verdict(ci95: list[float]) -> str:
    """The plan's reading of the primary interval: confirmed (above 0), contradicted (below 0), not resolved."""
    lo, hi = ci95
    if lo > 0:
        return "confirmed"
    if hi < 0:
        return "contradicted"
    return "not resolved"


def summarise(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Accuracy per arm, the primary comparison (raw), the secondary ones (Holm over two), boundaries, same runs."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    arms = {}
    for arm in ARMS:
        accs = [by[(arm, s)]["test_acc"] for s in seeds if (arm, s) in by]
        mean, std = C.mean_std(accs)
        arms[arm] = {"n": len(accs), "mean": mean, "std": std, "values": accs}

    def paired(a: str, b: str) -> dict[str, Any]:
        both = [s for s in seeds if (a, s) in by and (b, s) in by]
        diff = C.paired_difference([by[(a, s)]["test_acc"] for s in both], [by[(b, s)]["test_acc"] for s in both])
        return diff | {"seeds": both}

    primary = paired(*PRIMARY) | {"verdict": verdict(paired(*PRIMARY)["ci95"])}
    secondary = {f"{a}-{b}": paired(a, b) for a, b in SECONDARY}
    holm = C.holm({k: d["diffs"] for k, d in secondary.items()})
    boundary = [
        {"seed": s, "step": by[("pause_metric", s)]["boundary_step"], "ended_by": by[("pause_metric", s)]["ended_by"]}
        for s in seeds
        if ("pause_metric", s) in by
    ]
    same = C.same_runs({a: {s: by[(a, s)] for s in seeds if (a, s) in by} for a in ARMS})
    return {
        "arms": arms,
        "primary": primary,
        "secondary": {k: secondary[k] | {"holm": holm[k]} for k in secondary},
        "boundary": boundary,
        "same_runs": [{"arms": list(pair), "seeds": s} for pair, s in same.items()],
    }


def deviations(h: dict[str, Any]) -> list[str]:
    """How a full run's settings differ from the plan's (none expected)."""
    if h["mode"] != "full":
        return ["quick mode: every setting is shrunk (a smoke test, not the plan)"]
    out = []
    if h["seeds"] != FULL["seeds"]:
        out.append(f"seeds {h['seeds']} instead of {FULL['seeds']}")
    for key in ("size", "steps", "batch_size", "test_limit"):
        if h["run"][key] != FULL[key]:
            out.append(f"{key} {h['run'][key]} instead of {FULL[key]}")
    for key, planned in PLANNED.items():
        if h[key] != planned:
            out.append(f"{key} {h[key]} instead of {planned}")
    if not h["plan_is_ancestor"]:
        out.append(f"the plan's commit {PLAN_COMMIT[:7]} is not an ancestor of the run's commit")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The confirmatory report: primary outcome and verdict, secondary comparisons (Holm), boundaries, same runs."""
    h, s, run = result["header"], result["summary"], result["header"]["run"]
    p = s["primary"]
    lo, hi = p["ci95"]
    dev = deviations(h)
    lines = [
        f"# Confirmatory (pre-registered): Mixup Pause vs always-Mixup, small ViT on Fashion-MNIST ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- Plan: {PLAN}, committed at {PLAN_COMMIT[:7]} before any of these runs; the plan's commit is "
        + (
            "an ancestor of this run's commit."
            if h["plan_is_ancestor"]
            else "**not** an ancestor of this run's commit."
        )
        + " Deviations from the plan: "
        + ("; ".join(dev) if dev else "none")
        + ".",
        f"- Setting: {CONFIG['setting']}: timm `{V.CONFIG['backbone']}` with {V.VIT}, {run['size']:,} training "
        f"images, batch {run['batch_size']}, {V.CONFIG['optimizer']} with cosine decay per step, {run['steps']} "
        f"optimizer steps, no augmentation, Mixup α {V.CONFIG['mixup_alpha']}, {h['threads']} torch thread(s) per "
        "run, " + (f"{h['workers']} runs in parallel." if h["workers"] else "runs one after another in one process."),
        f"- Test accuracy on {'the official 10,000' if run['test_limit'] is None else run['test_limit']} test "
        "images after the last step; no validation split, no model selection, no diagnostics callback.",
        "",
        f"Test accuracy (%), mean ± std over {len(h['seeds'])} seeds, and per seed ({h['seeds']}):",
        "",
        "| arm | mean ± std | per seed |",
        "|---|---:|---|",
    ]
    for arm in ARMS:
        a = s["arms"][arm]
        lines.append(f"| {LABELS[arm]} | {E._cell(a)} | {', '.join(C.pct(v) for v in a['values'])} |")
    lines += [
        "",
        f"**Primary outcome** (confirmatory, one comparison, no multiplicity correction): {LABELS[PRIMARY[0]]} − "
        f"{LABELS[PRIMARY[1]]}, paired over {p['n']} seeds: {C.signed_pp(p['mean_diff'])} pp, 95 % t-interval "
        f"[{C.signed_pp(lo)}, {C.signed_pp(hi)}], seeds better : worse {p['pairs_better']} : {p['pairs_worse']}. "
        f"**{p['verdict'].capitalize()}** (the plan: confirmed if the interval lies above 0, contradicted if below 0, "
        "not resolved otherwise).",
        "",
        "Secondary comparisons (exploratory), percentage points, paired by seed: mean [raw 95 % t-interval] Holm "
        "[interval adjusted by Holm over these two] (+ / - : resolved after Holm, adjusted p < 0.05; 0: not "
        "resolved), seeds better : worse.",
        "",
        "| comparison | difference | sign | better : worse |",
        "|---|---|---|---|",
    ]
    for key, d in s["secondary"].items():
        a, b = key.split("-")
        lines.append(
            f"| {LABELS[a]} − {LABELS[b]} | {C.holm_cell(d['holm'])} | {C.holm_sign(d['holm'])} | "
            f"{d['pairs_better']} : {d['pairs_worse']} |"
        )
    lines += [
        "",
        "Where the period ended (Mixup Pause (metric)), per seed: optimizer step and what ended it (metric = running "
        "accuracy reached 0.5, max_duration = the 0.2dur guard):",
        "",
        "| seed | boundary step | share of run | ended by |",
        "|---:|---:|---:|---|",
    ]
    for b in s["boundary"]:
        share = "-" if b["step"] is None else f"{100 * b['step'] / run['steps']:.1f} %"
        lines.append(f"| {b['seed']} | {b['step'] if b['step'] is not None else 'never'} | {share} | {b['ended_by']} |")
    same = [f"{LABELS[x['arms'][1]]} same runs as {LABELS[x['arms'][0]]} in seeds {x['seeds']}" for x in s["same_runs"]]
    lines += [
        "",
        "Same runs (identical test accuracy and boundary step): " + ("; ".join(same) if same else "none") + ".",
    ]
    c = result["cost"]
    if c:
        lines += [
            "",
            f"Cost: {c['runs']} runs, {c['span_s'] / 60:.1f} min of wall time from the first start to the last end "
            f"({c['sum_run_s'] / 60:.1f} min summed over runs, {c['mean_run_s']:.0f} s per run including the test). "
            "The machine may have been shared: accuracy does not depend on timing, the cost does.",
        ]
    return "\n".join(lines) + "\n"


def config_id(run: dict[str, Any], code_id: str | None) -> str:
    """Hash of the settings and the code (as ``effect.config_id``): changed code trains again."""
    text = json.dumps({"config": CONFIG, "run": run, "code_id": code_id}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__,
        quick="smoke run: 1,000 images, seeds 100-101, 30 steps, 500 test images (not results)",
        out="output stem (default results/vit_confirmatory, quick results/vit_confirmatory_quick)",
    )
    parser.add_argument("--workers", type=int, help="parallel processes (default 2, quick 0 = in this process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator for the runs (default cpu)")
    args = parser.parse_args(argv)
    stem = "vit_confirmatory_quick" if args.quick else "vit_confirmatory"
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / stem, markdown)
    mode = "quick" if args.quick else "full"
    ancestor = plan_is_ancestor()
    if mode == "full" and not ancestor:
        raise SystemExit(
            f"The confirmatory run follows the plan committed at {PLAN_COMMIT[:7]} ({PLAN}); that commit is not an "
            "ancestor of HEAD here, so this code does not come after the plan. Run it from a descendant of the plan."
        )
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    preset = QUICK if args.quick else FULL
    seeds, size = preset["seeds"], preset["size"]
    workers = args.workers if args.workers is not None else (0 if args.quick else 2)
    run = {k: preset[k] for k in ("size", "steps", "batch_size", "test_limit")} | {"accelerator": args.accelerator}
    cid = config_id(run | {"threads": args.threads}, git["code_id"])
    out = args.out or C.RESULTS / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}_runs.jsonl"
    done = {(r["arm"], r["seed"]) for r in E.load_runs(log_path, cid)}
    todo = [(size, a, s) for s in seeds for a in ARMS if (a, s) not in done]
    print(f"vit_confirmatory ({mode}): {len(ARMS)} arms x {len(seeds)} seeds, {run['steps']} steps, {size} images; "
          f"{len(todo)} to run; log {log_path}", flush=True)  # fmt: skip
    started = time.monotonic()

    def record(i: int, r: dict[str, Any]) -> None:
        r["config_id"] = cid
        r["git"] = {k: git[k] for k in ("commit", "code_dirty", "code_id")}
        with log_path.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"[{i}/{len(todo)} {time.monotonic() - started:6.0f}s] {r['arm']:<12} seed {r['seed']}: test acc "
              f"{r['test_acc']:.4f}, boundary {r['boundary_step']} ({r['ended_by']}), {r['run_s']:.0f}s",
              flush=True)  # fmt: skip

    E.run_tasks(run_one, todo, run, workers=workers, threads=args.threads, record=record)
    runs = {(r["arm"], r["seed"]): r for r in E.load_runs(log_path, cid) if r["arm"] in ARMS and r["seed"] in seeds}
    runs_list = sorted(runs.values(), key=lambda r: (ARMS.index(r["arm"]), r["seed"]))
    result: dict[str, Any] = {
        "header": C.header(
            "benchmarks/vit_confirmatory.py",
            mode=mode,
            seeds=seeds,
            config=CONFIG,
            git=git,
            label="confirmatory",
            plan=PLAN,
            plan_commit=PLAN_COMMIT,
            plan_is_ancestor=ancestor,
            arms=list(ARMS),
            reference=REFERENCE,
            run=run,
            config_id=cid,
            workers=workers,
            threads=args.threads,
            accelerator=args.accelerator,
            runs_log=str(log_path.relative_to(C.ROOT)) if log_path.is_relative_to(C.ROOT) else str(log_path),
            wall_s_this_invocation=round(time.monotonic() - started, 1),
        ),
        "summary": summarise(runs_list, seeds),
        "cost": E.cost(runs_list),
        "runs": runs_list,
    }
    table = markdown(result)
    C.write_results(out, result, table)
    print(table)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
