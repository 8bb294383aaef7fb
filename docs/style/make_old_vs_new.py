"""The first shipped styles against the current ones on one demo photo (docs/style/old_vs_new.jpg).

Run from the repository root:  python docs/style/make_old_vs_new.py OLD_WEIGHTS
(OLD_WEIGHTS: e.g. `git show 08bb204:weights/styles.safetensors > old.safetensors`). Both rows are
`stylize_tensor` at 512 px, as `stylenorm stylize` runs them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stylenorm.images import to_tensor, to_uint8
from stylenorm.style.stylize import resolve_style, stylize_tensor

REPO = Path(__file__).resolve().parents[2]
CELL = 300


def main(old: str) -> None:
    src = REPO / "stylenorm" / "data" / "demo" / "chelsea.png"
    photo = Image.open(src).convert("RGB")
    photo.thumbnail((512, 512), Image.LANCZOS)
    x = to_tensor(np.asarray(photo))
    new = REPO / "weights" / "styles.safetensors"
    names = resolve_style(None, new).model.names
    rows = []
    for weights in (old, new):
        cells = [photo.copy()]
        for name in names:
            y = stylize_tensor(resolve_style(name, weights), x, precision="auto")
            cells.append(Image.fromarray(to_uint8(y)))
        for cell in cells:
            cell.thumbnail((CELL, CELL), Image.LANCZOS)
        rows.append(cells)
    h = rows[0][0].height
    grid = Image.new("RGB", (CELL * len(rows[0]), 22 + 2 * h), "white")
    draw = ImageDraw.Draw(grid)
    for k, label in enumerate(["top: before, bottom: now"] + names):
        draw.text((k * CELL + 6, 5), label, fill="black")
    for r, row in enumerate(rows):
        for k, cell in enumerate(row):
            grid.paste(cell, (k * CELL, 22 + r * h))
    grid.save(REPO / "docs" / "style" / "old_vs_new.jpg", quality=88)
    print("wrote docs/style/old_vs_new.jpg")


if __name__ == "__main__":
    main(sys.argv[1])
