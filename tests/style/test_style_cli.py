"""The style commands end to end, through the installed entry point."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "stylenorm" / "data" / "demo"
SHIPPED = REPO / "weights" / "styles.safetensors"
SHIPPED_STYLES = ["starry_night", "wave", "composition_vii", "the_scream", "udnie"]


def run_installed(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process (slow: used once, for the headline use)."""
    return subprocess.run([sys.executable, "-m", "stylenorm", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                          "STYLENORM_HOME": os.environ["STYLENORM_HOME"]})


def test_styles_lists_the_shipped_styles(run):
    result = run("styles")
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[0].replace(" (default)", "") for line in result.stdout.splitlines()]
    assert names == SHIPPED_STYLES
    assert "(default)" in result.stdout.splitlines()[0]


def test_stylize_a_bundled_demo_photo_with_the_shipped_style(tmp_path, run):
    src = tmp_path / "chelsea.png"
    shutil.copy(DEMO / "chelsea.png", src)
    result = run_installed("stylize", str(src), "--max-size", "200")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "chelsea_starry_night.png"
    original = np.asarray(Image.open(src).convert("RGB").resize((200, 133)), dtype=np.float32)
    stylized = np.asarray(Image.open(out), dtype=np.float32)
    assert stylized.shape == original.shape
    assert np.abs(stylized - original).mean() > 10  # it changed the picture
    blend = run("stylize", str(src), "--style", "wave:0.5,udnie:0.5", "--max-size", "120", "-o", str(tmp_path / "b.jpg"))
    assert blend.returncode == 0, blend.stderr
    assert Image.open(tmp_path / "b.jpg").size == (120, 80)


def test_train_two_steps_then_stylize_with_the_result(tmp_path, tiny_vgg, tiny_data, run):
    weights = tmp_path / "mine.safetensors"
    result = run("train-style", "--style", str(tiny_data["style_a"]), "--data", str(tiny_data["content"]),
                 "--steps", "2", "--image-size", "32", "--style-size", "48", "--vgg-weights", str(tiny_vgg),
                 "--output", str(weights), "--run-dir", str(tmp_path / "run"), "--checkpoint-every", "1",
                 "--preview-every", "0", "--name", "mine")
    assert result.returncode == 0, result.stderr
    assert weights.is_file() and weights.with_suffix(".json").is_file()
    photo = tmp_path / "p.jpg"
    Image.fromarray((np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)).save(photo)
    stylized = run("stylize", str(photo), "--style", str(weights))
    assert stylized.returncode == 0, stylized.stderr
    assert Image.open(tmp_path / "p_mine.jpg").size == (40, 30)  # named as --name named the style


def test_bad_inputs_exit_non_zero_with_one_line(tmp_path, run):
    (tmp_path / "notes.jpg").write_text("hello")
    torch.save({"a": torch.zeros(1)}, tmp_path / "pickled.safetensors")
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(good)
    cases = [
        (["stylize", str(tmp_path / "missing.jpg")], "not found"),
        (["stylize", str(tmp_path / "notes.jpg")], "not an image"),
        (["stylize", str(good), "--style", str(tmp_path / "pickled.safetensors")], "pickle"),
        (["stylize", str(good), "--style", "no_such_style"], "unknown style no_such_style"),
        (["train-style", "--style", str(tmp_path / "x.jpg"), "--data", str(tmp_path)], "style image not found"),
    ]
    if not torch.cuda.is_available():
        cases.append((["stylize", str(good), "--device", "cuda"], "--device cpu"))
    for args, expected in cases:
        result = run(*args)
        assert result.returncode != 0, args
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors and expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jpg", "ok.png", "pickled.safetensors"]


def test_batch_with_a_bad_file_writes_the_others_and_fails_at_the_end(tmp_path, run):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(folder / "a.png")
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 50)
    Image.fromarray(np.full((24, 24, 3), 160, np.uint8)).save(folder / "c.png")
    result = run("stylize", str(folder), "-o", str(tmp_path / "out"), "--style", "wave")
    assert result.returncode == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_wave.png", "c_wave.png"]
    assert "b.jpg" in result.stderr and "1 of the inputs failed" in result.stderr


def _photo(path, seed=0):
    from style_testlib import smooth_photo

    Image.fromarray(smooth_photo(40, 48, seed)).save(path)
    return path


