"""The work behind the page's buttons, without a browser: results, messages for bad uploads, cleanup."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_testlib import demo_cat

from stylenorm.diffusion.config import SampleOptions
from stylenorm.errors import StylenormError
from stylenorm.images import load_image
from stylenorm.serve.app import ServeConfig, blend_text, model_cards, sample_grid, style_names, stylize_upload
from stylenorm.style.config import StylizeOptions
from stylenorm.style.stylize import list_shipped_styles, resolve_style, stylize_file


@pytest.fixture()
def photo(tmp_path) -> Path:
    return demo_cat(tmp_path, (61, 41))  # sides not divisible by 4


@pytest.fixture()
def config(tmp_path) -> ServeConfig:
    work = tmp_path / "work"
    work.mkdir()
    return ServeConfig(workdir=work, max_pixels=1_000_000)


def _bomb(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A PNG whose header promises 1600 MP but holds a few bytes: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_the_page_lists_every_style_that_stylenorm_styles_lists():
    assert style_names() == [name for name, _, _ in list_shipped_styles()]
    assert {"starry_night", "wave"} <= set(style_names())


def test_stylize_upload_gives_what_stylize_writes(photo, config, tmp_path, one_thread):
    options = StylizeOptions(strength=0.8, preserve_color=True, max_size=48)
    before, after, path = stylize_upload(photo, "wave", options, config)
    cli_out = tmp_path / "cli.png"
    stylize_file(resolve_style("wave"), photo, cli_out, options)
    assert np.array_equal(load_image(path).rgb, load_image(cli_out).rgb)
    assert after.shape == before.shape == (32, 48, 3)
    assert path.is_relative_to(config.workdir) and path.name == "cat_wave.png"


def test_blend_sliders_become_a_blend(photo, config, one_thread):
    names = style_names()
    weights = [0.0] * len(names)
    weights[names.index("wave")], weights[names.index("udnie")] = 0.75, 0.25
    text = blend_text(names, weights)
    assert text == ("wave:0.75,udnie:0.25" if names.index("wave") < names.index("udnie") else "udnie:0.25,wave:0.75")
    _, _, path = stylize_upload(photo, text, StylizeOptions(max_size=32), config)
    assert path.name == f"cat_{resolve_style(text).label}.png"
    with pytest.raises(StylenormError, match="every blend slider is at 0"):
        blend_text(names, [0.0] * len(names))


def _not_an_image(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not a picture\n")
    return path


def _truncated(tmp_path: Path) -> Path:
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full, quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    return path


def _too_big(tmp_path: Path) -> Path:
    path = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000), (80, 90, 100)).save(path)  # 1.2 MP over the config's 1 MP
    return path


@pytest.mark.parametrize("make, message", [
    (_not_an_image, "is not an image"),
    (_truncated, "damaged or truncated"),
    (_too_big, "over the 1 MP limit"),
    (lambda tmp_path: _bomb(tmp_path / "bomb.png"), "decompression bombs"),
])
def test_bad_uploads_get_a_readable_message_and_write_nothing(make, message, config, tmp_path):
    with pytest.raises(StylenormError, match=message):
        stylize_upload(make(tmp_path), "wave", StylizeOptions(), config)
    assert not (config.workdir / "results").exists()


def test_no_photo_and_bad_options_are_messages(photo, config):
    with pytest.raises(StylenormError, match="no photo yet"):
        stylize_upload(None, "wave", StylizeOptions(), config)
    with pytest.raises(StylenormError, match="unknown style"):
        stylize_upload(photo, "nope", StylizeOptions(), config)
    with pytest.raises(StylenormError, match="style-scale"):
        stylize_upload(photo, "wave", StylizeOptions(style_scale=50), config)


def test_sample_grid_draws_the_asked_digits(config, one_thread):
    grid, path, caption = sample_grid(SampleOptions(2, "ddim", 2, labels="3", guidance=2.0), config)
    assert caption == "Digits asked for, row by row: 3 3."
    assert path.is_file() and path.is_relative_to(config.workdir)
    with Image.open(path) as img:
        assert img.size == (grid.shape[1], grid.shape[0])
    assert grid.shape[0] == (28 + 2 * 2) * 4 and grid.ndim == 3  # one row of 28 px digits, padded, 4x
    with pytest.raises(StylenormError, match="labels must lie in 0..9"):
        sample_grid(SampleOptions(2, "ddim", 2, labels="12", guidance=2.0), config)
    with pytest.raises(StylenormError, match="unknown sampler"):
        sample_grid(SampleOptions(2, "euler", 2, guidance=2.0), config)


def test_a_grid_of_every_class_is_captioned_per_column(config, one_thread):
    _, _, caption = sample_grid(SampleOptions(10, "ddim", 2, guidance=2.0), config)
    assert caption == "Columns, left to right: digits 0 1 2 3 4 5 6 7 8 9."


def test_every_style_has_a_thumbnail_of_the_demo_cat_as_stylize_paints_it(config, tmp_path, one_thread):
    from stylenorm.serve.app import THUMBNAIL_PHOTO, THUMBNAIL_SIZE, style_thumbnails

    thumbs = style_thumbnails(["wave"], config)
    assert [name for _, name in thumbs] == ["wave"]
    expected = tmp_path / "wave.png"
    stylize_file(resolve_style("wave"), THUMBNAIL_PHOTO, expected, StylizeOptions(max_size=THUMBNAIL_SIZE))
    assert np.array_equal(load_image(thumbs[0][0]).rgb, load_image(expected).rgb)


def test_model_cards_cover_every_shipped_model():
    names = [name for name, _ in model_cards()]
    assert {"styles.safetensors", "mnist.safetensors", "mnist_classifier.safetensors"} <= set(names)


def test_serve_without_the_extra_names_it(monkeypatch, capsys):
    from stylenorm import cli

    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail
    monkeypatch.setattr(sys, "argv", ["stylenorm", "serve", "--port", "7999"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert "stylenorm[web]" in capsys.readouterr().err


def test_serve_refuses_a_bad_port(monkeypatch, capsys):
    from stylenorm import cli

    monkeypatch.setattr(sys, "argv", ["stylenorm", "serve", "--port", "70000"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2 and "--port 70000" in capsys.readouterr().err


def test_serve_prints_the_url_binds_localhost_and_cleans_up(tmp_path):
    """The real command in a subprocess: the URL line, a page on 127.0.0.1, no folder left after Ctrl+C."""
    import importlib.util
    import os

    if importlib.util.find_spec("gradio") is None:  # not imported here: the server's process imports it
        pytest.skip("gradio is not installed")
    import signal
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "stylenorm", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        line = proc.stdout.readline()  # blocks until the server is up
        assert f"http://127.0.0.1:{port}" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "stylenorm" in html
        assert [p.name.startswith("stylenorm_serve_") for p in tmp_path.iterdir()] == [True]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert list(tmp_path.iterdir()) == []  # the temporary folder (uploads, results) is gone


def test_any_painting_on_the_page_is_what_stylize_with_a_painting_writes(config, tmp_path, one_thread):
    from serve_testlib import tiny_vgg

    from stylenorm.serve.app import paint_upload
    from stylenorm.style.optimize import stylize_with_painting

    config = replace(config, vgg_weights=str(tiny_vgg(tmp_path / "vgg.safetensors")))
    photo = demo_cat(tmp_path, (70, 50))
    painting = tmp_path / "painting.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(painting)
    options = StylizeOptions(iterations=2, max_size=64)
    result, path = paint_upload(photo, painting, options, config)
    assert path.is_relative_to(config.workdir) and path.name == "cat_painting.png"
    expected = tmp_path / "cli.png"
    stylize_with_painting([photo], painting, expected, replace(options, vgg_weights=config.vgg_weights),
                          report=lambda line: None)
    assert np.array_equal(result, load_image(expected).rgb)
    with pytest.raises(StylenormError, match="no painting yet"):
        paint_upload(photo, None, options, config)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(StylenormError, match="notes.png is not an image"):
        paint_upload(photo, tmp_path / "notes.png", options, config)


def test_a_clip_on_the_page_comes_back_stylized_with_its_sound(config, tmp_path, one_thread):
    pytest.importorskip("av")
    from serve_testlib import tiny_clip

    from stylenorm.bench.video import read_frames
    from stylenorm.serve.app import stylize_clip
    from stylenorm.video import open_reader

    src = tiny_clip(tmp_path, frames=10)
    out = stylize_clip(src, "wave", StylizeOptions(), config)
    assert out.is_relative_to(config.workdir) and out.name == "clip_wave.mp4"
    assert len(read_frames(out)) == 10
    reader = open_reader(out, None)
    try:
        assert reader.info.audio  # the sound came along
    finally:
        reader.close()
    with pytest.raises(StylenormError, match="no clip yet"):
        stylize_clip(None, "wave", StylizeOptions(), config)


def test_a_set_stop_flag_ends_a_painting_and_a_clip_with_nothing_written(config, tmp_path, one_thread):
    import threading

    from serve_testlib import tiny_clip, tiny_vgg

    from stylenorm.errors import Cancelled
    from stylenorm.serve.app import paint_upload, stylize_clip

    config = replace(config, vgg_weights=str(tiny_vgg(tmp_path / "vgg.safetensors")))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled, match="cancelled after 0 of 5 loss evaluations"):
        (tmp_path / "art").mkdir()
        paint_upload(demo_cat(tmp_path, (70, 50)), demo_cat(tmp_path / "art", (120, 100)), StylizeOptions(iterations=5),
                     config, stop)
    pytest.importorskip("av")
    with pytest.raises(Cancelled, match="cancelled after 0 frames"):
        stylize_clip(tiny_clip(tmp_path), "wave", StylizeOptions(), config, stop)
    assert not [p for p in (config.workdir / "results").rglob("*") if p.is_file()]


def test_a_painting_added_as_a_style_joins_the_page_s_styles(config, tmp_path, user_data_folder, one_thread):
    from serve_testlib import tiny_vgg

    from stylenorm.serve.app import add_painting_style

    config = replace(config, vgg_weights=str(tiny_vgg(tmp_path / "vgg.safetensors")))
    (tmp_path / "art").mkdir()
    painting = demo_cat(tmp_path / "art", (120, 100))
    with pytest.raises(StylenormError, match="name the new style first"):
        add_painting_style(painting, " ", 1, config)
    path = add_painting_style(painting, "my_cat", 1, config)
    assert path == user_data_folder / "weights" / "my_cat.safetensors"
    assert "my_cat" in style_names()
