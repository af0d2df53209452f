"""The finder against the outcomes: ``EnlightenmentFinder``'s recommendation vs arms trained in the same setting.

In-sample (the default): every setting of the effect sweeps, the ResNet sweep (``effect.py``: timm
``test_resnet``, 1000 steps, 2k / 8k / 32k images) and the ViT sweep (``vit_period.py``: small ViT, 600 steps,
2k / 32k images), each model built exactly as its sweep builds it (same optimizer and cosine schedule over the
planned run). Per setting and seed, the finder's pilot (a quarter of the planned run at most, diagnostics every 5
steps) gives a recommendation; the outcome comes from the sweep's saved results (``results/effect.json``,
``results/vit_period.json``). The rule's thresholds were set from these same sweeps, so agreement here is
in-sample: it shows the rule encodes what was measured, not that it generalises.

Out-of-sample (``--out-of-sample``, the plan in docs/diagnostics.md, committed before it was implemented): the
small ViT at 8,000 training images, a size that set none of the rule's thresholds; 3 seeds, each with one pilot
and one run of each arm (always Mixup, Mixup Pause to the metric boundary), trained here.

The verdict, the same in both modes: the recommended arm (``none`` -> always Mixup, the plan; ``mixup_pause`` ->
Mixup Pause to the metric boundary) minus the other of the two, paired by seed, adjusted by Holm
(``_common.holm``) over the check's settings, one comparison each (in-sample: its 5 settings; out-of-sample: its
settings): "yes" resolved above 0, "no" resolved below 0, "unresolved" otherwise (not counted as agreement); the
raw 95 % t-interval is shown beside it. Arms better than the recommendation are listed beside it: resolved after
Holm over every (setting, arm) comparison of another arm with the recommended one, and, apart, those whose raw
interval alone lies above 0 (no Mixup at 32,000 ResNet images is resolved after Holm in its sweep, effect.md).

    python benchmarks/finder_check.py                        # ~10 min on 2 cores -> results/finder_check.*
    python benchmarks/finder_check.py --quick                # smoke run (1 seed, 2 settings, short pilots)
    python benchmarks/finder_check.py --out-of-sample        # ~9 min on 2 cores -> results/finder_oos.*
    python benchmarks/finder_check.py --out-of-sample --quick  # smoke run (1,000 images, 30 steps, 2 seeds)
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package
import effect as E
import vit_period as V

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py): the
# pilots (the finder, its callback and diagnostics, the models and data) and the outcomes it reads (the sweeps'
# scripts). _common.py is left out: its statistics and reports change no measurement (the verdict is re-derived by
# --resummarise and checked by test_benchmark_provenance); list it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/finder",
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
    "benchmarks/finder_check.py",
    "benchmarks/effect.py",
    "benchmarks/vit_period.py",
)
SETTINGS = [("resnet", 2000), ("resnet", 8000), ("resnet", 32000), ("vit", 2000), ("vit", 32000)]
SOURCES = {"resnet": ("effect", E), "vit": ("vit_period", V)}
FULL = {"seeds": 3, "pilot_fraction": 0.25, "every_n_steps": 5, "settings": SETTINGS}
QUICK = {"seeds": 1, "pilot_fraction": 0.03, "every_n_steps": 5, "settings": [("resnet", 2000), ("vit", 2000)]}
#: the out-of-sample setting and arms, as planned in docs/diagnostics.md before any of it ran
OOS_FULL = {"kind": "vit", "size": 8000, "seeds": [0, 1, 2], "steps": 600, "batch_size": 128, "test_limit": None}
OOS_QUICK = {"kind": "vit", "size": 1000, "seeds": [0, 1], "steps": 30, "batch_size": 64, "test_limit": 500}
OOS_PILOT = {"pilot_fraction": 0.25, "every_n_steps": 5}
OOS_ARMS = ("mixup", "pause_metric")
#: the arm each answer means, and the other answer's arm it is compared with
ARM_OF = {"none": "mixup", "too_short": "mixup", "mixup_pause": "pause_metric"}
OTHER = {"mixup": "pause_metric", "pause_metric": "mixup"}
CONFIG = {
    "finder": "EnlightenmentFinder(pilot_fraction, every_n_steps, probe_size=64), default callback settings",
    "resnet": {k: E.CONFIG[k] for k in ("backbone", "optimizer", "mixup_alpha")} | {"steps": E.FULL["steps"]},
    "vit": {k: V.CONFIG[k] for k in ("backbone", "backbone_kwargs", "optimizer", "mixup_alpha")}
    | {"steps": V.FULL["steps"]},
    "batch_size": 128,
}


def _model(kind: str, steps: int) -> Any:
    import torch

    from lit_early_phase import ImageClassifier

    cfg = E.CONFIG if kind == "resnet" else V.CONFIG
    return ImageClassifier(
        cfg["backbone"],
        num_classes=10,
        in_chans=1,
        mixup_alpha=cfg["mixup_alpha"],
        backbone_kwargs=dict(cfg.get("backbone_kwargs") or {}),
        optimizer=lambda params: torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"]),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
        lr_interval="step",
    )


def pilot(kind: str, size: int, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """The finder on one setting and seed (``cfg`` may set ``steps`` and ``batch_size``; default: the sweep's)."""
    import lightning as L

    from lit_early_phase.finder import EnlightenmentFinder

    steps = cfg.get("steps") or (E.FULL if kind == "resnet" else V.FULL)["steps"]
    L.seed_everything(seed, verbose=False)
    model = _model(kind, steps)
    dm = E._datamodule(size, cfg.get("batch_size", 128), None, False)
    t0 = time.perf_counter()
    finder = EnlightenmentFinder(pilot_fraction=cfg["pilot_fraction"], every_n_steps=cfg["every_n_steps"])
    rec = finder.find(model, dm, planned_steps=steps)
    return {"kind": kind, "size": size, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)} | rec.to_dict()


