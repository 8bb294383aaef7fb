"""Any painting: `stylize --style painting.jpg` (optimization) and `add-style` (gamma/beta of one new style)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from style_testlib import smooth_photo, two_style_net

from stylenorm.checkpoints import load_model, save_model
from stylenorm.images import to_tensor
from stylenorm.style import optimize as opt
from stylenorm.style.net import net_config


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_photo(48, 64, 3)).save(path)
    return path


@pytest.fixture(scope="module")
def loss_vgg(tiny_vgg):
    return opt.load_loss_network(tiny_vgg)[0]


def test_optimization_lowers_the_loss_and_keeps_the_photo_size(loss_vgg, tiny_data, photo, one_thread):
    x = to_tensor(np.asarray(Image.open(photo).resize((128, 128))))
    history: list[dict] = []
    options = opt.OptimizeOptions(iterations=8, coarse_share=0.5, style_weight=1e7)  # the random VGG's Gram scale
    y = opt.optimize_image(x, tiny_data["style_a"], loss_vgg, options, history=history)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert len(history) == 8 and [h["side"] for h in history] == [64] * 4 + [128] * 4  # coarse, then full size
    full = [h["total"] for h in history if h["side"] == 128]
    assert full[-1] < full[0]
    assert (y - x).abs().mean() > 0.01  # the photo was changed


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_both_optimizers_lower_the_style_loss(loss_vgg, tiny_data, photo, optimizer, one_thread):
    x = to_tensor(np.asarray(Image.open(photo)))
    history: list[dict] = []
    opt.optimize_image(x, tiny_data["style_b"], loss_vgg, opt.OptimizeOptions(iterations=6, coarse_share=0, optimizer=optimizer),
                       history=history)
    assert history[-1]["style"] < history[0]["style"]


def test_preserve_color_keeps_the_photo_chroma(loss_vgg, tiny_data, photo, one_thread):
    x = to_tensor(np.asarray(Image.open(photo)))
    # a modest style weight: the random test VGG's Gram errors have no calibrated scale, and a
    # picture pushed into 0/1 saturation cannot take the photo's chroma back
    y = opt.optimize_image(x, tiny_data["style_a"], loss_vgg,
                           opt.OptimizeOptions(iterations=2, preserve_color=True, style_weight=1e3))
    cb = lambda t: -0.168736 * t[:, 0] - 0.331264 * t[:, 1] + 0.5 * t[:, 2]  # noqa: E731
    assert torch.allclose(cb(y), cb(x), atol=0.02)


def test_a_painting_file_is_told_from_weights(tmp_path, tiny_data):
    assert opt.is_painting_file(tiny_data["style_a"])
    weights = tmp_path / "w.bin"  # a safetensors file, whatever its name
    save_model(weights, {"a": torch.zeros(1)}, {})
    assert not opt.is_painting_file(weights.with_suffix(".safetensors"))
    assert not opt.is_painting_file(tmp_path / "missing.jpg")


def test_stylize_with_a_painting_through_the_cli(tmp_path, tiny_vgg, tiny_data, photo, run, one_thread):
    r = run("stylize", str(photo), "--style", str(tiny_data["style_a"]), "--iterations", "3",
            "--vgg-weights", str(tiny_vgg))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "photo_stripes.png"
    assert out.is_file()
    assert Image.open(out).size == Image.open(photo).size
    assert np.abs(np.asarray(Image.open(out), float) - np.asarray(Image.open(photo), float)).mean() > 2
    r = run("stylize", str(photo), "--style", str(tiny_data["style_a"]), "--iterations", "2", "--max-size", "28",
            "-o", str(tmp_path / "small.jpg"), "--vgg-weights", str(tiny_vgg))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "small.jpg").size == (28, 21)


def _painting(path, size):
    Image.fromarray(smooth_photo(size[1], size[0], 7)).save(path)
    return path


@pytest.mark.parametrize("case", ["not_an_image", "tiny", "missing_vgg", "bad_iterations"])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, tiny_vgg, photo, run, case):
    painting = tmp_path / "painting.jpg"
    vgg = str(tiny_vgg)
    extra: list[str] = []
    if case == "not_an_image":
        painting.write_text("not a picture at all")
        expect = "not an image"
    elif case == "tiny":
        _painting(painting, (40, 30))
        expect = "at least 64 px"
    elif case == "missing_vgg":
        _painting(painting, (80, 80))
        vgg = str(tmp_path / "nowhere.safetensors")
        expect = "--vgg-weights"
    else:
        _painting(painting, (80, 80))
        extra = ["--iterations", "0"]
        expect = "--iterations"
    before = sorted(tmp_path.iterdir())
    r = run("stylize", str(photo), "--style", str(painting), "--vgg-weights", vgg, *extra)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], r.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_a_missing_vgg_names_both_sources(monkeypatch, tmp_path, photo, run):
    from stylenorm.style import loss

    def offline(**_):
        raise OSError("no network")

    from torchvision.models import VGG16_Weights

    monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1, "get_state_dict", offline, raising=False)
    painting = _painting(tmp_path / "painting.png", (80, 80))
    r = run("stylize", str(photo), "--style", str(painting))
    assert r.returncode == 2
    assert "torch cache" in r.stderr and "--vgg-weights" in r.stderr and loss.TORCHVISION_URL_NAME in r.stderr


def test_a_huge_painting_is_resized_with_a_note(monkeypatch, tmp_path, tiny_vgg, photo, run, one_thread):
    monkeypatch.setattr(opt, "LARGE_PAINTING_SIDE", 100)
    painting = _painting(tmp_path / "big.png", (160, 120))
    r = run("stylize", str(photo), "--style", str(painting), "--iterations", "1", "--vgg-weights", str(tiny_vgg))
    assert r.returncode == 0, r.stderr
    assert "note: the painting big.png is 160x120 px" in r.stderr
    assert (tmp_path / "photo_big.png").is_file()


# ---------------------------------------------------------------- add-style
@pytest.fixture()
def base(tmp_path):
    """A two-style conditional-IN network with a card like the shipped one's, at test sizes."""
    net = two_style_net()
    card = {**net_config(net), "kind": "style", "styles": ["alpha", "beta"], "style_images": ["a.jpg", "b.jpg"],
            "steps": 1, "image_size": 32, "style_size": 48, "style_scales": [1.0, 0.5],
            "loss_weights": {"content": 1.0, "style": 0.8, "tv": 1.0}}
    return save_model(tmp_path / "base" / "styles.safetensors", {k: v.half() for k, v in net.state_dict().items()}, card)


