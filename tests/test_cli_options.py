"""The command line's options: generated from the config dataclasses, one name per concept, old spellings kept."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from stylenorm import cli
from stylenorm.cli.options import option_name
from stylenorm.diffusion.config import ClassifierConfig, DiffusionTrainConfig
from stylenorm.style.config import StyleTrainConfig


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    """Help panels as wide as every option's names (at 80 columns rich cuts them)."""
    monkeypatch.setenv("COLUMNS", "250")


CONFIG_COMMANDS = [
    (("train-style",), StyleTrainConfig),
    (("diffusion", "train"), DiffusionTrainConfig),
    (("diffusion", "train-classifier"), ClassifierConfig),
]


def click_command(*path: str):
    command = typer.main.get_command(cli.app)
    for name in path:
        command = command.commands[name]
    return command


def every_command(command=None, path=()):
    command = command or typer.main.get_command(cli.app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


@pytest.mark.parametrize("path, cls", CONFIG_COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_config_field_is_an_option_with_the_fields_help(path, cls):
    options = {opt: param for param in click_command(*path).params for opt in (*param.opts, *param.secondary_opts)}
    for field in dataclasses.fields(cls):
        param = options.get(option_name(field))
        assert param is not None, f"{cls.__name__}.{field.name} has no option {option_name(field)}"
        assert not param.hidden and param.help == field.metadata["help"]
        own = "--" + field.name.replace("_", "-")
        assert own in options, f"{cls.__name__}.{field.name} is not reachable as {own}"


@pytest.mark.parametrize("path", list(every_command()), ids=lambda p: " ".join(p) or "stylenorm")
def test_help_shows_flags_without_a_value_type(run, path):
    result = run(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert "--help" in result.stdout and "<bool>" not in result.stdout


def test_boolean_options_read_as_pairs(run):
    help_text = run("diffusion", "train", "--help").stdout
    assert "--no-cpu" in help_text and "--no-class-conditional" in help_text and "--unconditional" in help_text
    assert "--no-half" in run("train-style", "--help").stdout


def capture(monkeypatch, module: str, function: str, result):
    """Replace the trainer a command calls; returns the list that receives its config."""
    configs = []

    def fake(config, *args, **kwargs):
        configs.append(config)
        return result

    monkeypatch.setattr(f"{module}.{function}", fake)
    return configs


@pytest.mark.parametrize("args", [
    ["--grad-accum", "3", "--run-dir", "R"],
    ["--gradient-accumulation-steps", "3", "--output-dir", "R"],  # the old spellings, hidden
    ["--gradient-accumulation-steps", "3", "-o", "R"],
])
def test_diffusion_train_options_and_their_old_spellings(run, monkeypatch, args):
    configs = capture(monkeypatch, "stylenorm.diffusion.train", "train", "R/model.safetensors")
    result = run("diffusion", "train", "-c", "diffusion_mnist", *args, "--unconditional")
    assert result.returncode == 0, result.stderr
    cfg = configs[0]
    assert (cfg.gradient_accumulation_steps, cfg.output_dir, cfg.class_conditional) == (3, "R", False)
    assert cfg.lr == 0.001  # from the preset


def test_old_spellings_are_hidden_from_help(run):
    help_text = run("diffusion", "train", "--help").stdout
    assert "--grad-accum" in help_text and "--run-dir" in help_text
    assert "--gradient-accumulation-steps" not in help_text and "--output-dir" not in help_text


def test_train_style_lists_flags_and_preset_override(run, monkeypatch, tmp_path):
    configs = capture(monkeypatch, "stylenorm.style.train", "train_style", tmp_path / "w.safetensors")
    result = run("train-style", "-c", "style_shipped", "--style", "a.jpg", "--style", "b.jpg",
                 "--style-scales", "1,0.5", "--style-layers", "relu1_2,relu2_2", "--grad-clip", "0.5",
                 "--no-cpu", "--no-half", "--preview-image", "p.png")
    assert result.returncode == 0, result.stderr
    cfg = configs[0]
    assert cfg.styles == ["a.jpg", "b.jpg"] and cfg.style_scales == [1.0, 0.5]
    assert cfg.style_layers == ["relu1_2", "relu2_2"] and cfg.preview_images == ["p.png"]
    assert cfg.max_grad_norm == 0.5 and cfg.cpu is False and cfg.half is False  # the preset said cpu: true
    assert cfg.image_size == 256  # untouched preset values stay


def test_a_fields_own_name_works_where_the_option_is_named_otherwise(run, monkeypatch, tmp_path):
    configs = capture(monkeypatch, "stylenorm.style.train", "train_style", tmp_path / "w.safetensors")
    assert run("train-style", "--max-grad-norm", "2", "--styles", "a.jpg").returncode == 0
    assert configs[0].max_grad_norm == 2.0 and configs[0].styles == ["a.jpg"]


def test_train_classifier_takes_a_config_file_and_threads(run, monkeypatch, tmp_path):
    configs = capture(monkeypatch, "stylenorm.diffusion.classifier", "train_digit_classifier", (tmp_path / "c", 0.5))
    preset = tmp_path / "c.yaml"
    preset.write_text("steps: 7\nlr: 0.01\n")
    result = run("diffusion", "train-classifier", "--config", str(preset), "--threads", "1", "--steps", "9")
    assert result.returncode == 0, result.stderr
    assert (configs[0].steps, configs[0].lr, configs[0].threads) == (9, 0.01, 1)
    assert "on 1000 images" in result.stdout


def test_a_bad_comma_list_is_one_error_line(run):
    result = run("train-style", "--style-scales", "1,big")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --style-scales must be a comma-separated list of numbers, got '1,big'"


def test_a_bad_device_is_one_error_line_before_any_work(run, tmp_path):
    result = run("stylize", str(tmp_path / "missing.jpg"), "--device", "tpu")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown device 'tpu'") and len(result.stderr.strip().splitlines()) == 1
