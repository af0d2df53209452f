"""The ViT sweep and the finder check run end to end in their quick modes (structure, not numbers)."""

from __future__ import annotations

import json

from test_benchmarks_quick import NEEDS_FASHION_MNIST, ROOT, _finish, _start

pytestmark = [NEEDS_FASHION_MNIST]  # two scripts of several trainings each (~22 s on 2 quiet cores)


def test_vit_period_and_finder_check_quick(tmp_path):
    vit_out, finder_out = tmp_path / "vit_period_quick", tmp_path / "finder_check_quick"
    procs = [
        _start(ROOT / "benchmarks" / "vit_period.py", vit_out, "--workers", "0", "--threads", "1"),
        _start(ROOT / "benchmarks" / "finder_check.py", finder_out),
    ]
    for p in procs:
        _finish(p)
    vit = json.loads(vit_out.with_suffix(".json").read_text())
    assert vit["header"]["mode"] == "quick" and vit["header"]["arms"] == ["mixup", "pause_metric", "pause_10"]
    runs = {(r["arm"], r["seed"]): r for r in vit["runs"]}
    assert len(runs) == 6 and runs[("pause_10", 0)]["boundary_step"] == 3  # 10 % of 30 steps
    # the diagnostics ran in the two arms that carry them, at their interval (25 steps)
    assert [h["step"] for h in runs[("mixup", 0)]["diagnostics"] if "diagnostics/interference" in h] == [25.0]
    assert runs[("pause_10", 0)]["diagnostics"] is None
    assert vit_out.with_suffix(".png").stat().st_size > 0
    finder = json.loads(finder_out.with_suffix(".json").read_text())
    assert [(r["kind"], r["size"]) for r in finder["summary"]] == [("resnet", 2000), ("vit", 2000)]
    for pilot in finder["pilots"]:
        assert pilot["strategy"] in ("mixup_pause", "alpha_boost", "high_loss_removal", "none")
        assert pilot["evidence"]["planned_steps"] in (1000, 600)
