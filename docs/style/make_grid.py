"""Regenerate the before/after pictures: each bundled demo photo in every shipped style.

Run from the repository root:  .venv/bin/python docs/style/make_grid.py
Every stylized picture is made by the real command line (`stylenorm stylize`);
this script only lays them out in one grid, one row per photo.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "style"
PHOTOS = ["chelsea.png", "astronaut.png"]
SIZE = 320  # longest side of each stylized picture


def main() -> None:
    styles = [line.split("\t")[0].replace(" (default)", "") for line in subprocess.run(
        [sys.executable, "-m", "stylenorm", "styles"], check=True, capture_output=True, text=True, cwd=REPO,
    ).stdout.splitlines()]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="stylenorm_grid_"))
    for photo in PHOTOS:
        src = REPO / "stylenorm" / "data" / "demo" / photo
        stem = Path(photo).stem
        cells = [Image.open(src).convert("RGB")]
        cells[0].thumbnail((SIZE, SIZE), Image.LANCZOS)
        for style in styles:
            dst = work / f"{stem}_{style}.png"
            subprocess.run([sys.executable, "-m", "stylenorm", "stylize", str(src), "--style", style,
                            "--max-size", str(SIZE), "-o", str(dst)], check=True, cwd=REPO)
            cells.append(Image.open(dst).convert("RGB"))
        rows.append(cells)
    label_h = 22
    width = sum(c.width for c in rows[0])
    height = label_h + sum(r[0].height for r in rows)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    x = 0
    for name, cell in zip(["photo"] + styles, rows[0]):
        draw.text((x + 6, 5), name, fill="black")
        x += cell.width
    y = label_h
    for row in rows:
        x = 0
        for cell in row:
            grid.paste(cell, (x, y))
            x += cell.width
        y += row[0].height
    grid.save(OUT / "before_after.png")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {OUT / 'before_after.png'}")


if __name__ == "__main__":
    main()