def test_add_style_trains_with_the_base_networks_recipe(tmp_path, tiny_data, base):
    """A new style must be painted at the base network's scale and with its loss terms, or it
    looks unlike the styles it is blended with (photo_size and the layout weight included)."""
    from stylenorm.style.add_style import add_style_config

    tensors, card = load_model(base)
    card.update(photo_size=64, loss="gatys", loss_weights={"content": 5.0, "style": 1e6, "tv": 0.1, "layout": 0.1})
    rebased = save_model(tmp_path / "rebased" / "styles.safetensors", tensors, card)
    cfg = add_style_config(tiny_data["style_a"], "mine", base=rebased, output=tmp_path / "mine.safetensors")
    assert (cfg.photo_size, cfg.image_size, cfg.style_size, cfg.loss) == (64, 32, 48, "gatys")
    assert (cfg.content_weight, cfg.style_weight, cfg.tv_weight, cfg.layout_weight) == (5.0, 1e6, 0.1, 0.1)
    plain = add_style_config(tiny_data["style_a"], "mine", base=base, output=tmp_path / "mine.safetensors")
    assert plain.photo_size is None and plain.layout_weight == 0.0  # cards from before these existed


def _add(run, tiny_vgg, tiny_data, base, *extra):
    return run("add-style", str(tiny_data["style_a"]), "--name", "mine", "--base", str(base), "--data",
               str(tiny_data["content"]), "--vgg-weights", str(tiny_vgg), *extra)


