"""Safe image loading and atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylenorm.errors import StylenormError
from stylenorm.images import ImageError, list_images, load_image, save_image


def _rgb(h: int = 12, w: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:5, :5] = (255, 0, 0)  # red top-left block as stored
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 degrees clockwise
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    loaded = load_image(tmp_path / "o.jpg")
    assert loaded.rgb.shape == (20, 10, 3)
    # after a clockwise turn the stored top-left pixel sits at the top-right
    assert loaded.rgb[2, 7, 0] > 200 and loaded.rgb[2, 2, 0] < 60 and loaded.rgb[17, 2, 0] < 60


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "YCbCr"])
def test_modes_become_rgb(tmp_path, mode):
    img = Image.fromarray(_rgb()).convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("CMYK", "YCbCr") else "x.png")
    img.save(path)
    loaded = load_image(path)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (12, 20, 3) and loaded.alpha is None
    if mode in ("L", "1"):
        assert (loaded.rgb[..., 0] == loaded.rgb[..., 1]).all()


def test_palette_with_transparency_keeps_alpha(tmp_path):
    img = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=8)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.alpha is not None and set(np.unique(loaded.alpha)) <= {0, 255}
    assert (loaded.alpha == 0).any()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    loaded = load_image(tmp_path / "g16.png")
    assert loaded.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_alpha_is_returned_unchanged_and_saved_back(tmp_path):
    rgba = np.dstack([_rgb(), np.arange(240, dtype=np.uint8).reshape(12, 20)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert (loaded.alpha == rgba[..., 3]).all() and (loaded.rgb == rgba[..., :3]).all()
    save_image(tmp_path / "b.png", loaded.rgb, loaded.alpha)
    back = np.array(Image.open(tmp_path / "b.png"))
    assert (back == rgba).all()


def test_formats_follow_the_extension(tmp_path):
    for ext, fmt in [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"), (".tiff", "TIFF")]:
        path = save_image(tmp_path / f"out{ext}", _rgb())
        with Image.open(path) as im:
            assert im.format == fmt
        assert load_image(path).rgb.shape == (12, 20, 3)
    with pytest.raises(ImageError, match="output format"):
        save_image(tmp_path / "out.xyz", _rgb())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"out{e}" for e in (".jpg", ".png", ".webp", ".bmp", ".tiff"))
    assert [p.name for p in list_images(tmp_path)][:2] == ["out.bmp", "out.jpg"]


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        save_image(tmp_path / "bad.png", np.zeros((4, 4), np.uint8))  # not RGB
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(StylenormError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_non_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not a picture")
    with pytest.raises(StylenormError, match="not an image"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_image(tmp_path):
    Image.fromarray(_rgb(200, 200)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(StylenormError, match="truncated"):
        load_image(tmp_path / "cut.jpg")


def test_pixel_limit_is_enforced_and_overridable(tmp_path):
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(StylenormError, match="--max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=5_000)
    assert load_image(tmp_path / "big.png", max_pixels=20_000).rgb.shape == (100, 100, 3)
    assert load_image(tmp_path / "big.png", max_pixels=0).rgb.shape == (100, 100, 3)


def test_errors_are_one_line(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(StylenormError) as info:
        load_image(tmp_path / "x.png")
    assert "\n" not in str(info.value)


def test_our_limit_replaces_pils_global_one(tmp_path, monkeypatch):
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # PIL would refuse 2x this outright
    assert load_image(tmp_path / "big.png", max_pixels=0).rgb.shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # and PIL's setting is left as it was
