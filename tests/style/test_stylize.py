"""Stylizing: style choice and blends, options, alpha, batches, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from style_testlib import smooth_photo, two_style_net

from stylenorm.checkpoints import WeightsError, save_model
from stylenorm.errors import StylenormError
from stylenorm.images import to_tensor
from stylenorm.style import stylize as sty
from stylenorm.style.config import StylizeOptions
from stylenorm.style.dispatch import stylize_many
from stylenorm.style.net import TransformerNet, net_config


@pytest.fixture()
def weights_dir(tmp_path):
    net = two_style_net()
    folder = tmp_path / "weights"
    card = {**net_config(net), "kind": "style", "styles": ["alpha", "beta"], "steps": 1, "image_size": 32}
    save_model(folder / "styles.safetensors", {k: v.half() for k, v in net.state_dict().items()}, card)
    return folder


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.fromarray(smooth_photo(36, 44, 1)).save(path, quality=95)
    return path


def test_default_name_blend_and_path(weights_dir):
    default = sty.resolve_style(None, weights_dir=weights_dir)
    assert default.label == "alpha" and default.weights == [1.0, 0.0]
    assert sty.resolve_style("beta", weights_dir=weights_dir).weights == [0.0, 1.0]
    blend = sty.resolve_style("alpha:0.7,beta:0.3", weights_dir=weights_dir)
    assert blend.weights == pytest.approx([0.7, 0.3]) and blend.label == "alpha70_beta30"
    # weights that do not sum to one are normalised
    assert sty.resolve_style("alpha:2,beta:2", weights_dir=weights_dir).weights == pytest.approx([0.5, 0.5])
    by_path = sty.resolve_style(str(weights_dir / "styles.safetensors"))
    assert by_path.model.names == ["alpha", "beta"]
    within = sty.resolve_style("beta", weights=weights_dir / "styles.safetensors")
    assert within.weights == [0.0, 1.0]


def test_blend_weights_that_do_not_sum_to_one_are_renormalised_with_a_note(weights_dir):
    assert sty.resolve_style("alpha:0.7,beta:0.3", weights_dir=weights_dir).note is None
    assert sty.resolve_style("alpha", weights_dir=weights_dir).note is None
    choice = sty.resolve_style("alpha:0.7,beta:0.7", weights_dir=weights_dir)
    assert choice.weights == pytest.approx([0.5, 0.5])
    assert choice.note == "blend weights 0.7+0.7 renormalised to 0.5/0.5"
    assert "--strength" in sty.resolve_style("alpha:0.5", weights_dir=weights_dir).note  # not half the style


@pytest.mark.parametrize("bad", ["alpha:nan,beta:1", "alpha:inf,beta:1", "alpha:-inf,beta:1", "alpha:1e308,beta:1e308"])
def test_blend_weights_must_be_finite_shares(weights_dir, bad):
    with pytest.raises(StylenormError, match="is not a number from 0 to 100"):
        sty.resolve_style(bad, weights_dir=weights_dir)


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_style_is_refused_not_taken_for_the_default(weights_dir, empty):
    with pytest.raises(StylenormError, match="--style is empty"):
        sty.resolve_style(empty, weights_dir=weights_dir)


@pytest.mark.parametrize("bad", [-1, 3, 63])
def test_tile_sizes_below_the_minimum_are_refused_before_any_work(weights_dir, bad):
    with pytest.raises(StylenormError, match=f"--tile-size {bad} is below 64 px"):
        sty.check_photo_options(StylizeOptions(tile_size=bad))
    with pytest.raises(StylenormError, match=f"--tile-size {bad} is below 64 px"):
        sty.stylize_tensor(sty.resolve_style("alpha", weights_dir=weights_dir), torch.rand(1, 3, 32, 32), tile_size=bad)
    for fine in (None, 0, 64):
        sty.check_photo_options(StylizeOptions(tile_size=fine))


def test_listing_shipped_styles(weights_dir):
    assert [name for name, _, _ in sty.list_shipped_styles(weights_dir)] == ["alpha", "beta"]


@pytest.mark.parametrize("bad", ["gamma", "alpha:0.5,gamma:0.5", "alpha:x"])
def test_unknown_style_or_bad_blend(weights_dir, bad):
    with pytest.raises(StylenormError) as info:
        sty.resolve_style(bad, weights_dir=weights_dir)
    assert "\n" not in str(info.value)


def test_no_shipped_weights(tmp_path):
    with pytest.raises(WeightsError, match="--style PATH"):
        sty.resolve_style(None, weights_dir=tmp_path)


def test_blend_output_lies_between(weights_dir):
    x = torch.rand(1, 3, 32, 32)
    a = sty.stylize_tensor(sty.resolve_style("alpha", weights_dir=weights_dir), x)
    b = sty.stylize_tensor(sty.resolve_style("beta", weights_dir=weights_dir), x)
    mid = sty.stylize_tensor(sty.resolve_style("alpha:0.5,beta:0.5", weights_dir=weights_dir), x)
    assert not torch.allclose(mid, a, atol=1e-3) and not torch.allclose(mid, b, atol=1e-3)
    assert mid.min() >= 0 and mid.max() <= 1


def test_strength_and_preserve_color(weights_dir):
    choice = sty.resolve_style("alpha", weights_dir=weights_dir)
    x = to_tensor(smooth_photo(32, 32, 2))
    torch.testing.assert_close(sty.stylize_tensor(choice, x, strength=0.0), x)
    full = sty.stylize_tensor(choice, x)
    half = sty.stylize_tensor(choice, x, strength=0.5)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * x)
    kept = sty.stylize_tensor(choice, x, preserve_color=True)

    def chroma(t):
        r, g, b = t[:, 0], t[:, 1], t[:, 2]
        return torch.stack([-0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b])

    y = lambda t: 0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]  # noqa: E731
    inside = (kept > 0.01).all(1) & (kept < 0.99).all(1)  # clamping changes chroma where it bites
    assert (chroma(kept) - chroma(x)).abs()[:, inside].max() < 1e-4
    assert (y(kept) - y(full)).abs()[inside].max() < 1e-4
    with pytest.raises(StylenormError, match="strength"):
        sty.stylize_tensor(choice, x, strength=1.5)


def test_automatic_tiling_for_large_images(weights_dir, monkeypatch):
    choice = sty.resolve_style("alpha", weights_dir=weights_dir)
    x = to_tensor(smooth_photo(90, 120, 4))
    whole = sty.stylize_tensor(choice, x, tile_size=0)
    calls = []
    real = sty.exact_stylize
    monkeypatch.setattr(sty, "exact_stylize", lambda *a, **k: calls.append(k) or real(*a, **{**k, "tile": 40}))
    monkeypatch.setattr(sty, "TILE_ABOVE_PIXELS", 5000)
    tiled = sty.stylize_tensor(choice, x)
    assert calls, "large images must be tiled automatically"
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_default_output_beside_input_and_output_options(weights_dir, photo, tmp_path):
    choice = sty.resolve_style(None, weights_dir=weights_dir)
    lines = []
    assert stylize_many(choice, [photo], None, StylizeOptions(), report=lines.append) == 0
    out = photo.with_name("photo_alpha.jpg")
    assert out.is_file() and Image.open(out).size == (44, 36)
    assert stylize_many(choice, [photo], tmp_path / "named.png", StylizeOptions(), report=lines.append) == 0
    assert Image.open(tmp_path / "named.png").format == "PNG"
    assert stylize_many(choice, [photo.parent], tmp_path / "folder", StylizeOptions(), report=lines.append) == 0
    # the folder's earlier outputs (photo_alpha.jpg, named.png) are recognised and not stylized again
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["photo_alpha.jpg"]


def test_max_size_and_alpha_carried_over(weights_dir, tmp_path):
    rgba = np.dstack([smooth_photo(40, 60, 3), np.tile(np.arange(60, dtype=np.uint8) * 4, (40, 1))])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    choice = sty.resolve_style("beta", weights_dir=weights_dir)
    sty.stylize_file(choice, tmp_path / "t.png", tmp_path / "t_out.png")
    out = np.array(Image.open(tmp_path / "t_out.png"))
    assert out.shape == (40, 60, 4) and (out[..., 3] == rgba[..., 3]).all()
    sty.stylize_file(choice, tmp_path / "t.png", tmp_path / "t_small.png", StylizeOptions(max_size=30))
    assert Image.open(tmp_path / "t_small.png").size == (30, 20)


def test_batch_reports_bad_files_and_keeps_going(weights_dir, photo, tmp_path):
    (photo.parent / "broken.jpg").write_bytes(photo.read_bytes()[:200])
    (photo.parent / "notes.png").write_text("not an image")
    Image.fromarray(smooth_photo(30, 30, 9)).save(photo.parent / "z_last.png")
    out = tmp_path / "out"
    lines = []
    failures = stylize_many(sty.resolve_style("alpha", weights_dir=weights_dir), [photo.parent], out, StylizeOptions(),
                            report=lines.append)
    assert failures == 2
    assert sorted(p.name for p in out.iterdir()) == ["photo_alpha.jpg", "z_last_alpha.png"]  # no partial files
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 2 and any("truncated" in e for e in errors) and any("not an image" in e for e in errors)


@pytest.mark.parametrize("case", ["missing", "non_image", "truncated", "bomb"])
def test_bad_inputs_each_get_one_line(weights_dir, photo, tmp_path, case):
    choice = sty.resolve_style("alpha", weights_dir=weights_dir)
    src = tmp_path / f"{case}.jpg"
    options = {}
    if case == "non_image":
        src.write_text("hello")
    elif case == "truncated":
        src.write_bytes(photo.read_bytes()[:300])
    elif case == "bomb":
        src = photo
        options["max_pixels"] = 100
    dst = tmp_path / "o" / "out.png"
    with pytest.raises(StylenormError) as info:
        sty.stylize_file(choice, src, dst, StylizeOptions(**options))
    assert "\n" not in str(info.value)
    assert not dst.parent.exists() or list(dst.parent.iterdir()) == []


def test_weights_of_another_architecture(tmp_path):
    save_model(tmp_path / "other.safetensors", {"conv.weight": torch.zeros(3, 3)}, {"kind": "style", "num_styles": 1})
    with pytest.raises(WeightsError, match="different architecture"):
        sty.resolve_style(str(tmp_path / "other.safetensors"))
    save_model(tmp_path / "unet.safetensors", {"x": torch.zeros(1)}, {"architecture": "UNet", "kind": "diffusion"})
    with pytest.raises(WeightsError, match="not a style network"):
        sty.resolve_style(str(tmp_path / "unet.safetensors"))


def test_pickle_weights_are_refused(tmp_path):
    torch.save(TransformerNet().state_dict(), tmp_path / "net.safetensors")
    with pytest.raises(WeightsError, match="pickle"):
        sty.resolve_style(str(tmp_path / "net.safetensors"))


def test_working_size_is_relative_to_the_picture_and_follows_the_style_scale(monkeypatch):
    # strokes at the same fraction of the picture whatever its size: small photos are enlarged,
    # 12 MP ones reduced, to the reference long side (divided by the scale)
    monkeypatch.setattr(sty, "STYLE_REFERENCE_SIZE", 1024)
    assert sty.working_size(300, 512, 1.0) == (600, 1024)
    assert sty.working_size(3000, 4000, 1.0) == (768, 1024)
    assert sty.working_size(3000, 4000, 2.0) == (384, 512)
    assert sty.working_size(300, 512, 0.5) == (1200, 2048)
    assert sty.working_size(3000, 4000, None) == (3000, 4000)
    for bad in (0.0, -1.0, 20.0):
        with pytest.raises(StylenormError, match="style-scale"):
            sty.working_size(10, 10, bad)


def _high_frequency_energy(x: torch.Tensor) -> float:
    lum = x.mean(dim=1, keepdim=True)
    lap = torch.nn.functional.conv2d(lum, torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3))
    return float(lap.square().mean())


def test_a_larger_style_scale_gives_larger_strokes_at_the_same_size():
    photo = to_tensor(smooth_photo(128, 160, 3))
    choice = sty.resolve_style("starry_night")  # the shipped network
    fine = sty.stylize_tensor(choice, photo, style_scale=0.5)
    normal = sty.stylize_tensor(choice, photo)
    big = sty.stylize_tensor(choice, photo, style_scale=2.0)
    assert fine.shape == normal.shape == big.shape == photo.shape
    energies = [_high_frequency_energy(y) for y in (fine, normal, big)]
    assert energies[0] > energies[1] > energies[2], energies


def test_a_folder_run_names_what_it_skipped(weights_dir, photo, tmp_path):
    folder = photo.parent
    (folder / "clip.mp4").write_bytes(b"\x00" * 16)
    (folder / "holiday").mkdir()
    (folder / "readme.txt").write_text("notes")
    (folder / ".DS_Store").write_bytes(b"\x00")
    lines = []
    out = tmp_path / "out"
    assert stylize_many(sty.resolve_style("alpha", weights_dir=weights_dir), [folder], out, StylizeOptions(),
                        report=lines.append) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo_alpha.jpg"]
    notes = [line for line in lines if line.startswith("skipped")]
    assert notes == ["skipped 3 entries of the input folder(s) that are not photos: clip.mp4 (a clip: pass it by "
                     "name), holiday/ (a subfolder: not searched), readme.txt (not an image)"]