def raw_verdict(strategy: str, values: dict[str, list[float]]) -> dict[str, Any]:
    """One setting before Holm: the recommended arm minus the other answer's arm, and every other arm minus it.

    Args:
        strategy: the finder's answer (``"too_short"``, the old name of ``"none"`` in saved results, is read as it).
        values: test accuracy per arm, one value per seed in the same seed order for every arm.

    Returns:
        The recommended and compared arms, the paired difference (raw 95 % interval) and ``vs_recommended``
        (each other arm minus the recommended one); ``difference`` is ``None`` when the setting is not evaluated.
    """
    arm = ARM_OF.get(strategy)
    if arm is None or arm not in values or OTHER[arm] not in values:
        return {"recommended_arm": arm, "compared_with": None, "difference": None, "vs_recommended": {}}
    others = {a: C.paired_difference(values[a], values[arm]) for a in values if a != arm}
    diff = C.paired_difference(values[arm], values[OTHER[arm]])
    return {"recommended_arm": arm, "compared_with": OTHER[arm], "difference": diff, "vs_recommended": others}


def holm_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts of a check: Holm over its settings' recommended-minus-other differences (one family).

    Adds to each row ``holm`` (the :func:`_common.holm` entry: ``ci_holm``, ``p_holm``, ``m``, ``resolved``),
    ``verdict`` ("yes" / "no": resolved after Holm above / below 0; "unresolved": not resolved, whatever the raw
    interval; "not evaluated": no difference), ``resolved_better_arms`` (other arms resolved above the recommended
    one after Holm over every (setting, arm) comparison of the check) and ``raw_better_arms`` (raw interval above
    0, whether or not resolved).

    Args:
        rows: rows from :func:`raw_verdict` (with ``difference`` and ``vs_recommended``), one per setting.

    Returns:
        New rows, the same order.
    """
    evaluated = [i for i, r in enumerate(rows) if r["difference"] is not None]
    h = C.holm({str(i): rows[i]["difference"]["diffs"] for i in evaluated})
    better = C.holm({f"{i}|{a}": d["diffs"] for i in evaluated for a, d in rows[i]["vs_recommended"].items()})
    out = []
    for i, r in enumerate(rows):
        if i not in evaluated:
            extra = {"holm": None, "verdict": "not evaluated", "resolved_better_arms": [], "raw_better_arms": []}
            out.append(r | extra)
            continue
        x = h[str(i)]
        holm = {k: x[k] for k in ("ci_holm", "p_holm", "m", "rank", "resolved")}
        vs = r["vs_recommended"]
        resolved_better = sorted(a for a in vs if C.holm_sign(better[f"{i}|{a}"]) == "+")
        holm_better = {"m": len(better), "resolved": resolved_better}
        out.append(
            r
            | {
                "holm": holm,
                "verdict": {"+": "yes", "-": "no", "0": "unresolved"}[C.holm_sign(x)],
                "resolved_better_arms": resolved_better,
                "raw_better_arms": sorted(a for a in vs if vs[a]["sign"] == "+"),
                "holm_better": holm_better,
            }
        )
    return out


def verdict(strategy: str, values: dict[str, list[float]]) -> dict[str, Any]:
    """:func:`raw_verdict` and :func:`holm_verdicts` for a check of one setting (Holm's m = 1: the raw interval)."""
    return holm_verdicts([raw_verdict(strategy, values)])[0]


def outcome(kind: str, size: int) -> dict[str, Any]:
    """The sweep's result for a setting: per-arm accuracies by seed, the best arm, the source and its commit."""
    stem, module = SOURCES[kind]
    result = json.loads((C.RESULTS / f"{stem}.json").read_text())
    row = next(r for r in result["summary"]["per_size"] if r["size"] == size)
    best = max(row["arms"], key=lambda a: row["arms"][a]["mean"])
    return {
        "source": f"benchmarks/results/{stem}.json",
        "commit": result["header"]["git"]["commit"],
        "best_arm": best,
        "best_label": module.LABELS[best],
        "values": {a: row["arms"][a]["values"] for a in row["arms"]},
        "labels": dict(module.LABELS),
    }


def summarise(pilots: list[dict[str, Any]], settings: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Per setting: the pilots' votes and evidence, the sweep's outcome and the verdict."""
    rows = []
    for kind, size in settings:
        ps = [p for p in pilots if p["kind"] == kind and p["size"] == size]
        out = outcome(kind, size)
        rows.append(_row(kind, size, ps, out["values"]) | {"outcome": out})
    return holm_verdicts(rows)


def _row(kind: str, size: int, ps: list[dict[str, Any]], values: dict[str, list[float]]) -> dict[str, Any]:
    votes = Counter("none" if p["strategy"] == "too_short" else p["strategy"] for p in ps)
    top, count = votes.most_common(1)[0]
    # the plan's "majority": more than half of the pilots; without one there is no recommendation to evaluate
    # (Counter.most_common would pick one of the tied answers by insertion order)
    recommendation = top if 2 * count > len(ps) else "no majority"
    ev = [p["evidence"] for p in ps]
    return {
        "kind": kind,
        "size": size,
        "votes": dict(votes),
        "recommendation": recommendation,
        "boundary_steps": [e["boundary_step"] for e in ev],
        "period_share": C.mean_std([e["period_share"] for e in ev]),
        "interference": C.mean_std([e["interference"] for e in ev]),
        "revival": C.mean_std([e["revival"] for e in ev]),
        "pilot_s": C.mean_std([p["seconds"] for p in ps]),
        "arm_means": {a: float(np.mean(v)) for a, v in values.items()},
    } | raw_verdict(recommendation, values)


def _diff_cell(r: dict[str, Any], labels: dict[str, str]) -> str:
    d = r["difference"]
    if d is None:
        return "-"
    lo, hi = d["ci95"]
    hlo, hhi = r["holm"]["ci_holm"]
    return (
        f"{labels[r['recommended_arm']]} - {labels[r['compared_with']]}: {C.signed_pp(d['mean_diff'])} "
        f"[{C.signed_pp(lo)}, {C.signed_pp(hi)}] Holm [{C.signed_pp(hlo)}, {C.signed_pp(hhi)}]"
    )


def _better_cell(r: dict[str, Any], labels: dict[str, str]) -> str:
    resolved = ", ".join(labels[a] for a in r["resolved_better_arms"]) or "none"
    raw_only = [labels[a] for a in r["raw_better_arms"] if a not in r["resolved_better_arms"]]
    return resolved + (f" (raw interval above 0, not resolved: {', '.join(raw_only)})" if raw_only else "")


def _m(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Holm's m of the verdicts and of the better-arm comparisons."""
    r = next((r for r in rows if r["holm"] is not None), None)
    return (r["holm"]["m"], r["holm_better"]["m"]) if r else (0, 0)


def _verdict_rule(m: int, m_better: int) -> str:
    return (
        "- Verdict: the recommended arm (`none`: always Mixup, the plan; `mixup_pause`: Mixup Pause to the metric "
        f"boundary) minus the other of the two, paired by seed, adjusted by Holm over the m = {m} settings of this "
        "check (one comparison each): yes (resolved after Holm above 0, adjusted p < 0.05), no (resolved below 0), "
        "unresolved (not resolved after Holm, whatever the raw interval; not counted as agreement). Shown: mean "
        "[raw 95 % t-interval] Holm [adjusted interval]. Arms better than the recommendation: resolved after Holm "
        f"over the m = {m_better} comparisons of another arm with the recommended one in this check; arms whose "
        "raw interval alone lies above 0 are named apart, as not resolved."
    )


def verdict_counts(rows: list[dict[str, Any]]) -> str:
    """``"yes 1, unresolved 3, no 1"`` over the rows (absent verdicts left out)."""
    counts = Counter(r["verdict"] for r in rows)
    return ", ".join(f"{k} {counts[k]}" for k in ("yes", "unresolved", "no", "not evaluated") if counts[k])


def agreement(result: dict[str, Any]) -> dict[str, int]:
    """The in-sample agreement counts of a saved result, re-derived by :func:`holm_verdicts` (docs quote them).

    Args:
        result: a saved ``finder_check.json`` (its ``summary`` rows hold the raw differences).

    Returns:
        ``settings`` (evaluated settings, Holm's m), ``after_holm`` (verdict "yes": the recommended arm resolved
        above the other after Holm over the settings) and ``raw`` (its raw 95 % interval above 0).
    """
    rows = [r for r in holm_verdicts(result["summary"]) if r["difference"] is not None]
    return {
        "settings": len(rows),
        "after_holm": sum(r["verdict"] == "yes" for r in rows),
        "raw": sum(r["difference"]["sign"] == "+" for r in rows),
    }


def raw_counts(rows: list[dict[str, Any]]) -> str:
    """How many evaluated rows' raw 95 % interval lies above 0 / below 0 (``"1 of 5, below 0: 0"``)."""
    signs = Counter(r["difference"]["sign"] for r in rows if r["difference"] is not None)
    return f"{signs['+']} of {sum(signs.values())} (below 0: {signs['-']})"


def markdown(result: dict[str, Any]) -> str:
    """The in-sample table: evidence, recommendation, the sweep's arms, the verdict (Holm over the settings)."""
    h = result["header"]
    m, m_better = _m(result["summary"])
    lines = [
        f"# The finder's recommendation vs the sweeps' outcome: exploratory, in-sample ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- Pilot: at most {100 * h['run']['pilot_fraction']:.0f} % of the planned run, diagnostics every "
        f"{h['run']['every_n_steps']} steps, {len(h['seeds'])} seed(s) per setting; the rule of "
        "`lit_early_phase.finder.rule` (docs/diagnostics.md). Outcomes read from the sweeps' saved results "
        "(commit of each named in its file). **In-sample**: the rule's thresholds were set from these sweeps.",
        _verdict_rule(m, m_better),
        "",
        "| model | train images | period share (finder) | interference in period | recommendation (votes) | "
        "best arm in the sweep (by mean) | recommended - other (pp): mean [raw 95 %] Holm [adjusted] | verdict "
        "(after Holm) | arms better than the recommendation (after Holm) |",
        "|---|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in result["summary"]:
        o = r["outcome"]
        votes = ", ".join(f"{k} {v}" for k, v in sorted(r["votes"].items()))
        lines.append(
            f"| {r['kind']} | {r['size']:,} | {100 * r['period_share'][0]:.1f} ± {100 * r['period_share'][1]:.1f} % | "
            f"{r['interference'][0]:.3f} ± {r['interference'][1]:.3f} | {r['recommendation']} ({votes}) | "
            f"{o['best_label']} | {_diff_cell(r, o['labels'])} | {r['verdict']} | {_better_cell(r, o['labels'])} |"
        )
    mean_s = np.mean([p["seconds"] for p in result["pilots"]])
    lines += [
        "",
        f"Verdicts (exploratory, in-sample; after Holm over {m} settings): {verdict_counts(result['summary'])} of "
        f"{len(result['summary'])} settings. Raw 95 % interval above 0: {raw_counts(result['summary'])}.",
        "",
        f"Cost: {len(result['pilots'])} pilots, {mean_s:.0f} s each on average.",
    ]
    if "resummarised" in h:
        lines += ["", f"Summary re-derived without training: {h['resummarised']}"]
    return "\n".join(lines) + "\n"


def markdown_oos(result: dict[str, Any]) -> str:
    """The out-of-sample table: per seed, the pilot and the arms; then the verdict."""
    h, r = result["header"], result["summary"]
    run = h["run"]
    labels = V.LABELS
    m, m_better = _m([r])
    lines = [
        f"# The finder out of sample: small ViT at {run['size']:,} images, out-of-sample (planned in "
        f"docs/diagnostics.md) ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- Setting: `vit_period.py`'s small ViT, {run['steps']} optimizer steps, batch {run['batch_size']}, "
        f"{run['size']:,} training images; a setting that set none of the rule's thresholds (plan: "
        "docs/diagnostics.md, committed before this mode was written). **Out-of-sample.**",
        f"- Pilot: at most {100 * run['pilot_fraction']:.0f} % of the planned run, diagnostics every "
        f"{run['every_n_steps']} steps; arms: {', '.join(labels[a] for a in run['arms'])}, one run per seed.",
        "",
        "| seed | finder's answer | boundary step | period share | interference in period | "
        + " | ".join(f"{labels[a]} (%)" for a in run["arms"])
        + " |",
        "|---:|---|---:|---:|---:|" + "---:|" * len(run["arms"]),
    ]
    for p in result["pilots"]:
        e, seed = p["evidence"], p["seed"]
        accs = [next(x["test_acc"] for x in result["runs"] if x["arm"] == a and x["seed"] == seed) for a in run["arms"]]
        lines.append(
            f"| {seed} | {p['strategy']} | {e['boundary_step']} | {100 * e['period_share']:.1f} % | "
            f"{e['interference']:.3f} | " + " | ".join(f"{100 * x:.2f}" for x in accs) + " |"
        )
    votes = ", ".join(f"{k} {v}" for k, v in sorted(r["votes"].items()))
    lines += [
        "",
        _verdict_rule(m, m_better),
        f"- Recommendation (majority of the pilots): **{r['recommendation']}** ({votes}).",
        f"- Difference, paired by seed: {_diff_cell(r, labels)} pp.",
        f"- Verdict (decided in advance; after Holm over m = {m}): **{r['verdict']}**; arms better than the "
        f"recommendation (after Holm): {_better_cell(r, labels) if r['holm'] else 'none'}.",
        f"- One setting, {len(h['seeds'])} seeds: one out-of-sample observation of the rule, not a rate.",
        "",
        f"Cost: {result['wall_s'] / 60:.1f} min of wall time for {len(result['pilots'])} pilots and "
        f"{len(result['runs'])} runs.",
    ]
    return "\n".join(lines) + "\n"


def _pilots_and_print(cfg: dict[str, Any], settings: list[tuple[str, int]], seeds: list[int]) -> list[dict[str, Any]]:
    pilots = []
    for kind, size in settings:
        for seed in seeds:
            pilots.append(pilot(kind, size, seed, cfg))
            p = pilots[-1]
            print(f"{kind} {size} seed {seed}: {p['strategy']} (boundary {p['evidence']['boundary_step']}, "
                  f"interference {p['evidence']['interference']:.3f}, {p['seconds']} s)", flush=True)  # fmt: skip
    return pilots


def out_of_sample(args: Any, git: dict[str, Any]) -> dict[str, Any]:
    """The planned out-of-sample check: pilots, then the arms' runs (``--workers`` processes), then the verdict."""
    import torch

    t0 = time.perf_counter()
    setting = OOS_QUICK if args.quick else OOS_FULL
    cfg = setting | OOS_PILOT
    torch.set_num_threads(args.threads * max(1, args.workers))
    pilots = _pilots_and_print(cfg, [(setting["kind"], setting["size"])], setting["seeds"])
    run = {k: setting[k] for k in ("steps", "batch_size", "test_limit")} | {"accelerator": "cpu"}
    todo = [(setting["size"], arm, seed) for arm in OOS_ARMS for seed in setting["seeds"]]
    runs: list[dict[str, Any]] = []

    def record(i: int, r: dict[str, Any]) -> None:
        runs.append({k: v for k, v in r.items() if k != "diagnostics"})
        print(
            f"[{i}/{len(todo)}] {r['arm']} seed {r['seed']}: {100 * r['test_acc']:.2f} % ({r['run_s']} s)", flush=True
        )

    E.run_tasks(V.run_one, todo, run, workers=args.workers, threads=args.threads, record=record)
    values = {a: [next(r["test_acc"] for r in runs if r["arm"] == a and r["seed"] == s) for s in setting["seeds"]]
              for a in OOS_ARMS}  # fmt: skip
    header = C.header(
        "benchmarks/finder_check.py",
        mode="quick" if args.quick else "full",
        seeds=setting["seeds"],
        config=CONFIG,
        git=git,
        run=cfg | {"arms": list(OOS_ARMS), "workers": args.workers, "threads": args.threads},
        sample="out-of-sample",
    )
    return {
        "header": header,
        "summary": holm_verdicts([_row(setting["kind"], setting["size"], pilots, values)])[0],
        "pilots": pilots,
        "runs": sorted(runs, key=lambda r: (r["arm"], r["seed"])),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def resummarise(stem: Path) -> dict[str, Any]:
    """Re-derive the in-sample summary from the saved pilots' evidence with the current rule (no training)."""
    from lit_early_phase.finder import Evidence, decide

    result = json.loads(stem.with_suffix(".json").read_text())
    fields = set(Evidence.__dataclass_fields__)
    for p in result["pilots"]:
        p["strategy"] = decide(Evidence(**{k: v for k, v in p["evidence"].items() if k in fields})).strategy
    settings = [tuple(s) for s in result["header"]["run"]["settings"]]
    result["summary"] = summarise(result["pilots"], settings)
    result["header"]["resummarised"] = (
        f"the recommendations re-derived by the rule at commit {C.git_state()['commit'][:12]} from the saved "
        "pilots' evidence, the verdicts from the sweeps' saved accuracies; the pilots were not rerun."
    )
    C.write_results(stem, result, markdown(result))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(__doc__, quick="smoke run: fewer settings / seeds, short runs", out="output stem")
    parser.add_argument("--out-of-sample", action="store_true", help="the planned out-of-sample check")
    parser.add_argument("--resummarise", action="store_true", help="in-sample: re-derive the summary, no training")
    parser.add_argument("--workers", type=int, default=2, help="--out-of-sample: arms' runs in parallel (0: inline)")
    parser.add_argument("--threads", type=int, default=1, help="--out-of-sample: torch threads per run")
    args = parser.parse_args(argv)
    name = "finder_oos" if args.out_of_sample else "finder_check"
    stem = args.out or C.RESULTS / (f"{name}_quick" if args.quick else name)
    if args.report_only:
        return C.report_only(stem, markdown_oos if args.out_of_sample else markdown)
    if args.resummarise:
        return resummarise(stem)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    C.quiet()
    if args.out_of_sample:
        result = out_of_sample(args, git)
        table = markdown_oos(result)
        C.write_results(stem, result, table)
        print(table)
        return result
    cfg = QUICK if args.quick else FULL
    import torch

    torch.set_num_threads(2)
    pilots = _pilots_and_print(cfg, cfg["settings"], list(range(cfg["seeds"])))
    run = {k: v for k, v in cfg.items() if k != "settings"} | {"settings": [list(s) for s in cfg["settings"]]}
    result = {
        "header": C.header(
            "benchmarks/finder_check.py",
            mode="quick" if args.quick else "full",
            seeds=list(range(cfg["seeds"])),
            config=CONFIG,
            git=git,
            run=run,
            sample="in-sample",
        ),
        "summary": summarise(pilots, cfg["settings"]),
        "pilots": pilots,
    }
    table = markdown(result)
    C.write_results(stem, result, table)
    print(table)
    return result


if __name__ == "__main__":
    main()
