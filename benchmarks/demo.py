"""The README demo, measured: wall time, peak memory, where the period ended and the final validation accuracy.

Runs exactly what ``make demo`` runs after set-up (``lit-early-phase fit --config demo_fashion_mnist``)
as a child process, ``--repeats`` times, and reads the figures from what it prints: the callback's boundary line
and its end-of-fit summary. Logs go to a temporary folder. Run it on a quiet machine: the time is the figure.

    python benchmarks/demo.py                 # full: 2 repeats -> benchmarks/results/demo.{json,md}
    python benchmarks/demo.py --quick         # 30 steps on 2,000 images -> a temporary folder (smoke test)
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
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
    "src/lit_early_phase/recipes/demo_fashion_mnist.yaml",
    "src/lit_early_phase/cli.py",
    "src/lit_early_phase/__main__.py",
    "src/lit_early_phase/reporting",
    "benchmarks/demo.py",
)

RECIPE = "demo_fashion_mnist"  # a packaged recipe, by name (`lit-early-phase recipes`)
CLI = Path(sys.executable).with_name("lit-early-phase")
QUICK_ARGS = ["--trainer.max_steps", "30", "--trainer.limit_val_batches", "4", "--data.train_subset", "2000"]
BOUNDARY = re.compile(r"Enlightenment period ended at step (\d+) \(epoch (\d+)\): (.*?)\. \w+ switched")
SUMMARY = re.compile(r"Enlightenment period: (?:ended at step \d+ \(epoch \d+\); .*?|still running .*?)\. Final: (.*)$")


def parse(output: str) -> dict[str, Any]:
    """The boundary step, epoch and reason and the final metrics from the demo's printed lines."""
    found: dict[str, Any] = {"boundary_step": None, "boundary_epoch": None, "reason": None, "final": {}}
    if match := BOUNDARY.search(output):
        found.update(boundary_step=int(match[1]), boundary_epoch=int(match[2]), reason=match[3])
    for line in output.splitlines():
        if match := SUMMARY.search(line):
            found["final"] = {k: float(v) for k, v in (kv.split("=") for kv in match[1].split(", "))}
    return found


def run_once(extra: list[str], root: Path) -> dict[str, Any]:
    """One demo run in a child process: wall time, the child's peak RSS and the parsed figures."""
    cmd = [str(CLI), "fit", "--config", RECIPE, "--trainer.logger.init_args.save_dir", str(root), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=C.ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    output = proc.stdout + proc.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "wall_s": round(wall, 1),
        # ru_maxrss of children is the largest child so far: exact for the first run, an upper bound after
        "peak_rss_mb": round(peak / 1024) if peak > before else None,
        **parse(output),
        "last_lines": output.strip().splitlines()[-2:],
    }


def markdown(result: dict[str, Any]) -> str:
    """The report."""
    h, runs = result["header"], result["runs"]
    walls = [r["wall_s"] for r in runs]
    lines = [
        f"# The README demo ({h['mode']} run)",
        "",
        *C.header_markdown(h),
        f"- Command: `lit-early-phase fit --config {h['config']['recipe']}` {' '.join(h['extra_args'])}, "
        f"{len(runs)} run(s) one after the other, environment already set up (no install time).",
        f"- Load average (1 min) during the runs: min {result['load']['min']:.2f}, max {result['load']['max']:.2f}.",
        "",
        "| run | wall time | peak RSS MB | boundary step (epoch) | reason | final val/acc | val/loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        f = r["final"]
        lines.append(
            f"| {i} | {r['wall_s'] // 60:.0f} min {r['wall_s'] % 60:.0f} s | {r['peak_rss_mb'] or '-'} | "
            f"{r['boundary_step']} ({r['boundary_epoch']}) | {r['reason']} | {f.get('val/acc', float('nan')):.4f} | "
            f"{f.get('val/loss', float('nan')):.4f} |"
        )
    lines += [
        "",
        f"Wall time {statistics.fmean(walls):.0f} ± {statistics.stdev(walls) if len(walls) > 1 else 0:.0f} s "
        f"(mean ± std over {len(walls)} runs). The last lines it printed (run 1):",
        "",
        "```",
        *runs[0]["last_lines"],
        "```",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.arg_parser(
        __doc__, quick="30 steps on 2,000 images (a smoke test)", out="output stem (default results/demo; quick: tmp)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="demo runs (default 2; quick 1)")
    args = parser.parse_args(argv)
    if args.report_only:
        return C.report_only(args.out or C.RESULTS / "demo", markdown)
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    extra = QUICK_ARGS if args.quick else []
    repeats = args.repeats or (1 if args.quick else 2)
    out = args.out or (Path(tempfile.mkdtemp()) / "demo_quick" if args.quick else C.RESULTS / "demo")
    result: dict[str, Any] = {
        "header": C.header(
            "benchmarks/demo.py",
            mode=mode,
            seeds=[0],
            config={"recipe": RECIPE},
            git=git,
            extra_args=extra,
            repeats=repeats,
        ),
        "runs": [],
    }
    sampler = C.LoadSampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            run = run_once(extra, Path(tmp) / str(i))
            result["runs"].append(run)
            print(f"run {i + 1}/{repeats}: {run['wall_s']} s, boundary {run['boundary_step']}, {run['final']}")
    result["load"] = sampler.stop()
    report = markdown(result)
    C.write_results(out, result, report)
    print(report)
    return result


if __name__ == "__main__":
    main()