def test_add_style_trains_only_the_new_gamma_beta(tmp_path, tiny_vgg, tiny_data, base, run, user_data_folder, photo,
                                                  one_thread):
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "2")
    assert r.returncode == 0, r.stderr
    out = user_data_folder / "weights" / "mine.safetensors"
    assert out.is_file() and out.with_suffix(".json").is_file()
    before, _ = load_model(base)
    after, card = load_model(out)
    assert card["styles"] == ["alpha", "beta", "mine"] and card["num_styles"] == 3 and card["default_style"] == "mine"
    assert card["added_styles"] == ["mine"] and card["steps"] == 2
    changed = False
    for key, old in before.items():
        new = after[key]
        if new.shape != old.shape:  # a gamma/beta table: the base rows are exactly the base's
            assert torch.equal(new[:2], old)
            changed |= not torch.allclose(new[2].float(), old.float().mean(0), atol=1e-3)
        else:
            assert torch.equal(new, old), key  # every shared weight is frozen
    assert changed  # the new style was trained
    # stylize, styles and blends find it by name
    r = run("styles")
    assert "mine\tmine.safetensors" in r.stdout
    r = run("stylize", str(photo), "--style", "mine:0.5,alpha:0.5", "-o", str(tmp_path / "blend.png"))
    assert r.returncode == 0, r.stderr
    r = run("stylize", str(photo), "--style", "mine", "-o", str(tmp_path / "mine.png"))
    assert r.returncode == 0, r.stderr
    from stylenorm.style.stylize import resolve_style

    assert resolve_style("mine").weights == [0.0, 0.0, 1.0]


def test_add_style_resumes(tiny_vgg, tiny_data, base, run, user_data_folder, one_thread):
    assert _add(run, tiny_vgg, tiny_data, base, "--steps", "1").returncode == 0
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "2", "--resume")
    assert r.returncode == 0, r.stderr
    card = json.loads((user_data_folder / "weights" / "mine.json").read_text())
    assert card["steps"] == 2 and card["styles"] == ["alpha", "beta", "mine"]


def test_add_style_never_replaces_a_model_silently(tmp_path, tiny_vgg, tiny_data, base, run, user_data_folder,
                                                  one_thread):
    theirs = save_model(tmp_path / "theirs.safetensors", load_model(base)[0], {"kind": "style"})
    before = theirs.read_bytes(), theirs.with_suffix(".json").read_bytes()
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "1", "-o", str(theirs))
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr
    assert f"{theirs} already exists; pass --force to replace it" in r.stderr
    assert (theirs.read_bytes(), theirs.with_suffix(".json").read_bytes()) == before
    assert not (user_data_folder / "runs").exists()  # refused before any work
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "1", "-o", str(theirs), "--force")
    assert r.returncode == 0, r.stderr
    assert load_model(theirs)[1]["styles"] == ["alpha", "beta", "mine"]
    # the default place: a second add-style of one name says so (its --resume goes on: test_add_style_resumes),
    # and --force starts the name's run afresh (the first one left its checkpoints in it)
    assert _add(run, tiny_vgg, tiny_data, base, "--steps", "1").returncode == 0
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "1")
    mine = user_data_folder / "weights" / "mine.safetensors"
    assert r.returncode == 2 and f"{mine} already exists; pass --force" in r.stderr, r.stderr
    r = _add(run, tiny_vgg, tiny_data, base, "--steps", "1", "--force")
    assert r.returncode == 0, r.stderr
    assert load_model(mine)[1]["styles"] == ["alpha", "beta", "mine"]


@pytest.mark.parametrize("case", ["shipped_name", "base_name", "bad_name", "not_an_image"])
def test_add_style_refuses_bad_input(tmp_path, tiny_vgg, tiny_data, base, run, user_data_folder, case):
    painting, name = tiny_data["style_a"], "mine"
    if case == "shipped_name":
        name = "starry_night"
    elif case == "base_name":
        name = "alpha"
    elif case == "bad_name":
        name = "a:b"
    else:
        painting = tmp_path / "notes.jpg"
        painting.write_text("hello")
    r = run("add-style", str(painting), "--name", name, "--base", str(base), "--data", str(tiny_data["content"]),
            "--vgg-weights", str(tiny_vgg), "--steps", "1")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert not (user_data_folder / "weights").exists() and not (user_data_folder / "runs").exists()
