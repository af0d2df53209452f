"""`lit-early-phase` / `python -m lit_early_phase`: the dispatcher on top of LightningCLI, `find` and `dashboard`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lit_early_phase.__main__ import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def test_python_dash_m_prints_the_help_of_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "lit_early_phase", "--help"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = " ".join(done.stdout.split())  # argparse wraps the epilog
    assert out.startswith("usage: lit-early-phase")
    assert all(sub in out for sub in ("fit", "validate", "test", "predict"))
    assert "`recipes`" in out and "`find --config recipe.yaml`" in out and "`dashboard --entity E --project P`" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_dispatched_with_its_own_arguments(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: lit-early-phase {command}")


def test_the_console_script_is_the_dispatcher():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lit-early-phase"] == "lit_early_phase.__main__:main"