def test_a_blend_whose_weights_do_not_sum_to_one_says_it_was_renormalised(tmp_path, run):
    src = _photo(tmp_path / "photo.png")
    r = run("stylize", str(src), "--style", "wave:0.7,udnie:0.7", "-o", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    assert "note: blend weights 0.7+0.7 renormalised to 0.5/0.5" in r.stderr.splitlines()
    assert (tmp_path / "out.png").exists()
    r = run("stylize", str(src), "--style", "wave:0.7,udnie:0.3", "-o", str(tmp_path / "out2.png"))
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr


def test_an_input_is_never_overwritten(tmp_path, run):
    src = _photo(tmp_path / "photo.png")
    before = src.read_bytes()
    r = run("stylize", str(src), "-o", str(src))
    assert r.returncode == 2 and "would overwrite the input" in r.stderr and src.read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(src)
    r = run("stylize", str(src), "-o", str(link))
    assert r.returncode == 2 and src.read_bytes() == before
    hard = tmp_path / "hard.png"
    os.link(src, hard)
    r = run("stylize", str(src), "-o", str(hard))
    assert r.returncode == 2 and src.read_bytes() == before


def test_same_names_get_distinct_outputs_and_a_file_output_needs_one_input(tmp_path, run):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _photo(a / "x.png", 1), _photo(b / "x.png", 2)
    out = tmp_path / "out"
    r = run("stylize", str(a), str(b), "-o", str(out), "--max-size", "32")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x_starry_night.png", "x_starry_night_2.png"]
    r = run("stylize", str(a / "x.png"), str(b / "x.png"), "-o", str(tmp_path / "result.jpg"))
    assert r.returncode == 2 and "pass a folder" in r.stderr and not (tmp_path / "result.jpg").exists()


def test_rerunning_on_a_folder_skips_its_earlier_outputs(tmp_path, run):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "p.jpg")
    for _ in range(2):
        r = run("stylize", str(folder), "--max-size", "32")
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["p.jpg", "p_starry_night.jpg"]
    assert "skipped 1 earlier" in r.stdout


def test_a_default_output_name_never_replaces_a_picture_the_user_made(tmp_path, run):
    from stylenorm.images import made_by_stylenorm

    src = _photo(tmp_path / "robin.jpg")
    theirs, ours = _photo(tmp_path / "robin_starry_night.jpg", 5), tmp_path / "robin_starry_night_2.jpg"
    before = theirs.read_bytes()
    for _ in range(2):  # the second run replaces its own earlier output, not the user's picture
        r = run("stylize", str(src), "--max-size", "32")
        assert r.returncode == 0, r.stderr
        assert f"note: {theirs} is not a stylenorm output, so it is kept; writing {ours}" in r.stderr
        assert f"wrote {ours}" in r.stdout and theirs.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name, theirs.name, ours.name]
    assert made_by_stylenorm(ours)
    r = run("stylize", str(src), "--max-size", "32", "-o", str(theirs))  # -o replaces, as asked
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr
    assert made_by_stylenorm(theirs)


