"""The README's any-painting picture, cut from three eval-style contact sheets (cells of 256 px):

    python docs/style/make_any_painting.py OPT_SHEET SHIPPED_SHEET ADDED_SHEET docs/style/any_painting.jpg

columns (the painting on top of each): the photo, `stylize --style the_scream.jpg` (optimization), the shipped
network's the_scream, and the style added by `add-style` (its last column).
"""

import sys

from PIL import Image

CELL = 256


def column(sheet: Image.Image, index: int) -> Image.Image:
    index = index if index >= 0 else sheet.width // CELL + index
    return sheet.crop((index * CELL, 0, (index + 1) * CELL, sheet.height))


opt, shipped, added = (Image.open(p).convert("RGB") for p in sys.argv[1:4])
cols = [column(opt, 0), column(opt, 1), column(shipped, 4), column(added, -1)]
out = Image.new("RGB", (CELL * len(cols), opt.height), "white")
for i, c in enumerate(cols):
    out.paste(c, (i * CELL, 0))
out.save(sys.argv[4], quality=88)
