"""`stylenorm add-style painting.jpg --name NAME`: one more style in the shipped multi-style network.

The shipped network is conditional instance norm (Dumoulin et al. 2017): its
convolutions are shared and each style is only a table row of per-channel γ/β.
A new painting therefore needs only a new row, trained with everything else
frozen (`StyleTrainConfig.add_to`, through the one training loop, training.fit,
with its checkpoints, resume and progress bar). The result is a new weights file
in the user's data folder holding the base network's styles plus the new one, so
`stylize --style NAME`, `styles` and blends with the shipped styles find it by name.
The recipe (crop size, painting size, Gram scales, loss weights) is the base
network's, read from its model card, so the new style is trained like its siblings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from stylenorm.checkpoints import WEIGHTS_DIR, read_card, user_weights_dir
from stylenorm.errors import StylenormError
from stylenorm.style.config import DEMO_DIR, StyleTrainConfig

DEFAULT_STEPS = 200  # reached the shipped style's eval-style scores; 600 were no better (README, "add-style")
DEFAULT_LR = 1e-2  # only a few thousand gamma/beta values move (not compared with other rates)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # no ':' or ',' (blends), no '/' (paths)


def base_network() -> Path:
    from stylenorm.style.stylize import DEFAULT_WEIGHTS

    return WEIGHTS_DIR / f"{DEFAULT_WEIGHTS}.safetensors"


def check_name(name: str, output: Path) -> None:
    """A name that `stylize --style NAME` and blends can use, and that no other style already has."""
    from stylenorm.style.stylize import list_shipped_styles

    if not NAME_PATTERN.match(name):
        raise StylenormError(f"--name {name!r} must be letters, digits, '_', '-' or '.' (it is used in blends as NAME:0.5)")
    for other, path, _ in list_shipped_styles():
        if other == name and path.resolve() != output.resolve():
            where = "a shipped style" if path.parent.resolve() == WEIGHTS_DIR.resolve() else f"a style in {path}"
            raise StylenormError(f"--name {name} is already {where}; pick another name")


def add_style_config(painting: str | os.PathLike, name: str, *, steps: int | None = None, base: str | os.PathLike | None = None,
                     data: str | os.PathLike | None = None, holdout: int = 0, lr: float | None = None,
                     style_weight: float | None = None, vgg_weights: str | os.PathLike | None = None,
                     vgg_format: str = "auto", output: str | os.PathLike | None = None,
                     run_dir: str | os.PathLike | None = None, resume: bool = False, force: bool = False,
                     threads: int | None = None, checkpoint_every: int = 100, seed: int = 0) -> StyleTrainConfig:
    """The train-style config that adds `painting` as style `name` to `base` (default: the shipped network).

    Its options are checked by train_style (check_config) before any work; None means the default,
    so --steps 0 or --lr 0 is refused there, not replaced by the default.
    """
    from stylenorm.devices import cpu_has_native_bf16
    from stylenorm.style.optimize import MIN_PAINTING_SIDE, load_painting

    load_painting(painting, MIN_PAINTING_SIDE, hint="")  # not an image, or too small: refused before anything is written
    base_path = Path(base) if base else base_network()
    if not base_path.is_file():
        raise StylenormError(f"base network not found: {base_path}; pass a multi-style weights file with --base")
    out = Path(output) if output else user_weights_dir() / f"{name}.safetensors"
    check_name(name, out)
    card = read_card(base_path)
    if name in (card.get("styles") or []):
        raise StylenormError(f"--name {name} is already a style of {base_path.name}; pick another name")
    # one run folder per model file (NAME.safetensors, or -o's), so runs for two outputs never meet
    runs = Path(run_dir) if run_dir else user_weights_dir().parent / "runs" / "add-style" / out.stem
    weights = card.get("loss_weights") or {}
    return StyleTrainConfig(
        styles=[str(painting)], data=str(data or DEMO_DIR), holdout=holdout, name=name, output=str(out),
        run_dir=str(runs), add_to=str(base_path), norm=card.get("norm", "in"),
        image_size=int(card.get("image_size", 256)), style_size=int(card.get("style_size", 512)),
        photo_size=card.get("photo_size"),  # the scale the base network paints at
        # the base network's loss, layers and weights: its cards before `loss` existed were trained with 'relative'
        loss=card.get("loss", "relative"), style_scales=list(card.get("style_scales") or [1.0]),
        content_layer=card.get("content_layer"), style_layers=card.get("style_layers"),
        content_weight=weights.get("content"), tv_weight=weights.get("tv"), layout_weight=weights.get("layout", 0.0),
        style_weight=style_weight if style_weight is not None else weights.get("style"),
        steps=DEFAULT_STEPS if steps is None else steps, lr=DEFAULT_LR if lr is None else lr,
        vgg_weights=str(vgg_weights) if vgg_weights else None,
        vgg_format=vgg_format, mixed_precision="bf16" if cpu_has_native_bf16() else "no", threads=threads,
        checkpoint_every=checkpoint_every, preview_every=checkpoint_every, seed=seed,
        resume=str(runs) if resume else None, force=force,
        notes=f"add-style: {Path(painting).name} as style {name} of {base_path.name}, only its gamma/beta trained",
    )
