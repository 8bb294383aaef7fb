"""The style networks' pictures: paintings (border cropped, resized) and the content photos with their crops.

Apart from train.py because training (task.py), the any-painting mode (optimize.py),
eval-style (evaluate.py) and the ablation all load paintings and photos the same way,
and none of them should have to import the training command for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylenorm.errors import StylenormError
from stylenorm.images import ImageError, list_images, load_image, to_tensor, usable_images, warn_skipped


def style_name(path: str) -> str:
    return Path(path).stem


def load_rgb(path: str | Path) -> Image.Image:
    return Image.fromarray(load_image(path).rgb)


def resize_longest(img: Image.Image, longest: int) -> Image.Image:
    w, h = img.size
    scale = longest / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


# Scans of paintings carry frames, board strips, tape and scanner edges (the_scream's right 5 %
# is the board it is painted on); a Gram loss learns such a strip as a motif and networks paint it
# as a stripe along an edge. Gram matrices do not depend on position, so cropping the outer 6 % of
# every side loses nothing of the style.
PAINTING_BORDER = 0.06


def crop_painting_border(img: Image.Image) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * PAINTING_BORDER), round(h * PAINTING_BORDER)
    return img.crop((dx, dy, w - dx, h - dy))


def load_style_image(path: str | Path, longest: int) -> torch.Tensor:
    """A painting as (3, H, W) in [0, 1], its border cropped and its longest side resized to `longest`."""
    return to_tensor(np.asarray(resize_longest(crop_painting_border(load_rgb(path)), longest)))[0]


def _resize_for_crop(img: Image.Image, size: int, long_side: int | None = None) -> Image.Image:
    """The short side to `size`, or the long side to `long_side` as long as the short side stays >= `size`."""
    w, h = img.size
    scale = size / min(w, h) if long_side is None else max(long_side / max(w, h), size / min(w, h))
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)


def random_crop(img: Image.Image, size: int, generator: torch.Generator, photo_size: int | None = None) -> torch.Tensor:
    """Resize the photo (short side to `size`, or with `photo_size` its long side to that), take a
    seeded random square crop of `size`, maybe flip."""
    img = _resize_for_crop(img, size, photo_size)
    w, h = img.size
    x0 = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    y0 = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    t = to_tensor(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))))[0]
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        t = t.flip(-1)
    return t


def center_crop(path: str | Path, size: int) -> torch.Tensor:
    """Short side to `size`, then the central square: the same view of a photo every time."""
    img = _resize_for_crop(load_rgb(path), size)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return to_tensor(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))))[0]


HOLDOUT_SEED = 20240  # fixed, so every run and every seed holds out the same photos


class ContentPhotos:
    """The content folder, decoded on demand (small photos; cheaper than the step itself).

    `files` are the training photos; `held_out` the `holdout` photos of a fixed seeded
    split that training never sees (for evaluating on unseen photos); `skipped` the files
    that failed the scan at the start (not images, damaged, over the pixel limit).
    """

    def __init__(self, folder: str | os.PathLike, holdout: int = 0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise StylenormError(f"content folder not found: {folder}; pass a folder of photos with --data")
        files, self.skipped = usable_images(list_images(folder), f"{folder}/")
        if not files:
            raise StylenormError(f"no usable images in {folder}" + (f" ({len(self.skipped)} skipped, e.g. {self.skipped[0].name}, "
                                                                     "see above)" if self.skipped else "")
                                 + "; --data needs a folder of JPEG/PNG photos")
        if not 0 <= holdout < len(files):
            raise StylenormError(f"holdout {holdout} must be between 0 and {len(files) - 1} (the folder has {len(files)} photos)")
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(HOLDOUT_SEED)).tolist()
        held = set(order[:holdout])
        self.files = [f for i, f in enumerate(files) if i not in held]
        self.held_out = [files[i] for i in sorted(held)]

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, indices: torch.Tensor, size: int, seed: int, micro_step: int,
              photo_size: int | None = None) -> torch.Tensor:
        crops = []
        for pos, idx in enumerate(indices.tolist()):
            g = torch.Generator().manual_seed((seed * 7_919 + micro_step) * 1_000 + pos)
            crops.append(random_crop(self._decode(idx), size, g, photo_size))
        return torch.stack(crops)

    def _decode(self, idx: int) -> Image.Image:
        """Photo `idx`, or the next readable one: a file that passed the scan can still fail to
        decode (a truncated JPEG), and one such photo must not end the run at the step that draws it."""
        for k in range(len(self.files)):
            path = self.files[(idx + k) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                return load_rgb(path)
            except ImageError as exc:
                self.skipped.append(path)
                warn_skipped([path], f"{path.parent}/", str(exc))
        raise StylenormError(f"none of the {len(self.files)} content photos can be decoded; check the --data folder")
