"""The any-painting mode on one photo with all five paintings, for calibrating a loss by looking.

    python scripts/style/optimize_grid.py TAG PHOTO [field=value ...]   (OptimizeOptions fields, e.g. loss=johnson style_weight=1e6)
    python scripts/style/optimize_grid.py --figure OUT.jpg PHOTO TAG [TAG ...]

The first form optimizes PHOTO (its long side at 320 px, one thread) against each painting of
../shared/data/styles and writes docs/style/optimize/TAG_<photo>_<painting>.png; the second lays
out the paintings on top and one row per TAG (cells already made are kept: delete them to redo). Run
from the repository root with ../shared beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from PIL import Image

from stylenorm.images import save_image, to_tensor, to_uint8
from stylenorm.style.optimize import OptimizeOptions, load_loss_network, optimize_image
from stylenorm.style.stylize import load_photo

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CELLS = REPO / "docs" / "style" / "optimize"
PAINTINGS = ["starry_night", "wave", "composition_vii", "the_scream", "udnie"]
WORK_SIZE = 320
CELL = 220
TEXT_FIELDS = ("loss", "optimizer", "precision")


def parse(item: str) -> tuple[str, object]:
    key, value = item.split("=", 1)
    if key in TEXT_FIELDS:
        return key, value
    if key == "style_scales":
        return key, tuple(float(v) for v in value.split(","))
    return key, int(value) if key == "iterations" else float(value)


def optimize_row(tag: str, photo: Path, options: list[str]) -> None:
    torch.set_num_threads(1)
    opts = OptimizeOptions(**dict(parse(item) for item in options))
    vgg, _ = load_loss_network(SHARED / "vgg16-caffe-hed.safetensors", "caffe")
    x = to_tensor(load_photo(photo, WORK_SIZE, None)[0])
    CELLS.mkdir(parents=True, exist_ok=True)
    for painting in PAINTINGS:
        cell = CELLS / f"{tag}_{photo.stem}_{painting}.png"
        if cell.is_file():  # a rerun finishes a row instead of redoing it
            continue
        started = time.perf_counter()
        y = optimize_image(x, SHARED / "styles" / f"{painting}.jpg", vgg, opts, work_size=WORK_SIZE)
        save_image(cell, to_uint8(y))
        print(f"{tag} {photo.stem} {painting}: {time.perf_counter() - started:.0f} s", flush=True)


def figure(out: Path, photo: Path, tags: list[str]) -> None:
    def fit(image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        image.thumbnail((CELL, CELL), Image.LANCZOS)
        cell = Image.new("RGB", (CELL, CELL), "white")
        cell.paste(image, ((CELL - image.width) // 2, (CELL - image.height) // 2))
        return cell

    rows = [[None] + [Image.open(SHARED / "styles" / f"{p}.jpg") for p in PAINTINGS]]
    rows += [[Image.open(photo)] + [Image.open(CELLS / f"{tag}_{photo.stem}_{p}.png") for p in PAINTINGS] for tag in tags]
    grid = Image.new("RGB", (CELL * (len(PAINTINGS) + 1), CELL * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image is not None:
                grid.paste(fit(image), (c * CELL, r * CELL))
    grid.save(out, quality=88)
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1] == "--figure":
        figure(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    else:
        optimize_row(sys.argv[1], Path(sys.argv[2]), sys.argv[3:])
