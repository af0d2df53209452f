"""The packaged recipes: listed by name with a line each, found by name on the command line, clear errors."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lit_early_phase
from lit_early_phase import recipes
from lit_early_phase.__main__ import main
from lit_early_phase.cli import build_cli
from lit_early_phase.recipes import description, names, recipe_path, resolve_config, resolve_config_args

FOLDER = Path(recipes.__file__).parent
DEMO = str(FOLDER / "demo_fashion_mnist.yaml")


def test_every_yaml_file_of_the_folder_is_a_recipe_with_a_one_line_description():
    assert names() == sorted(p.stem for p in FOLDER.glob("*.yaml"))
    assert len(names()) >= 4
    for name in names():
        text = recipe_path(name).read_text(encoding="utf-8")
        first = text.splitlines()[0]
        assert first.startswith("# ") and description(name) == first[2:].strip(), name
        assert 20 <= len(description(name)) <= 110, name
        assert isinstance(yaml.safe_load(text), dict), name
        assert "configs/" not in text, f"{name} still names the old configs/ folder"


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--config", "demo_fashion_mnist"],
        ["fit", "--config", "demo_fashion_mnist.yaml"],
        ["fit", "--config", "recipe:demo_fashion_mnist"],
        ["fit", "-c", "demo_fashion_mnist"],
    ],
)
def test_a_recipe_name_becomes_the_packaged_path(argv):
    assert resolve_config_args([*argv, "--trainer.max_steps", "2"]) == [*argv[:2], DEMO, "--trainer.max_steps", "2"]


def test_the_equals_form_and_several_configs():
    argv = ["fit", "--config=recipe:demo_fashion_mnist.yaml", "-c", "ucr_gunpoint_hlr"]
    assert resolve_config_args(argv) == ["fit", f"--config={DEMO}", "-c", str(FOLDER / "ucr_gunpoint_hlr.yaml")]


def test_files_and_inline_yaml_stay_as_given(tmp_path, monkeypatch):
    own = tmp_path / "mine.yaml"
    own.write_text("trainer: {max_steps: 2}\n")
    inline = "{trainer: {max_steps: 2}}"
    argv = ["fit", "--config", str(own), "--config", inline, "--model.name", "demo_fashion_mnist"]
    assert resolve_config_args(argv) == argv
    # a file named like a recipe wins, unless `recipe:` asks for the recipe
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_fashion_mnist").write_text("trainer: {max_steps: 2}\n")
    assert resolve_config("demo_fashion_mnist") == "demo_fashion_mnist"
    assert resolve_config("recipe:demo_fashion_mnist") == DEMO


@pytest.mark.parametrize("value", ["configs/demo_fashion_mnist.yaml", "demo_fashion", "recipe:nope"])
def test_neither_a_file_nor_a_recipe_lists_the_names(value):
    with pytest.raises(ValueError, match="recipe") as error:
        resolve_config_args(["fit", "--config", value])
    assert repr(value) in str(error.value)
    assert all(name in str(error.value) for name in names())


def test_build_cli_runs_a_recipe_by_name(tmp_path):
    cli = build_cli(
        ["--config", "recipe:mnist5k_high_loss_removal", "--trainer.logger", "false",
         f"--trainer.default_root_dir={tmp_path}"],
        run=False,
    )  # fmt: skip
    assert type(cli.datamodule).__name__ == "MNIST5kDataModule"


def test_the_recipes_command_lists_one_line_per_recipe(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == names()
    assert all(line.endswith(description(line.split()[0])) for line in lines)


def test_the_recipes_command_prints_a_path_or_a_recipe(capsys):
    assert recipes.main(["--path", "ucr_gunpoint_hlr"]) == 0
    assert capsys.readouterr().out == f"{FOLDER / 'ucr_gunpoint_hlr.yaml'}\n"
    assert recipes.main(["--show", "recipe:ucr_gunpoint_hlr.yaml"]) == 0
    assert capsys.readouterr().out == (FOLDER / "ucr_gunpoint_hlr.yaml").read_text(encoding="utf-8")


def test_an_unknown_name_exits_2_listing_the_recipes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        recipes.main(["--show", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No recipe named 'nope'" in err and "demo_fashion_mnist" in err


@pytest.mark.parametrize("argv", [["fit", "--help"], ["find", "--help"]])
def test_help_says_how_recipes_are_named(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--config demo_fashion_mnist" in out and "--config recipe:demo_fashion_mnist" in out
    assert "lit-early-phase recipes" in out


def test_the_version_is_the_installed_metadata():
    assert lit_early_phase.__version__ == importlib.metadata.version("lit-early-phase")


def test_the_console_resolves_a_name_from_sys_argv():
    """`args=None` (the console script): the name is resolved in sys.argv, with no warning of a mix-up."""
    done = subprocess.run(
        [sys.executable, "-m", "lit_early_phase", "fit", "--config", "demo_fashion_mnist", "--print_config"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FashionMNISTDataModule" in done.stdout and "args parameter" not in done.stderr


@pytest.mark.parametrize("command", ["fit", "find"])
def test_an_unknown_name_is_a_usage_error_not_a_traceback(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--config", "no_such_recipe"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: --config 'no_such_recipe': no such file, and no packaged recipe of that name" in err
    assert "demo_fashion_mnist" in err and "Traceback" not in err


def test_the_list_piped_into_a_reader_that_leaves_early_ends_quietly():
    # `lit-early-phase recipes | head -1`: the reader closes the pipe; no BrokenPipeError traceback, exit 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "lit_early_phase", "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
