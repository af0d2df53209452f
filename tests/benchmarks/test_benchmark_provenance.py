"""Benchmark results name the code that produced them: the commit, uncommitted code changes and a hash of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as C  # the benchmark scripts are files, not a package
import bf16_cpu
import demo
import detection_curve
import detection_effect
import detection_overhead
import diagnostics_overhead
import effect
import finder_check
import image_folder_throughput
import llm_hlr
import overhead
import ucr_hlr
import vit_confirmatory
import vit_period

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCRIPTS = {
    "bf16_cpu": bf16_cpu,
    "demo": demo,
    "detection_curve": detection_curve,
    "detection_effect": detection_effect,
    "detection_overhead": detection_overhead,
    "diagnostics_overhead": diagnostics_overhead,
    "effect": effect,
    "finder_check": finder_check,
    "image_folder_throughput": image_folder_throughput,
    "llm_hlr": llm_hlr,
    "overhead": overhead,
    "ucr_hlr": ucr_hlr,
    "vit_confirmatory": vit_confirmatory,
    "vit_period": vit_period,
}

#: results written by another mode of a script: name -> (script, its markdown function)
OTHER_MODES = {"finder_oos": ("finder_check", finder_check.markdown_oos)}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A small git repository shaped like this one, with ``_common.ROOT`` pointing at it."""
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "code.py").write_text("X = 1\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("text\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "bench.py").write_text("print(1)\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(C, "ROOT", tmp_path)
    return tmp_path


def test_code_id_follows_the_code_and_ignores_docs_and_results(repo):
    clean = C.git_state()
    assert clean["dirty"] is False and clean["code_dirty"] is False and len(clean["code_id"]) == 12

    (repo / "docs" / "page.md").write_text("edited\n")
    (repo / "benchmarks" / "results" / "new.json").write_text("{}\n")
    docs_only = C.git_state()
    assert docs_only["dirty"] is True and docs_only["code_dirty"] is False
    assert docs_only["code_id"] == clean["code_id"]

    (repo / "src" / "pkg" / "code.py").write_text("X = 2\n")
    changed = C.git_state()
    assert changed["code_dirty"] is True and changed["code_id"] != clean["code_id"]
    (repo / "src" / "pkg" / "code.py").write_text("X = 1\n")
    assert C.git_state()["code_id"] == clean["code_id"]  # the same code on disk, the same id

    (repo / "src" / "pkg" / "extra.py").write_text("Y = 0\n")  # untracked code counts too
    assert C.git_state()["code_id"] != clean["code_id"]


def test_a_full_run_refuses_uncommitted_code(repo):
    assert C.require_committed_code("full", allow_dirty=False)["code_dirty"] is False
    (repo / "src" / "pkg" / "code.py").write_text("X = 2\n")
    with pytest.raises(SystemExit, match=r"src/pkg/code\.py") as info:
        C.require_committed_code("full", allow_dirty=False)
    assert "--allow-dirty" in str(info.value)
    assert C.require_committed_code("full", allow_dirty=True)["code_dirty"] is True
    assert C.require_committed_code("quick", allow_dirty=False)["code_dirty"] is True


def test_effect_runs_of_other_code_are_not_reused():
    run = {"steps": 30, "batch_size": 64, "test_limit": 1000, "accelerator": "cpu"}
    assert effect.config_id(run, "aaaaaaaaaaaa") == effect.config_id(run, "aaaaaaaaaaaa")
    assert effect.config_id(run, "aaaaaaaaaaaa") != effect.config_id(run, "bbbbbbbbbbbb")


# scripts/gpu_check.sh's outputs (gpu_check_*) come from three scripts: tests/benchmarks/test_gpu_check.py checks them
@pytest.mark.parametrize("name", sorted(p.stem for p in RESULTS.glob("*.json") if not p.stem.startswith("gpu_check_")))
def test_each_saved_table_is_what_its_script_generates_from_the_saved_json(name):
    result = json.loads((RESULTS / f"{name}.json").read_text())
    script, markdown = OTHER_MODES.get(name, (name, SCRIPTS[name].markdown if name in SCRIPTS else None))
    assert result["header"]["script"] == f"benchmarks/{script}.py" and result["header"]["git"]["commit"]
    table = markdown(result)
    assert f"- Git: {result['header']['git']['commit']}" in table  # the table names the commit of the JSON
    assert (RESULTS / f"{name}.md").read_text() == table


def test_the_docs_tables_are_the_generated_tables():
    effect_md, overhead_md = (RESULTS / "effect.md").read_text(), (RESULTS / "overhead.md").read_text()
    # the docs drop the title line (the page has its own headings); the effect section adds the plot
    effect_section = effect_md.split("\n", 1)[1].strip() + "\n\n![effect](../benchmarks/results/effect.png)\n"
    assert C.docs_section(DOCS / "benchmarks.md", "effect") == "\n" + effect_section
    assert C.docs_section(DOCS / "benchmarks.md", "overhead") == "\n" + overhead_md.split("\n", 1)[1].strip() + "\n"
    assert C.docs_section(DOCS / "timeseries.md", "ucr_hlr") == "\n" + (RESULTS / "ucr_hlr.md").read_text()
    confirmatory = (RESULTS / "vit_confirmatory.md").read_text().split("\n", 1)[1].strip()
    assert C.docs_section(DOCS / "benchmarks.md", "vit_confirmatory") == f"\n{confirmatory}\n"
    oos = (RESULTS / "finder_oos.md").read_text().split("\n", 1)[1].strip()
    assert C.docs_section(DOCS / "diagnostics.md", "finder_oos") == f"\n{oos}\n"
    # docs/diagnostics.md: the ViT sweep (with its plot), the finder check and the diagnostics' overhead
    vit = (RESULTS / "vit_period.md").read_text().split("\n", 1)[1].strip()
    assert (
        C.docs_section(DOCS / "diagnostics.md", "vit_period")
        == f"\n{vit}\n\n![vit](../benchmarks/results/vit_period.png)\n"
    )
    for name in ("finder_check", "diagnostics_overhead"):
        table = (RESULTS / f"{name}.md").read_text().split("\n", 1)[1].strip()
        assert C.docs_section(DOCS / "diagnostics.md", name) == f"\n{table}\n", name


def test_report_only_regenerates_the_table_without_measuring(tmp_path, capsys):
    (tmp_path / "demo.json").write_text((RESULTS / "demo.json").read_text())
    demo.main(["--report-only", "--out", str(tmp_path / "demo")])
    assert (tmp_path / "demo.md").read_text() == (RESULTS / "demo.md").read_text()
    assert capsys.readouterr().out.startswith("# The README demo (full run)")
    with pytest.raises(SystemExit, match="does not exist"):
        ucr_hlr.main(["--report-only", "--out", str(tmp_path / "missing")])
