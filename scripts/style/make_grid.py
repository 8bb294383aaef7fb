"""Regenerate the before/after pictures: each painting, then each bundled demo photo in every shipped style.

Run from the repository root:  python scripts/style/make_grid.py [--weights FILE -o OUT.jpg]
(--weights: another style network, e.g. a training checkpoint exported to a file, for comparisons).
Every stylized picture is made by the real command line (`stylenorm stylize`);
this script only lays them out in one grid, one row per photo.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "style"
PAINTINGS = REPO.parent / "shared" / "data" / "styles"
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg"]
SIZE = 512  # longest side of each stylized picture (the size eval-style judges at)
CELL = 300  # longest side of each cell in the grid (downscaled, so motifs keep their size relative to the photo)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path, help="a style network other than the shipped one")
    parser.add_argument("-o", "--output", type=Path, default=OUT / "before_after.jpg")
    args = parser.parse_args()
    if args.weights:
        styles = json.loads(args.weights.with_suffix(".json").read_text())["styles"]
        chosen = ["--weights", str(args.weights.resolve())]
    else:
        styles = [line.split("\t")[0].replace(" (default)", "") for line in subprocess.run(
            [sys.executable, "-m", "stylenorm", "styles"], check=True, capture_output=True, text=True, cwd=REPO,
        ).stdout.splitlines()]
        chosen = []
    # the paintings on top (from ../shared, which users do not have: the row is left out without it)
    paintings = [next(PAINTINGS.glob(f"{style}.*"), None) for style in styles]
    rows = [[Image.new("RGB", (CELL, CELL), "white")] + [Image.open(p).convert("RGB") for p in paintings]] \
        if all(paintings) else []
    for cell in rows[0] if rows else []:
        cell.thumbnail((CELL, CELL), Image.LANCZOS)
    work = Path(tempfile.mkdtemp(prefix="stylenorm_grid_"))
    for photo in PHOTOS:
        src = REPO / "stylenorm" / "data" / "demo" / photo
        stem = Path(photo).stem
        cells = [Image.open(src).convert("RGB")]
        for style in styles:
            dst = work / f"{stem}_{style}.png"
            subprocess.run([sys.executable, "-m", "stylenorm", "stylize", str(src), *chosen, "--style", style,
                            "--max-size", str(SIZE), "-o", str(dst)], check=True, cwd=REPO, capture_output=True)
            cells.append(Image.open(dst).convert("RGB"))
        for cell in cells:
            cell.thumbnail((CELL, CELL), Image.LANCZOS)
        rows.append(cells)
    label_h = 22
    columns = len(rows[0])
    heights = [max(c.height for c in row) for row in rows]
    grid = Image.new("RGB", (columns * CELL, label_h + sum(heights)), "white")
    draw = ImageDraw.Draw(grid)
    for k, name in enumerate(["painting / photo"] + styles):
        draw.text((k * CELL + 6, 5), name, fill="black")
    y = label_h
    for row, height in zip(rows, heights):
        for k, cell in enumerate(row):  # centred in fixed-width columns
            grid.paste(cell, (k * CELL + (CELL - cell.width) // 2, y + (height - cell.height) // 2))
        y += height
    grid.save(args.output, quality=88)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
