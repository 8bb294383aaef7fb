"""The trainer contract: every task trained by training.fit learns, resumes exactly, stops cleanly
on a non-finite loss with its last checkpoint intact, and refuses to resume into another model."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from stylenorm.checkpoints import load_training_state
from stylenorm.errors import StylenormError
from stylenorm.training import FitConfig, NonFiniteLossError, fit

sys.path.insert(0, str(Path(__file__).parent / "style"))  # the style tests' tiny VGG and photos
sys.path.insert(0, str(Path(__file__).parent / "diffusion"))
from diffusion_testlib import tiny_train_config  # noqa: E402
from style_testlib import make_tiny_vgg, smooth_photo  # noqa: E402


@pytest.fixture(scope="module")
def style_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("style")
    (root / "content").mkdir()
    for i in range(6):
        Image.fromarray(smooth_photo(40 + 4 * i, 48, i)).save(root / "content" / f"photo{i}.png")
    y, x = np.mgrid[0:64, 0:64]
    pattern = ((np.sin(x / 2) + np.cos(y / 3)) * 60 + 128).clip(0, 255).astype(np.uint8)
    Image.fromarray(np.stack([pattern, 255 - pattern, np.roll(pattern, 7, axis=1)], -1)).save(root / "stripes.png")
    return {"content": root / "content", "style": root / "stripes.png", "vgg": make_tiny_vgg(root / "vgg.safetensors")}


def style_task(files, change):
    from stylenorm.style.config import StyleTrainConfig
    from stylenorm.style.task import StyleTask

    return StyleTask(StyleTrainConfig(**{
        "styles": [str(files["style"])], "data": str(files["content"]), "vgg_weights": str(files["vgg"]), "image_size": 32,
        "style_size": 48, "batch_size": 2, "style_weight": 10.0, "preview_images": [], **change})), 1e-2


def diffusion_task(files, change):
    from stylenorm.diffusion.task import DiffusionTask

    return DiffusionTask(tiny_train_config(Path("unused"), dropout=0.0, **change)), 2e-3


def classifier_task(files, change):
    from stylenorm.diffusion.classifier import ClassifierTask
    from stylenorm.diffusion.config import ClassifierConfig

    return ClassifierTask(ClassifierConfig(**{"holdout": 500, "batch_size": 32, **change})), 3e-3


def classification_task(files, change):
    from stylenorm.ablation.classification_task import ClassificationTask
    from stylenorm.ablation.presets import get_preset

    # no warm-up and 4x the rate: a 4-wide network learns visibly within a few dozen steps
    preset = replace(get_preset("classification", "small"), images=400, test_images=4600, width=4, epochs=2,
                     warmup_epochs=0)
    return ClassificationTask(preset, change.get("norm", "bn"), 16, 0, lr_scale=4.0), None  # lr: the task's


# each task, and an option that a resume cannot change
TASKS = {
    "style": (style_task, {"norm": "gn8"}),
    "diffusion": (diffusion_task, {"norm": "ln"}),
    "classifier": (classifier_task, {"holdout": 400}),  # no architecture options: its split, then
    "classification": (classification_task, {"norm": "gn2"}),
}


def run(name, files, run_dir, steps, *, lr=None, change=None, **options):
    make, _ = TASKS[name]
    task, task_lr = make(files, change or {})
    lr = lr or task_lr or task.lr
    options = {"checkpoint_every": 2, "ema_decay": 0.9 if name == "diffusion" else None, **options}
    config = FitConfig(steps=steps, lr=lr, run_dir=run_dir, seed=1, cpu=True, progress=False, **options)
    return fit(task, config)


def step_losses(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.fixture
def files(style_files, one_thread):
    return style_files


@pytest.mark.parametrize("name", TASKS)
def test_the_loss_goes_down(name, files, tmp_path):
    history = run(name, files, None, 24).history
    losses = [h[("total" if name == "style" else "loss")] for h in history if "seconds" in h]
    assert np.mean(losses[-6:]) < 0.9 * np.mean(losses[:6]), losses



@pytest.mark.parametrize("name", TASKS)
def test_every_step_trains_in_train_mode_after_evaluations_and_checkpoints(name, files, tmp_path, monkeypatch):
    make, _ = TASKS[name]
    task, task_lr = make(files, {})
    modes, real_step, real_evaluate = [], task.training_step, task.evaluate

    def training_step(model, indices, micro_step):
        modes.append(all(m.training for m in model.modules()))
        return real_step(model, indices, micro_step)

    def evaluate(model, step):
        scores = real_evaluate(model, step)
        model.eval()  # whatever a task's scoring leaves behind
        return scores

    monkeypatch.setattr(task, "training_step", training_step)
    monkeypatch.setattr(task, "evaluate", evaluate)
    fit(task, FitConfig(steps=5, lr=task_lr or task.lr, run_dir=tmp_path, seed=1, cpu=True, progress=False,
                        eval_every=2, checkpoint_every=3))
    assert modes == [True] * 5

@pytest.mark.parametrize("name", TASKS)
def test_resume_continues_exactly_like_an_uninterrupted_run(name, files, tmp_path):
    straight = run(name, files, tmp_path / "straight", 4)
    run(name, files, tmp_path / "split", 2)
    torch.manual_seed(12345)  # the caller's RNG must not matter
    resumed = run(name, files, tmp_path / "split", 4, resume=tmp_path / "split")
    for a, b in ((straight.model, resumed.model), (straight.ema, resumed.ema)):
        if a is None:
            continue
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key
    assert step_losses(straight.history) == step_losses(resumed.history)
    assert resumed.card["training"]["steps"] == 4


@pytest.mark.parametrize("name", TASKS)
def test_a_non_finite_loss_stops_with_the_last_checkpoint_intact(name, files, tmp_path):
    run(name, files, tmp_path, 2)
    last = tmp_path / "checkpoints" / "step_0000002"
    before = {p.name: p.read_bytes() for p in last.iterdir()}
    # an infinite learning rate (resumed with --lr, which overrides the checkpoint's) breaks the weights
    with pytest.raises(NonFiniteLossError, match="last checkpoint was left intact"):
        run(name, files, tmp_path, 6, lr=float("inf"), resume=tmp_path, checkpoint_every=1,
            output=tmp_path / "model.safetensors")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000002"]
    assert {p.name: p.read_bytes() for p in last.iterdir()} == before
    model, _, _ = load_training_state(last)
    assert all(torch.isfinite(v).all() for v in model.values() if v.dtype.is_floating_point)
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("name", TASKS)
def test_resume_into_another_model_is_refused(name, files, tmp_path):
    run(name, files, tmp_path, 2)
    option, value = next(iter(TASKS[name][1].items()))
    with pytest.raises(StylenormError, match=f"trained with {option}="):
        run(name, files, tmp_path, 4, resume=tmp_path, change={option: value})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000002"]


def test_lr_on_resume_overrides_the_checkpoint(files, tmp_path):
    run("classifier", files, tmp_path, 2)
    resumed = run("classifier", files, tmp_path, 3, lr=1e-4, resume=tmp_path)
    _, _, state = load_training_state(tmp_path / "checkpoints" / "step_0000003")
    assert state["scheduler"]["base_lrs"] == [1e-4] and resumed.card["training"]["lr"] == 1e-4
    group = state["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 1e-4 and 0 < group["lr"] <= 1e-4  # the cosine schedule kept its shape


def test_the_exported_model_is_the_returned_one(files, tmp_path):
    result = run("diffusion", files, tmp_path, 2, output=tmp_path / "model.safetensors")
    assert result.output == tmp_path / "model.safetensors"
    exported = load_file(str(result.output))
    for key, value in result.ema.state_dict().items():  # the EMA weights are what diffusion ships
        assert torch.equal(exported[key], value), key


def test_a_style_resume_with_another_painting_of_the_same_name_is_refused(files, tmp_path):
    run("style", files, tmp_path / "run", 2)
    other = tmp_path / "other" / files["style"].name  # same file name, other picture
    other.parent.mkdir()
    Image.open(files["style"]).transpose(Image.Transpose.ROTATE_90).save(other)
    with pytest.raises(StylenormError, match="style_image_sha256"):
        run("style", files, tmp_path / "run", 4, resume=tmp_path / "run", change={"styles": [str(other)]})


def test_a_classifier_resume_writes_into_the_run_it_was_given(files, tmp_path):
    from stylenorm.diffusion.classifier import train_digit_classifier
    from stylenorm.diffusion.config import ClassifierConfig

    first = ClassifierConfig(holdout=400, batch_size=32, steps=2, run_dir=str(tmp_path / "first"), checkpoint_every=2,
                             output=str(tmp_path / "c.safetensors"))
    train_digit_classifier(first)
    (tmp_path / "first").rename(tmp_path / "moved")
    train_digit_classifier(replace(first, steps=4, run_dir=None, resume=str(tmp_path / "moved")))
    assert not (tmp_path / "first").exists()
    assert sorted(p.name for p in (tmp_path / "moved" / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]


@pytest.mark.parametrize("native, warned", [(False, True), (True, False)])
def test_bf16_on_a_cpu_without_native_bfloat16_warns_and_names_the_fix(monkeypatch, capsys, native, warned):
    from stylenorm import training

    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native)
    training.make_accelerator("bf16", cpu=True)
    err = capsys.readouterr().err
    assert ("warning: this CPU has no native bfloat16" in err and "--mixed-precision no" in err) == warned
