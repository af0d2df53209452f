"""The finder against the outcomes: ``EnlightenmentFinder``'s recommendation for each setting of the effect sweeps
vs the arm that actually won there.

Settings: the ResNet sweep (``effect.py``: timm ``test_resnet``, 1000 steps, 2k / 8k / 32k images) and the ViT
sweep (``vit_period.py``: small ViT, 600 steps, 2k / 32k images), each model built exactly as its sweep builds it
(same optimizer and cosine schedule over the planned run). Per setting and seed, the finder's pilot (a quarter
of the planned run at most, diagnostics every 5 steps) gives a recommendation; the outcome comes from the sweep's
saved results (``results/effect.json``, ``results/vit_period.json``): the best arm by mean test accuracy and
whether any Mixup Pause arm beat always-Mixup, resolved after Holm over the sweep's comparisons (the raw 95 %
interval is shown too). The rule's thresholds were set from
these same sweeps, so agreement here is in-sample: it shows the rule encodes what was measured, not that it
generalises.

    python benchmarks/finder_check.py            # ~10 min on 2 cores -> results/finder_check.*
    python benchmarks/finder_check.py --quick    # smoke run (1 seed, 2 settings, short pilots)
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
import _comparisons as K
import effect as E
import vit_period as V

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
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
    """The finder on one setting and seed."""
    import lightning as L

    from lit_early_phase.finder import EnlightenmentFinder

    steps = (E.FULL if kind == "resnet" else V.FULL)["steps"]
    L.seed_everything(seed, verbose=False)
    model = _model(kind, steps)
    dm = E._datamodule(size, 128, None, False)
    t0 = time.perf_counter()
    finder = EnlightenmentFinder(pilot_fraction=cfg["pilot_fraction"], every_n_steps=cfg["every_n_steps"])
    rec = finder.find(model, dm, planned_steps=steps)
    return {"kind": kind, "size": size, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)} | rec.to_dict()


def holm_outcome(kind: str, size: int) -> dict[str, Any]:
    """The pause arms that gained over always-Mixup after Holm over the sweep's comparisons, and the best pause's
    Holm interval (read from the sweep's saved results, ``_comparisons.result_holm``)."""
    stem, _ = SOURCES[kind]
    result = json.loads((C.RESULTS / f"{stem}.json").read_text())
    holm = K.result_holm(result)
    pauses = {a: x for (z, a), x in holm.items() if z == size and a.startswith("pause")}
    top = max(pauses, key=lambda a: pauses[a]["mean_diff"])
    return {
        "best_pause_ci_holm": pauses[top]["ci_holm"],
        "holm_m": len(holm),
        "resolved_pause_gains_holm": sorted(a for a, x in pauses.items() if C.holm_sign(x) == "+"),
    }


def outcome(kind: str, size: int) -> dict[str, Any]:
    """The sweep's result for a setting: best arm, and whether a pause arm resolved a gain over always-Mixup
    (raw 95 % interval above 0: ``resolved_pause_gains``; after Holm: ``resolved_pause_gains_holm``)."""
    stem, module = SOURCES[kind]
    result = json.loads((C.RESULTS / f"{stem}.json").read_text())
    row = next(r for r in result["summary"]["per_size"] if r["size"] == size)
    best = max(row["arms"], key=lambda a: row["arms"][a]["mean"])
    diffs = row["vs_" + result["header"]["reference"]]
    pauses = {a: d for a, d in diffs.items() if a.startswith("pause")}
    resolved = sorted(a for a, d in pauses.items() if d["sign"] == "+")
    top = max(pauses, key=lambda a: pauses[a]["mean_diff"])
    return {
        "source": f"benchmarks/results/{stem}.json",
        "commit": result["header"]["git"]["commit"],
        "best_arm": best,
        "best_label": module.LABELS[best],
        "best_pause": top,
        "best_pause_label": module.LABELS[top],
        "best_pause_diff": pauses[top]["mean_diff"],
        "best_pause_ci95": pauses[top]["ci95"],
        "resolved_pause_gains": resolved,
    } | holm_outcome(kind, size)


def agrees(strategy: str, out: dict[str, Any], gains: str = "resolved_pause_gains_holm") -> bool:
    """A recommendation agrees when it says "too short" and no pause gained, or "Mixup Pause" and one did (a gain
    resolved after Holm over the sweep's comparisons; ``gains="resolved_pause_gains"``: a raw interval above 0)."""
    gained = bool(out[gains])
    return (strategy == "mixup_pause" and gained) or (strategy == "too_short" and not gained)


def with_holm(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row's outcome with its Holm fields; results saved before they existed get the same computation
    from the sweep's saved results."""
    o = row["outcome"]
    return o if "resolved_pause_gains_holm" in o else o | holm_outcome(row["kind"], row["size"])


def agreement(result: dict[str, Any]) -> dict[str, int]:
    """How many of the ``settings`` agree, a gain resolved after Holm (``after_holm``) or a raw interval above 0
    (``raw``)."""
    rows = [(r["recommendation"], with_holm(r)) for r in result["summary"]]
    return {
        "settings": len(rows),
        "after_holm": sum(agrees(s, o) for s, o in rows),
        "raw": sum(agrees(s, o, "resolved_pause_gains") for s, o in rows),
    }


def summarise(pilots: list[dict[str, Any]], settings: list[tuple[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for kind, size in settings:
        ps = [p for p in pilots if p["kind"] == kind and p["size"] == size]
        votes = Counter(p["strategy"] for p in ps)
        out = outcome(kind, size)
        ev = [p["evidence"] for p in ps]
        rows.append(
            {
                "kind": kind,
                "size": size,
                "votes": dict(votes),
                "recommendation": votes.most_common(1)[0][0],
                "boundary_steps": [e["boundary_step"] for e in ev],
                "period_share": C.mean_std([e["period_share"] for e in ev]),
                "interference": C.mean_std([e["interference"] for e in ev]),
                "revival": C.mean_std([e["revival"] for e in ev]),
                "pilot_s": C.mean_std([p["seconds"] for p in ps]),
                "outcome": out,
                "agrees": agrees(votes.most_common(1)[0][0], out),
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The recommendation per setting against the sweep's outcome; a gain counts when resolved after Holm."""
    h = result["header"]
    lines = [
        f"# The finder's recommendation vs the sweeps' outcome ({h['mode']} run; exploratory, in-sample)",
        "",
        *C.header_markdown(h),
        f"- Pilot: at most {100 * h['run']['pilot_fraction']:.0f} % of the planned run, diagnostics every "
        f"{h['run']['every_n_steps']} steps, {len(h['seeds'])} seed(s) per setting; the rule of "
        "`lit_early_phase.finder.rule` (docs/diagnostics.md). Outcomes read from the sweeps' saved results "
        "(commit of each named in its file). In-sample: the thresholds were set from these sweeps.",
        "- Exploratory. A pause gain counts when it is resolved after Holm over its sweep's comparisons (adjusted "
        "p < 0.05; the Holm interval is shown beside the raw 95 % one); the raw column lists the arms whose raw "
        "interval lies above 0.",
        "",
        "| model | train images | period share (finder) | interference in period | revival | recommendation "
        "(votes) | best arm in the sweep | best pause vs always Mixup (pp) | pause gain, raw interval | pause gain "
        "resolved after Holm | agrees |",
        "|---|---:|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for r in result["summary"]:
        o = with_holm(r)
        votes = ", ".join(f"{k} {v}" for k, v in sorted(r["votes"].items()))
        lo, hi = o["best_pause_ci95"]
        hlo, hhi = o["best_pause_ci_holm"]
        lines.append(
            f"| {r['kind']} | {r['size']:,} | {100 * r['period_share'][0]:.1f} ± {100 * r['period_share'][1]:.1f} % | "
            f"{r['interference'][0]:.3f} ± {r['interference'][1]:.3f} | {r['revival'][0]:+.4f} | "
            f"{r['recommendation']} ({votes}) | {o['best_label']} | {o['best_pause_label']}: "
            f"{C.signed_pp(o['best_pause_diff'])} [{C.signed_pp(lo)}, {C.signed_pp(hi)}] Holm "
            f"[{C.signed_pp(hlo)}, {C.signed_pp(hhi)}] (m = {o['holm_m']}) | "
            f"{', '.join(o['resolved_pause_gains']) or 'none'} | {', '.join(o['resolved_pause_gains_holm']) or 'none'} "
            f"| {'yes' if agrees(r['recommendation'], o) else 'no'} |"
        )
    mean_s = np.mean([p["seconds"] for p in result["pilots"]])
    lines += ["", f"Cost: {len(result['pilots'])} pilots, {mean_s:.0f} s each on average."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(__doc__, quick="smoke run: 2 settings, 1 seed, short pilots", out="output stem")
    args = parser.parse_args(argv)
    stem = "finder_check_quick" if args.quick else "finder_check"
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / stem, markdown)
    git = C.require_committed_code("quick" if args.quick else "full", allow_dirty=args.allow_dirty)
    cfg = QUICK if args.quick else FULL
    import torch

    torch.set_num_threads(2)
    C.quiet()
    pilots = []
    for kind, size in cfg["settings"]:
        for seed in range(cfg["seeds"]):
            pilots.append(pilot(kind, size, seed, cfg))
            p = pilots[-1]
            print(f"{kind} {size} seed {seed}: {p['strategy']} (boundary {p['evidence']['boundary_step']}, "
                  f"interference {p['evidence']['interference']:.3f}, {p['seconds']} s)", flush=True)  # fmt: skip
    run = {k: v for k, v in cfg.items() if k != "settings"} | {"settings": [list(s) for s in cfg["settings"]]}
    result = {
        "header": C.header(
            "benchmarks/finder_check.py",
            mode="quick" if args.quick else "full",
            seeds=list(range(cfg["seeds"])),
            config=CONFIG,
            git=git,
            run=run,
        ),
        "summary": summarise(pilots, cfg["settings"]),
        "pilots": pilots,
    }
    table = markdown(result)
    C.write_results(args.out or C.RESULTS / stem, result, table)
    print(table)
    return result


if __name__ == "__main__":
    main()
