"""Benchmark results name the code that produced them: the commit, uncommitted code changes and a hash of the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common as C  # the benchmark scripts are files, not a package
import effect


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
