"""Every YAML recipe in configs/ loads through the CLI and runs a couple of steps."""

from pathlib import Path

import pytest

from lit_early_phase import EnlightenmentCallback
from lit_early_phase.cli import build_cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_recipe_runs(config, tmp_path):
    cli = build_cli(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run=2",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert cli.trainer.global_step == 2
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback)]
    text = config.read_text()
    assert len(callbacks) == text.count("lit_early_phase.EnlightenmentCallback")
    for cb in callbacks:
        assert cb.strategy is not None  # resolved and checked against the model in setup


def test_bad_strategy_in_yaml_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS[0].parent / "demo_fashion_mnist.yaml").read_text().replace("mixup_pause", "mixup_paws"))
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(bad), "--trainer.fast_dev_run=1"], run=False)


def test_console_script_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--help"])
    assert exit_info.value.code == 0
    assert "--trainer.callbacks" in capsys.readouterr().out