def test_tiling_a_network_that_cannot_be_tiled_is_one_error_line(tmp_path, run):
    from stylenorm.checkpoints import save_model
    from stylenorm.style.net import TransformerNet, net_config

    net = TransformerNet("gn8")
    weights = save_model(tmp_path / "gn.safetensors", net.state_dict(), {**net_config(net), "kind": "style"})
    src = _photo(tmp_path / "p.png")
    r = run("stylize", str(src), "--style", str(weights), "--tile-size", "64", "-o", str(tmp_path / "out.png"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "--max-size" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("norm", ["gn8", "ln", "rms"])
@pytest.mark.parametrize("tiles", ["--tile-size", "a photo over the one-pass limit"])
def test_a_network_that_cannot_be_tiled_names_its_norm_and_the_way_out(tmp_path, run, monkeypatch, norm, tiles):
    from stylenorm.checkpoints import save_model
    from stylenorm.norms import norm_kind
    from stylenorm.style import stylize
    from stylenorm.style.net import TransformerNet, net_config

    net = TransformerNet(norm)
    weights = save_model(tmp_path / f"{norm}.safetensors", net.state_dict(), {**net_config(net), "kind": "style"})
    src = _photo(tmp_path / "p.png")  # 40 x 48 px
    options = ["--tile-size", "64"]
    if tiles != "--tile-size":
        monkeypatch.setattr(stylize, "TILE_ABOVE_PIXELS", 100)  # tiles chosen automatically (at any precision)
        options = []
    r = run("stylize", str(src), "--style", str(weights), *options, "-o", str(tmp_path / "out.png"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and r.stderr.startswith("error: layer norm1.layer is a ")
    assert norm_kind(norm).title in r.stderr and "--tile-size 0" in r.stderr and "--max-size" in r.stderr
    assert not (tmp_path / "out.png").exists()
    monkeypatch.undo()
    assert run("stylize", str(src), "--style", str(weights), "--tile-size", "0", "-o", str(tmp_path / "out.png")).returncode == 0


def test_a_trained_style_is_found_by_name_and_never_replaces_a_shipped_one(tmp_path, tiny_vgg, tiny_data, run,
                                                                          user_data_folder, monkeypatch):
    from stylenorm.checkpoints import WEIGHTS_DIR

    train = ["train-style", "--style", str(tiny_data["style_a"]), "--data", str(tiny_data["content"]),
             "--vgg-weights", str(tiny_vgg), "--image-size", "32", "--style-size", "48", "--steps", "1",
             "--checkpoint-every", "0", "--preview-every", "0", "--run-dir", str(tmp_path / "run")]
    shipped = (WEIGHTS_DIR / "styles.safetensors").read_bytes()
    r = run(*train, "--name", "styles", "-o", str(WEIGHTS_DIR / "styles.safetensors"))
    assert r.returncode == 2 and "shipped" in r.stderr
    assert (WEIGHTS_DIR / "styles.safetensors").read_bytes() == shipped
    r = run(*train, "--name", "mine")
    assert r.returncode == 0, r.stderr
    assert (user_data_folder / "weights" / "mine.safetensors").is_file()
    listed = run("styles")
    assert "mine" in listed.stdout  # a one-style network is listed by its --name
    src = _photo(tmp_path / "p.png")
    r = run("stylize", str(src), "--style", "mine", "-o", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.png").is_file()
    monkeypatch.chdir(tmp_path)  # the file name alone finds the user's weights too, as the README says
    r = run("stylize", src.name, "--style", "mine.safetensors")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p_mine.png").is_file()  # named after --name


def test_a_trained_model_is_replaced_only_with_force_or_by_its_own_resume(tmp_path, tiny_vgg, tiny_data, run,
                                                                         user_data_folder):
    train = ["train-style", "--style", str(tiny_data["style_a"]), "--data", str(tiny_data["content"]),
             "--vgg-weights", str(tiny_vgg), "--image-size", "32", "--style-size", "48", "--checkpoint-every", "1",
             "--preview-every", "0"]  # the default --name: style
    assert run(*train, "--steps", "1", "--run-dir", str(tmp_path / "first")).returncode == 0
    weights = user_data_folder / "weights" / "style.safetensors"
    first = weights.read_bytes(), weights.with_suffix(".json").read_bytes()
    # another run of the name (from another folder, say, so runs/style/style holds no checkpoints)
    r = run(*train, "--steps", "1", "--run-dir", str(tmp_path / "second"))
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert f"error: {weights} already exists; pass --force to replace it or -o FILE / another --name" in r.stderr
    assert (weights.read_bytes(), weights.with_suffix(".json").read_bytes()) == first
    assert not (tmp_path / "second").exists()  # refused before any work
    # its own --resume continues the model; --force replaces it
    r = run(*train, "--steps", "2", "--resume", str(tmp_path / "first"))
    assert r.returncode == 0, r.stderr
    assert json.loads(weights.with_suffix(".json").read_text())["steps"] == 2
    r = run(*train, "--steps", "1", "--run-dir", str(tmp_path / "second"), "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads(weights.with_suffix(".json").read_text())["steps"] == 1


def test_train_style_help_names_the_user_data_folder_not_data(run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one help line per option: no word cut short
    r = run("train-style", "--help")
    assert r.returncode == 0
    for option in ("--name", "--output"):
        line = next(line for line in r.stdout.splitlines() if f" {option} " in line)
        assert "the weights folder of $STYLENORM_HOME, else of ~/.local/share/stylenorm" in line, line
    assert "data folder" not in r.stdout


@pytest.mark.parametrize("option,value", [("--steps", "0"), ("--batch-size", "0"), ("--image-size", "0"),
                                          ("--lr", "-1"), ("--style-weight", "-2")])
def test_train_style_checks_ranges_before_any_work(tmp_path, tiny_data, run, option, value):
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--data", str(tiny_data["content"]), option, value,
            "-o", str(tmp_path / "w.safetensors"), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and option in r.stderr
    assert not (tmp_path / "w.safetensors").exists() and not (tmp_path / "run").exists()


def test_resume_with_another_painting_or_norm_is_refused(tmp_path, tiny_vgg, tiny_data, run):
    common = ["--data", str(tiny_data["content"]), "--vgg-weights", str(tiny_vgg), "--image-size", "32",
              "--style-size", "48", "--checkpoint-every", "1", "--preview-every", "0", "--run-dir", str(tmp_path / "run"),
              "-o", str(tmp_path / "w.safetensors")]
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--steps", "1", *common)
    assert r.returncode == 0, r.stderr
    r = run("train-style", "--style", str(tiny_data["style_b"]), "--steps", "2", "--resume", str(tmp_path / "run"), *common)
    assert r.returncode == 2 and "styles" in r.stderr
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--norm", "gn8", "--steps", "2",
            "--resume", str(tmp_path / "run"), *common)
    assert r.returncode == 2 and "norm" in r.stderr


def test_resume_alone_continues_with_the_options_the_run_was_started_with(tmp_path, tiny_vgg, tiny_data, run):
    weights = tmp_path / "w.safetensors"
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--data", str(tiny_data["content"]),
            "--vgg-weights", str(tiny_vgg), "--image-size", "32", "--style-size", "48", "--checkpoint-every", "1",
            "--preview-every", "0", "--steps", "1", "--run-dir", str(tmp_path / "run"), "-o", str(weights))
    assert r.returncode == 0, r.stderr
    r = run("train-style", "--resume", str(tmp_path / "run"), "--steps", "2")  # painting, data, VGG, -o remembered
    assert r.returncode == 0, r.stderr
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["steps"] == 2 and card["image_size"] == 32


@pytest.mark.parametrize("where,message", [("nothere", "nothere does not exist; pass the run folder"),
                                           ("empty", "empty is not a run folder (no checkpoints/step_* in it)")])
def test_resume_of_a_folder_that_is_not_a_run_says_so(tmp_path, run, monkeypatch, where, message):
    monkeypatch.chdir(tmp_path)
    Path("empty").mkdir()
    r = run("train-style", "--resume", where)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and message in r.stderr, r.stderr


def test_ctrl_c_names_the_last_checkpoint_and_the_resume_command(tmp_path, tiny_vgg, tiny_data):
    from stylenorm.checkpoints import saved_checkpoints

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stylenorm", "train-style", "--style", str(tiny_data["style_a"]), "--data",
         str(tiny_data["content"]), "--vgg-weights", str(tiny_vgg), "--image-size", "32", "--style-size", "48",
         "--steps", "100000", "--checkpoint-every", "1", "--preview-every", "0", "--run-dir", str(run_dir),
         "-o", str(tmp_path / "w.safetensors")],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(saved_checkpoints(run_dir)) < 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the training wrote no checkpoints"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted at step \d+; the last checkpoint is step \d+ in {re.escape(str(run_dir))}; "
                        rf"continue with: stylenorm train-style --resume {re.escape(str(run_dir))}", last), last
    assert "Traceback" not in err


def test_init_weights_start_from_a_trained_network(tmp_path, tiny_vgg, tiny_data):
    from stylenorm.checkpoints import load_model, save_model
    from stylenorm.config import build_config
    from stylenorm.style.config import StyleTrainConfig
    from stylenorm.style.net import TransformerNet, net_config
    from stylenorm.style.train import train_style

    torch.manual_seed(5)
    start = TransformerNet("in", 2)
    init = save_model(tmp_path / "init.safetensors", start.state_dict(), {**net_config(start), "kind": "style"})
    cfg = build_config(StyleTrainConfig, None, dict(
        styles=[str(tiny_data["style_a"]), str(tiny_data["style_b"])], data=str(tiny_data["content"]),
        vgg_weights=str(tiny_vgg), image_size=32, style_size=48, steps=1, lr=1e-9, checkpoint_every=0,
        preview_every=0, half=False, init_weights=str(init), style_scales=[1.0, 0.5],
        output=str(tmp_path / "out.safetensors"), run_dir=str(tmp_path / "run")))
    tensors, card = load_model(train_style(cfg, progress=False))
    for name, value in start.state_dict().items():
        torch.testing.assert_close(tensors[name], value, atol=1e-6, rtol=0)  # lr 1e-9: still the init
    assert card["init_weights"] == "init.safetensors" and card["style_scales"] == [1.0, 0.5]
