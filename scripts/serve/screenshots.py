"""Screenshots of the three tabs of `stylenorm serve` for docs/serve/ (headless Chromium via Playwright).

    python scripts/serve/screenshots.py [OUT_DIR]      (default docs/serve; needs chromium, playwright, PyAV
                                                         and ../shared/data's VGG16 file beside the repository)

Stylize: the demo cat picked from the examples, painted with wave (clicked in the style picker) at 512 px;
Any painting: the rocket painted after The Scream (from ../shared/data/styles; 320 px, the
default 150 evaluations); Video: a 24-frame clip panning over the astronaut, starry_night;
Diffusion samples: 20 digits with the defaults; Model cards: the tab as it opens.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from stylenorm.bench.video import camera_clip, write_clip
from stylenorm.serve.app import ServeConfig, launch, style_names
from stylenorm.style.config import DEMO_DIR

TIMEOUT_MS = 600_000
VGG = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vgg16-caffe-hed.safetensors"


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stylenorm_shots_")) / "work"
    work.mkdir()
    pictures, _ = camera_clip("astronaut.png", (320, 180), 24, seed=0)
    clip = write_clip(work.parent / "astronaut_pan.mp4", pictures, rate=24)
    server = launch(ServeConfig(workdir=work, vgg_weights=str(VGG)), port=7861)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url)
            page.wait_for_selector("#stylize")
            page.locator("#examples").get_by_text("chelsea.png").first.click()
            expect(page.locator("#photo")).to_contain_text("chelsea", timeout=TIMEOUT_MS)
            expect(page.locator("#photo-preview img").first).to_be_visible(timeout=TIMEOUT_MS)
            page.locator("#style-gallery img").nth(style_names().index("wave")).click()
            page.locator("#max-size input[type=number]").fill("512")
            page.locator("#max-size input[type=number]").press("Enter")
            page.click("#stylize")
            expect(page.locator("#stylize-info")).to_contain_text("Stylized with", timeout=TIMEOUT_MS)
            page.wait_for_timeout(500)  # the slider's fade-in
            page.screenshot(path=str(out_dir / "stylize.png"), full_page=True)
            page.get_by_role("tab", name="Any painting").click()
            page.locator("#paint-photo input[type=file]").set_input_files(str(DEMO_DIR / "rocket.jpg"))
            page.locator("#painting input[type=file]").set_input_files(str(VGG.parent / "styles" / "the_scream.jpg"))
            expect(page.locator("#painting")).to_contain_text("the_scream", timeout=TIMEOUT_MS)
            page.locator("#paint-size input[type=number]").fill("320")
            page.locator("#paint-size input[type=number]").press("Enter")
            page.click("#paint")
            expect(page.locator("#paint-info")).to_contain_text("Painted after", timeout=TIMEOUT_MS)
            page.screenshot(path=str(out_dir / "any_painting.png"), full_page=True)
            page.get_by_role("tab", name="Video").click()
            page.locator("#clip input[type=file]").set_input_files(str(clip))
            expect(page.locator("#clip")).to_contain_text("astronaut_pan", timeout=TIMEOUT_MS)
            page.click("#stylize-clip")
            expect(page.locator("#clip-info")).to_contain_text("Stylized with", timeout=TIMEOUT_MS)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out_dir / "video.png"), full_page=True)
            page.get_by_role("tab", name="Diffusion samples").click()
            page.click("#sample")
            expect(page.locator("#grid-caption")).to_contain_text("Columns", timeout=TIMEOUT_MS)
            page.screenshot(path=str(out_dir / "diffusion.png"), full_page=True)
            page.get_by_role("tab", name="Model cards").click()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out_dir / "cards.png"), full_page=True)
            browser.close()
    finally:
        server.close()
    names = ("stylize.png", "any_painting.png", "video.png", "diffusion.png", "cards.png")
    print(f"wrote {', '.join(str(out_dir / n) for n in names)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/serve"))
