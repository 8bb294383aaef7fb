"""The bad-input catalogue: every case is one `error:` line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture()
def place(tmp_path, monkeypatch):
    """A working folder holding a good photo, a painting, two tiny photos, a broken YAML file and a plain file."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save("ok.png")
    Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save("painting.png")
    Image.new("RGB", (1, 1)).save("tiny.png")
    Image.new("RGB", (3, 5)).save("t35.png")
    (tmp_path / "bad.yaml").write_text("steps: [1, 2\n")
    (tmp_path / "steps_true.yaml").write_text("steps: true\n")
    (tmp_path / "cpu_maybe.yaml").write_text('cpu: "maybe"\n')
    (tmp_path / "styles_string.yaml").write_text("styles: painting.jpg\n")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "notaclip.mp4").write_text("not a clip")
    (tmp_path / "tinydir").mkdir()
    Image.new("RGB", (1, 1)).save(tmp_path / "tinydir" / "tiny.png")
    _weights_files(tmp_path)
    _broken_run(tmp_path / "broken_run")
    return tmp_path


def _weights_files(folder):
    """Weights that cannot be used: NaN weights (style and diffusion), a malformed card, no card."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from stylenorm.checkpoints import save_model, shipped_weights
    from stylenorm.style.net import TransformerNet

    net = TransformerNet().state_dict()
    net["conv1.conv.bias"] = torch.full_like(net["conv1.conv.bias"], float("nan"))
    save_model(folder / "nan_style.safetensors", net, {"kind": "style", "architecture": "TransformerNet"})
    mnist = load_file(str(shipped_weights("mnist")))
    with safe_open(str(shipped_weights("mnist")), "pt") as f:
        metadata = f.metadata()
    name = next(k for k, v in mnist.items() if v.dtype.is_floating_point)
    save_file({**mnist, name: torch.full_like(mnist[name], float("nan"))}, str(folder / "nan_mnist.safetensors"), metadata)
    save_file(mnist, str(folder / "badcard.safetensors"))  # its card only beside it, and that is not JSON
    (folder / "badcard.json").write_text("{not json")
    save_file(load_file(str(shipped_weights("styles"))), str(folder / "nocard.safetensors"))


def _broken_run(run_dir):
    """A run directory whose only checkpoint is truncated."""
    checkpoint = run_dir / "checkpoints" / "step_0000002"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"\x10\x00\x00")
    (checkpoint / "state.pt").write_bytes(b"PK\x03\x04 truncated")


CASES = [
    (["stylize", "tiny.png", "-o", "out.png"], "1x1 px; the network needs at least 16 px"),
    (["stylize", "t35.png", "-o", "out.png"], "3x5 px"),
    (["stylize", "ok.png", "--max-size", "1", "-o", "out.png"], "--max-size 1 is below the 16 px"),
    (["stylize", "ok.png", "--device", "tpu", "-o", "out.png"], "unknown device 'tpu'"),
    (["stylize", "ok.png", "--max-pixels", "-1", "-o", "out.png"], "--max-pixels -1 is negative"),
    (["stylize", "ok.png", "-o", "afile/out.png"], "afile is a file, not a folder"),
    (["train-style", "--config", "bad.yaml"], "is not valid YAML at line 2"),
    (["diffusion", "sample", "--nrow", "0", "-o", "out.png"], "--nrow 0 is below 1"),
    (["diffusion", "sample", "-n", "2", "-o", "afile/out.png"], "afile is a file, not a folder"),
    (["diffusion", "train", "--ema-decay", "2", "--steps", "1", "--run-dir", "run"], "ema_decay 2.0 is outside [0, 1)"),
    (["diffusion", "train", "--dropout", "1.5", "--steps", "1", "--run-dir", "run"], "dropout 1.5 is outside [0, 1)"),
    (["diffusion", "train", "--channel-mults", "a,b", "--steps", "1", "--run-dir", "run"], "comma-separated list of integers"),
    (["diffusion", "train", "--attention-resolutions", "5", "--steps", "1", "--run-dir", "run"],
     "[5] are not feature-map sizes of this U-Net; its levels are [28, 14, 7]"),
    (["diffusion", "train-classifier", "--steps", "0", "-o", "c.safetensors"], "--steps 0 is below 1"),
    (["diffusion", "train-classifier", "--steps", "-3", "-o", "c.safetensors"], "--steps -3 is below 1"),
    (["diffusion", "train-classifier", "--holdout", "0", "-o", "c.safetensors"], "--holdout 0 is below 1"),
    (["ablate", "classification", "-o", "afile"], "afile is a file, not a folder"),
    (["bench", "norms", "--quick", "-o", "afile/bench.md"], "afile is a file, not a folder"),
    (["export", "onnx", "--style", "wave", "-o", "afile/m.onnx"], "afile is a file, not a folder"),
    (["stylize", "tinydir", "-o", "out"], "tiny.png is 1x1 px"),
    (["stylize", "notaclip.mp4", "-o", "out.mp4"], "notaclip.mp4 is not a video stylenorm can read"),
    (["stylize", "ok.png", "--style", "nan_style.safetensors", "-o", "out.png"], "nan_style.safetensors holds NaN"),
    (["stylize", "ok.png", "--style", "nocard.safetensors", "-o", "out.png"], "nocard.safetensors has no model card"),
    (["stylize", "ok.png", "--style", "badcard.safetensors", "-o", "out.png"], "badcard.json is not valid JSON"),
    (["train-style", "--steps", "0"], "--steps 0 is below 1"),
    (["train-style", "--batch-size", "0"], "--batch-size 0 is below 1"),
    (["train-style", "--image-size", "0"], "--image-size 0 is below 16"),
    (["train-style", "--config", "steps_true.yaml"], "steps must be an integer, got True"),
    (["train-style", "--config", "cpu_maybe.yaml"], "cpu must be true or false, got 'maybe'"),
    (["train-style", "--config", "styles_string.yaml"], "styles must be a list of paintings"),
    (["train-style", "--style", "ok.png", "--data", "/nonexistent"], "content folder not found: /nonexistent"),
    (["eval-style", "--paintings", "afile", "-o", "ev"], "paintings folder not found: afile"),
    (["add-style", "afile", "--name", "mine"], "afile is not an image"),
    (["diffusion", "sample", "--steps", "0", "-o", "out.png"], "--steps must be at least 1"),
    (["diffusion", "sample", "--guidance", "-1", "-o", "out.png"], "--guidance -1.0 is negative"),
    (["diffusion", "sample", "--sampler", "ddim", "--eta", "-1", "-o", "out.png"], "--eta -1.0 is outside 0..1"),
    (["diffusion", "sample", "--device", "tpu", "-o", "out.png"], "unknown device 'tpu'"),
    (["diffusion", "sample", "--weights", "nan_mnist.safetensors", "-o", "out.png"], "nan_mnist.safetensors holds NaN"),
    (["diffusion", "sample", "--weights", "badcard.safetensors", "-o", "out.png"], "badcard.json is not valid JSON"),
    (["diffusion", "train", "--config", "cpu_maybe.yaml", "--run-dir", "run"], "cpu must be true or false"),
    (["diffusion", "train", "--resume", "broken_run", "--steps", "4"], "checkpoint broken_run/checkpoints/step_0000002 cannot be read"),
    (["diffusion", "export", "broken_run", "-o", "m.safetensors"], "cannot be read"),
    (["diffusion", "export", "broken_run", "-o", "afile/m.safetensors"], "afile is a file, not a folder"),
    (["bench", "stylize", "--quick", "--threads", "-1", "-o", "bench.md"], "--threads -1 is below 1"),
    (["export", "onnx", "--style", "nan_style.safetensors", "-o", "m.onnx"], "nan_style.safetensors holds NaN"),
    # nan and inf: every float option, written by hand or generated from a config, lists included
    (["diffusion", "sample", "--guidance", "nan", "-o", "out.png"], "--guidance nan is not a finite number"),
    (["stylize", "ok.png", "--strength", "inf", "-o", "out.png"], "--strength inf is not a finite number"),
    (["train-style", "--lr", "nan"], "--lr nan is not a finite number"),
    (["diffusion", "train", "--lr", "1e999", "--steps", "1", "--run-dir", "run"], "--lr inf is not a finite number"),
    (["train-style", "--style-scales", "1,nan"], "--style-scales nan is not a finite number"),
    (["ablate", "classification", "--lrs", "0.1,inf", "-o", "ablation"], "--lrs inf is not a finite number"),
    (["stylize", "ok.png", "--style", "wave:nan,udnie:1", "-o", "out.png"], "blend weight nan of 'wave' is not a number from 0 to 100"),
    (["stylize", "ok.png", "--style", "wave:inf,udnie:1", "-o", "out.png"], "blend weight inf of 'wave'"),
    (["stylize", "ok.png", "--style", "wave:1e308,udnie:1", "-o", "out.png"], "blend weight 1e308 of 'wave'"),
    (["stylize", "ok.png", "--tile-size", "-1", "-o", "out.png"], "--tile-size -1 is below 64 px"),
    (["stylize", "ok.png", "--tile-size", "3", "-o", "out.png"], "--tile-size 3 is below 64 px"),
    (["stylize", "ok.png", "--style", "", "-o", "out.png"], "--style is empty"),
    # add-style: every option checked before the VGG16 download or any work; 0 is not "the default"
    (["add-style", "painting.png", "--name", "mine", "--steps", "0"], "--steps 0 is below 1"),
    (["add-style", "painting.png", "--name", "mine", "--lr", "0"], "--lr 0.0 must be positive"),
    (["diffusion", "export", "nothere", "-o", "m.safetensors"],
     "no checkpoint in nothere; pass the run folder of a diffusion train run"),
    # --vgg-format is checked also where no VGG16 is loaded; a file that is no VGG16 is named as such
    (["stylize", "ok.png", "--vgg-format", "banana", "-o", "out.png"], "--vgg-format 'banana' is not a VGG16 format"),
    (["add-style", "painting.png", "--name", "mine", "--vgg-format", "banana"], "--vgg-format 'banana'"),
    (["train-style", "--vgg-format", "banana"], "--vgg-format 'banana' is not a VGG16 format"),
    (["stylize", "ok.png", "--style", "painting.png", "--iterations", "1", "--vgg-weights", "nocard.safetensors",
      "-o", "out.png"], "nocard.safetensors is not a VGG16: it lacks the conv keys 0.weight"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_error_line_and_writes_nothing(place, run, args, message, user_data_folder):
    from stylenorm.checkpoints import WEIGHTS_DIR

    def files():
        return {p: p.read_bytes() for folder in (place, WEIGHTS_DIR, user_data_folder)
                for p in folder.rglob("*") if p.is_file()}

    before, folders = files(), sorted(p for p in place.rglob("*") if p.is_dir())
    result = run(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    # no output, no temporary file, inputs and shipped files unchanged
    assert files() == before and sorted(p for p in place.rglob("*") if p.is_dir()) == folders


def test_one_bad_photo_among_several_does_not_stop_the_others(place, run):
    result = run("stylize", "tiny.png", "ok.png", "-o", "out")
    assert result.returncode == 2
    assert "tiny.png is 1x1 px" in result.stderr and "1 of the inputs failed" in result.stderr
    assert [p.name for p in (place / "out").iterdir()] == ["ok_starry_night.png"]


def test_an_unknown_ablation_task_is_a_usage_error_naming_it(place, run):
    result = run("ablate", "nonsense", "-o", "ablation")
    assert result.returncode == 2 and "No such command 'nonsense'" in result.stderr
    assert not (place / "ablation").exists()
