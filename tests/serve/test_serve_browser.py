"""`stylenorm serve` in a real browser: headless Chromium (Debian's package) driven by Playwright.

Skipped when Playwright or a Chromium binary is missing; `.ci/run` installs both, so CI runs them.
The docs' screenshots come from scripts/serve/screenshots.py, which drives the page the same way.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_testlib import DEMO, demo_cat, tiny_clip, tiny_vgg

from stylenorm.images import load_image
from stylenorm.serve.app import ServeConfig, launch, style_names
from stylenorm.style.config import StylizeOptions
from stylenorm.style.stylize import resolve_style, stylize_file

playwright_api = pytest.importorskip("playwright.sync_api")
if importlib.util.find_spec("gradio") is None:  # not imported here: launch() sets its temp folder first
    pytest.skip("gradio is not installed", allow_module_level=True)
CHROMIUM = os.environ.get("STYLENORM_CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")]
expect = playwright_api.expect
RESULT_TIMEOUT_MS = 120_000  # a stylized photo on a busy 2-core machine



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve") / "work"
    work.mkdir()
    vgg = tiny_vgg(tmp_path_factory.mktemp("vgg") / "vgg.safetensors")
    srv = launch(ServeConfig(workdir=work, max_pixels=2_000_000, vgg_weights=str(vgg)), port=_free_port())
    yield srv
    srv.close()
    assert not work.exists()  # uploads and results go with the server


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to start as root, as CI runs
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("#stylize")
    yield page
    context.close()


@pytest.fixture()
def photo(tmp_path) -> Path:
    return demo_cat(tmp_path, (122, 81))  # sides not divisible by 4


def _upload(page, path: Path) -> None:
    clear = page.locator("#photo button[aria-label=Clear]")
    if clear.count():  # a photo is there already: the file input returns once it is cleared
        clear.click()
    page.locator("#photo input[type=file]").set_input_files(str(path))
    expect(page.locator("#photo")).to_contain_text(path.stem, timeout=30_000)


def _pick_style(page, name: str) -> None:
    page.locator("#style input").click()
    page.locator("ul[role=listbox] li", has_text=name).first.click()
    expect(page.locator("#style input")).to_have_value(name)


def _stylized(page) -> None:
    page.click("#stylize")
    expect(page.locator("#stylize-info")).to_contain_text("Stylized with", timeout=RESULT_TIMEOUT_MS)


def test_upload_pick_a_style_and_receive_the_stylized_image(page, server, tmp_path, one_thread):
    for name in style_names():  # every style `stylenorm styles` lists, by name
        expect(page.locator("#style-list")).to_contain_text(name)
    src = tmp_path / "chelsea.png"
    shutil.copy(DEMO / "chelsea.png", src)
    _upload(page, src)
    _pick_style(page, "wave")
    page.locator("#max-size input[type=number]").fill("256")
    page.locator("#max-size input[type=number]").press("Enter")
    _stylized(page)
    expect(page.locator("#stylize-info")).to_contain_text("wave: 256x170 px")
    expect(page.locator("#before-after img").first).to_be_visible()
    link = page.locator("#download a").first
    expect(link).to_have_attribute("download", "chelsea_wave.png")
    got = tmp_path / "downloaded.png"
    got.write_bytes(page.request.get(link.get_attribute("href")).body())
    expected = tmp_path / "cli.png"
    stylize_file(resolve_style("wave"), src, expected, StylizeOptions(max_size=256))
    assert np.array_equal(load_image(got).rgb, load_image(expected).rgb)  # what `stylenorm stylize` writes
    # the upload and the result live in the server's temporary folder
    assert list((server.config.workdir / "gradio").rglob("chelsea.png"))
    assert list((server.config.workdir / "results").rglob("chelsea_wave.png"))
    shot = tmp_path / "page.png"
    page.wait_for_timeout(300)  # the slider's fade-in
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as img:
        assert np.asarray(img.convert("L")).std() > 10  # a rendered page, not a blank one


def test_a_non_image_gets_a_message_and_the_page_keeps_working(page, photo, tmp_path, one_thread):
    notes = tmp_path / "notes.png"
    notes.write_text("these are notes, not a picture\n")
    _upload(page, notes)
    page.click("#stylize")
    # the upload's own name, not the path of the server's cached copy
    expect(page.get_by_text("notes.png is not an image stylenorm can read").first).to_be_visible(timeout=30_000)
    _upload(page, photo)
    _stylized(page)
    expect(page.locator("#stylize-info")).to_contain_text("122x81 px")


def test_an_upload_over_the_pixel_limit_gets_a_message(page, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1500), (90, 100, 110)).save(big)  # 3 MP over the server's 2 MP
    _upload(page, big)
    page.click("#stylize")
    expect(page.get_by_text("over the 2 MP limit").first).to_be_visible(timeout=30_000)


def test_two_browsers_at_once_both_get_their_results(browser, server, photo, tmp_path, one_thread):
    other = tmp_path / "dog.png"
    with Image.open(DEMO / "coffee.png") as img:
        img.convert("RGB").resize((90, 60)).save(other)
    contexts = [browser.new_context() for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        for p, src, style in zip(pages, (photo, other), ("udnie", "the_scream")):
            p.goto(server.url)
            p.wait_for_selector("#stylize")
            _upload(p, src)
            _pick_style(p, style)
        for p in pages:  # both requests queued before either finishes
            p.click("#stylize")
        expect(pages[0].locator("#stylize-info")).to_contain_text("udnie: 122x81 px", timeout=RESULT_TIMEOUT_MS)
        expect(pages[1].locator("#stylize-info")).to_contain_text("the_scream: 90x60 px", timeout=RESULT_TIMEOUT_MS)
    finally:
        for context in contexts:
            context.close()


def test_the_diffusion_tab_draws_a_grid(page, one_thread):
    page.get_by_role("tab", name="Diffusion samples").click()
    page.locator("#labels textarea, #labels input").first.fill("7")
    for elem, value in (("#samples", "3"), ("#steps", "2")):
        page.locator(f"{elem} input[type=number]").fill(value)
        page.locator(f"{elem} input[type=number]").press("Enter")
    page.click("#sample")
    expect(page.locator("#grid img").first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#grid-file a").first).to_have_attribute("download", re.compile(r"samples_.*\.png"))


def test_the_model_cards_tab_lists_the_shipped_models(page):
    page.get_by_role("tab", name="Model cards").click()
    for name in ("styles.safetensors", "mnist.safetensors", "mnist_classifier.safetensors"):
        expect(page.get_by_text(name).first).to_be_visible()


def test_the_blend_sliders_mix_styles(page, photo, one_thread):
    expect(page.locator("#blend-wave")).to_be_hidden()  # one style: its picker, no sliders
    page.locator("#style-mode").get_by_text("Blend styles").click()
    expect(page.locator("#style-gallery")).to_be_hidden()  # blend: the sliders instead of the picker
    for name, value in (("wave", "0.75"), ("udnie", "0.25")):
        page.locator(f"#blend-{name} input[type=number]").fill(value)
        page.locator(f"#blend-{name} input[type=number]").press("Enter")
    _upload(page, photo)
    _stylized(page)
    info = page.locator("#stylize-info")
    expect(info).to_contain_text("wave:0.75")
    expect(info).to_contain_text("udnie:0.25")


def test_a_thumbnail_picks_its_style_and_the_upload_shows_a_preview(page, photo, one_thread):
    names = style_names()
    expect(page.locator("#style-gallery img")).to_have_count(len(names))
    page.locator("#style-gallery img").nth(names.index("udnie")).click()
    expect(page.locator("#style input")).to_have_value("udnie")
    expect(page.locator("#photo-preview img")).to_have_count(0)
    _upload(page, photo)
    expect(page.locator("#photo-preview img").first).to_be_visible(timeout=30_000)
    _stylized(page)
    expect(page.locator("#stylize-info")).to_contain_text("udnie: 122x81 px")


def test_an_example_photo_is_one_click_away(page, one_thread):
    page.locator("#examples").get_by_text("rocket.jpg").first.click()
    expect(page.locator("#photo")).to_contain_text("rocket", timeout=30_000)
    page.locator("#max-size input[type=number]").fill("128")
    page.locator("#max-size input[type=number]").press("Enter")
    _stylized(page)
    expect(page.locator("#stylize-info")).to_contain_text("128x85 px")


def test_the_diffusion_grid_says_which_digit_each_column_holds(page, one_thread):
    page.get_by_role("tab", name="Diffusion samples").click()
    for elem, value in (("#samples", "10"), ("#steps", "2")):
        page.locator(f"{elem} input[type=number]").fill(value)
        page.locator(f"{elem} input[type=number]").press("Enter")
    page.click("#sample")
    expect(page.locator("#grid-caption")).to_contain_text("Columns, left to right: digits 0 1 2 3 4 5 6 7 8 9",
                                                          timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#grid label").first).to_be_hidden()  # no badge over the top-left digit


def test_the_model_cards_tab_shows_the_style_thumbnails(page):
    page.get_by_role("tab", name="Model cards").click()
    expect(page.locator("#cards-gallery img")).to_have_count(len(style_names()))


def _set_number(page, elem: str, value: str) -> None:
    page.locator(f"{elem} input[type=number]").fill(value)
    page.locator(f"{elem} input[type=number]").press("Enter")


def _painting(tmp_path) -> Path:
    path = tmp_path / "painting.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_any_painting_on_the_page(page, photo, tmp_path, one_thread):
    page.get_by_role("tab", name="Any painting").click()
    page.locator("#paint-photo input[type=file]").set_input_files(str(photo))
    page.locator("#painting input[type=file]").set_input_files(str(_painting(tmp_path)))
    expect(page.locator("#painting")).to_contain_text("painting", timeout=30_000)
    _set_number(page, "#iterations", "2")
    page.click("#paint")
    expect(page.locator("#paint-info")).to_contain_text("Painted after painting.png: 122x81 px", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#paint-file a").first).to_have_attribute("download", "cat_painting.png")


def test_a_clip_on_the_page_plays_with_its_sound(page, tmp_path, one_thread):
    pytest.importorskip("av")
    page.get_by_role("tab", name="Video").click()
    page.locator("#clip input[type=file]").set_input_files(str(tiny_clip(tmp_path, frames=10)))
    expect(page.locator("#clip")).to_contain_text("clip", timeout=30_000)
    page.click("#stylize-clip")
    expect(page.locator("#clip-info")).to_contain_text("clip_starry_night.mp4", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#clip-out video").first).to_be_attached()
    expect(page.locator("#clip-file a").first).to_have_attribute("download", "clip_starry_night.mp4")


def test_a_long_painting_does_not_hold_up_a_photo_and_can_be_cancelled(page, photo, tmp_path, one_thread):
    page.get_by_role("tab", name="Any painting").click()
    page.locator("#paint-photo input[type=file]").set_input_files(str(DEMO / "astronaut.png"))
    page.locator("#painting input[type=file]").set_input_files(str(_painting(tmp_path)))
    expect(page.locator("#painting")).to_contain_text("painting", timeout=30_000)
    _set_number(page, "#iterations", "500")
    _set_number(page, "#paint-size", "1024")
    page.click("#paint")  # minutes of optimisation in the long queue
    page.get_by_role("tab", name="Stylize").click()
    _upload(page, photo)
    _stylized(page)  # the quick queue answers meanwhile
    expect(page.locator("#stylize-info")).to_contain_text("122x81 px")
    page.get_by_role("tab", name="Any painting").click()
    expect(page.locator("#paint-info")).not_to_contain_text("Painted")
    page.click("#cancel-paint")  # the optimisation stops at its next loss evaluation
    expect(page.locator("#paint-info")).to_contain_text(re.compile(r"Stopped: cancelled after \d+ of \d+ loss evaluations"),
                                                        timeout=60_000)



def test_a_painting_added_as_a_style_appears_in_the_style_lists(page, tmp_path, one_thread):
    page.get_by_role("tab", name="Any painting").click()
    page.locator("#painting input[type=file]").set_input_files(str(_painting(tmp_path)))
    expect(page.locator("#painting")).to_contain_text("painting", timeout=30_000)
    page.get_by_text("Add this painting as a style").click()
    # the accordion mounts its fields as it opens: a name typed before they settle was lost once (CI)
    expect(page.locator("#add-style")).to_be_visible()
    name = page.locator("#new-style-name textarea, #new-style-name input").first
    _set_number(page, "#new-style-steps", "1")
    name.fill("noise_art")
    expect(name).to_have_value("noise_art")
    page.click("#add-style")
    expect(page.locator("#add-style-info")).to_contain_text("Added the style noise_art", timeout=RESULT_TIMEOUT_MS)
    page.get_by_role("tab", name="Stylize").click()
    page.locator("#style input").click()
    expect(page.locator("ul[role=listbox] li", has_text="noise_art").first).to_be_visible()
