"""The command line's options: generated from the config dataclasses, one spelling per concept; old config names migrate."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from stylenorm import cli
from stylenorm.cli.options import option_name
from stylenorm.config import LoopSettings, build_config
from stylenorm.diffusion.config import ClassifierConfig, DiffusionTrainConfig, SampleOptions
from stylenorm.style.config import StyleTrainConfig, StylizeOptions
from stylenorm.training import FitConfig


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    """Help panels as wide as every option's names (at 80 columns rich cuts them)."""
    monkeypatch.setenv("COLUMNS", "250")


CONFIG_COMMANDS = [
    (("stylize",), StylizeOptions),
    (("train-style",), StyleTrainConfig),
    (("diffusion", "train"), DiffusionTrainConfig),
    (("diffusion", "sample"), SampleOptions),
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
    assert not [p for p in click_command(*path).params if p.hidden], "one spelling per option: no hidden ones"


LOOP_FIELDS = [f.name for f in dataclasses.fields(LoopSettings)]


@pytest.mark.parametrize("cls", [StyleTrainConfig, DiffusionTrainConfig, ClassifierConfig], ids=lambda c: c.__name__)
def test_every_trainer_takes_the_loop_options_from_one_declaration(cls):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in LOOP_FIELDS:  # the same option and help; only the default may be the trainer's own
        assert fields[name].metadata == LoopSettings.__dataclass_fields__[name].metadata, name
    fit = FitConfig.from_settings(cls(), run_dir="R")
    assert (fit.steps, fit.lr, fit.grad_clip, fit.checkpoint_every) == (cls().steps, cls().lr, cls().grad_clip,
                                                                        cls().checkpoint_every)


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


def test_diffusion_train_options(run, monkeypatch):
    configs = capture(monkeypatch, "stylenorm.diffusion.train", "train", "R/model.safetensors")
    result = run("diffusion", "train", "-c", "diffusion_mnist", "--grad-accum", "3", "--run-dir", "R", "--unconditional")
    assert result.returncode == 0, result.stderr
    cfg = configs[0]
    assert (cfg.grad_accum, cfg.run_dir, cfg.class_conditional) == (3, "R", False)
    assert cfg.lr == 0.001  # from the preset


@pytest.mark.parametrize("old", ["--gradient-accumulation-steps", "--output-dir", "--sample-every", "-o"])
def test_old_spellings_of_the_loop_options_are_gone(run, old):
    result = run("diffusion", "train", old, "3")
    assert result.returncode == 2 and "No such option" in result.stderr
    assert f" {old} " not in run("diffusion", "train", "--help").stdout


def test_a_preset_or_a_checkpoint_with_the_old_field_names_reads_as_todays(tmp_path):
    preset = tmp_path / "old.yaml"
    preset.write_text("gradient_accumulation_steps: 2\noutput_dir: runs/old\nsample_every: 7\nsteps: 3\n")
    cfg = build_config(DiffusionTrainConfig, preset, {})
    assert (cfg.grad_accum, cfg.run_dir, cfg.preview_every, cfg.steps) == (2, "runs/old", 7, 3)
    started = build_config(StyleTrainConfig, None, {"steps": 5}, started_with={"max_grad_norm": 0.5, "steps": 2})
    assert (started.grad_clip, started.steps) == (0.5, 5)  # a run's saved options, today's given ones on top


def test_train_style_lists_flags_and_preset_override(run, monkeypatch, tmp_path):
    configs = capture(monkeypatch, "stylenorm.style.train", "train_style", tmp_path / "w.safetensors")
    result = run("train-style", "-c", "style_shipped", "--style", "a.jpg", "--style", "b.jpg",
                 "--style-scales", "1,0.5", "--style-layers", "relu1_2,relu2_2", "--grad-clip", "0.5",
                 "--no-cpu", "--no-half", "--preview-image", "p.png")
    assert result.returncode == 0, result.stderr
    cfg = configs[0]
    assert cfg.styles == ["a.jpg", "b.jpg"] and cfg.style_scales == [1.0, 0.5]
    assert cfg.style_layers == ["relu1_2", "relu2_2"] and cfg.preview_images == ["p.png"]
    assert cfg.grad_clip == 0.5 and cfg.cpu is False and cfg.half is False  # the preset said cpu: true
    assert cfg.image_size == 256  # untouched preset values stay


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
